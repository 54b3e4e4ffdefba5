"""azureml.train.dnn: v1's PyTorch, TensorFlow and Chainer estimators, as Estimator (single
process; the framework must be installed on the compute target or listed in pip_packages)."""

from .._compat import unsupported
from .estimator import Estimator

__all__ = ["PyTorch", "TensorFlow", "Chainer", "Mpi", "ParameterServer", "Gloo", "Nccl"]


class PyTorch(Estimator):
    pass


class TensorFlow(Estimator):
    pass


class Chainer(Estimator):
    pass


class _Distributed:
    def __init__(self, *args, **kwargs):
        raise unsupported(type(self).__name__, "atelier runs one process per run")


class Mpi(_Distributed):
    pass


class ParameterServer(_Distributed):
    pass


class Gloo(_Distributed):
    pass


class Nccl(_Distributed):
    pass
