"""azureml.core.compute_target: v1's module of the same name."""

from ..exceptions import ComputeTargetException
from .compute import ComputeTarget

__all__ = ["ComputeTarget", "ComputeTargetException", "LocalTarget"]


class LocalTarget:
    name = "local"
