"""azureml.pipeline.steps: refused (see azureml.pipeline)."""

from .._refused import refused

PythonScriptStep = refused("PythonScriptStep")
ParallelRunStep = refused("ParallelRunStep")
ParallelRunConfig = refused("ParallelRunConfig")
CommandStep = refused("CommandStep")
EstimatorStep = refused("EstimatorStep")
DataTransferStep = refused("DataTransferStep")
AutoMLStep = refused("AutoMLStep")
HyperDriveStep = refused("HyperDriveStep")

__all__ = ["PythonScriptStep", "ParallelRunStep", "ParallelRunConfig", "CommandStep", "EstimatorStep",
           "DataTransferStep", "AutoMLStep", "HyperDriveStep"]
