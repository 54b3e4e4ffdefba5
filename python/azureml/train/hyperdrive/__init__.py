"""azureml.train.hyperdrive: v1's HyperDrive names. atelier has no sweep service yet: the
parameter samplings can be built (and sampled from), but submitting a HyperDriveConfig raises
NotImplementedError; run a sweep as child runs of one script (run.child_run())."""

import itertools
import random

from ..._compat import unsupported

__all__ = ["HyperDriveConfig", "RandomParameterSampling", "GridParameterSampling", "BayesianParameterSampling",
           "BanditPolicy", "MedianStoppingPolicy", "TruncationSelectionPolicy", "NoTerminationPolicy",
           "PrimaryMetricGoal", "choice", "uniform", "loguniform", "normal", "lognormal", "quniform",
           "qloguniform", "qnormal", "qlognormal", "randint"]


def _expr(kind, *args):
    return [kind, list(args)]


def choice(*options):
    opts = list(options[0]) if len(options) == 1 and isinstance(options[0], (list, tuple, range)) else list(options)
    return _expr("choice", opts)


def uniform(min_value, max_value):
    return _expr("uniform", min_value, max_value)


def loguniform(min_value, max_value):
    return _expr("loguniform", min_value, max_value)


def normal(mu, sigma):
    return _expr("normal", mu, sigma)


def lognormal(mu, sigma):
    return _expr("lognormal", mu, sigma)


def quniform(min_value, max_value, q):
    return _expr("quniform", min_value, max_value, q)


def qloguniform(min_value, max_value, q):
    return _expr("qloguniform", min_value, max_value, q)


def qnormal(mu, sigma, q):
    return _expr("qnormal", mu, sigma, q)


def qlognormal(mu, sigma, q):
    return _expr("qlognormal", mu, sigma, q)


def randint(upper):
    return _expr("randint", upper)


class _Sampling:
    def __init__(self, parameter_space, properties=None):
        self.parameter_space = dict(parameter_space)

    def sample(self, rnd=None):
        rnd = rnd or random.Random()
        out = {}
        for k, (kind, a) in self.parameter_space.items():
            if kind == "choice":
                out[k] = rnd.choice(a[0])
            elif kind == "randint":
                out[k] = rnd.randrange(a[0])
            elif kind == "uniform":
                out[k] = rnd.uniform(a[0], a[1])
            else:
                raise unsupported("sampling %s" % kind, "choice, randint and uniform are sampled here")
        return out


class RandomParameterSampling(_Sampling):
    pass


class GridParameterSampling(_Sampling):
    def grid(self):
        keys = sorted(self.parameter_space)
        vals = [self.parameter_space[k][1][0] for k in keys]
        return [dict(zip(keys, combo)) for combo in itertools.product(*vals)]


class BayesianParameterSampling(_Sampling):
    pass


class PrimaryMetricGoal:
    MAXIMIZE = "MAXIMIZE"
    MINIMIZE = "MINIMIZE"


class _Policy:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class BanditPolicy(_Policy):
    pass


class MedianStoppingPolicy(_Policy):
    pass


class TruncationSelectionPolicy(_Policy):
    pass


class NoTerminationPolicy(_Policy):
    pass


class HyperDriveConfig:
    def __init__(self, *args, **kwargs):
        self.kwargs = kwargs

    def _submit(self, experiment, **kwargs):
        raise unsupported("HyperDrive (submitting a HyperDriveConfig)",
                          "run the sweep in one ScriptRunConfig script that logs each trial as a child run "
                          "(run.child_run()), then compare them with get_children() and get_metrics()")
