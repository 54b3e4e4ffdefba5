"""azureml.train.sklearn: v1's SKLearn estimator. Its curated image had scikit-learn; here the
compute target's Python runs it as it is (user-managed) unless packages are listed, so
scikit-learn must be installed there or listed in pip_packages."""

from .estimator import Estimator

__all__ = ["SKLearn"]


class SKLearn(Estimator):
    pass
