"""azureml.train.automl: v1's AutoML. atelier has no AutoML: AutoMLConfig raises
NotImplementedError saying what to do instead."""

from ..._compat import unsupported

__all__ = ["AutoMLConfig"]


class AutoMLConfig:
    def __init__(self, *args, **kwargs):
        raise unsupported("AutoML (AutoMLConfig)", "train candidate models in a ScriptRunConfig script, log each "
                          "as a child run, and register the best one")
