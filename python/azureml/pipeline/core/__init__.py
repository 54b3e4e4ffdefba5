"""azureml.pipeline.core: refused (see azureml.pipeline)."""

from .._refused import refused

Pipeline = refused("Pipeline")
PipelineData = refused("PipelineData")
PipelineParameter = refused("PipelineParameter")
PipelineRun = refused("PipelineRun")
PipelineEndpoint = refused("PipelineEndpoint")
PublishedPipeline = refused("PublishedPipeline")
StepSequence = refused("StepSequence")
Schedule = refused("Schedule")
ScheduleRecurrence = refused("ScheduleRecurrence")
TrainingOutput = refused("TrainingOutput")

__all__ = ["Pipeline", "PipelineData", "PipelineParameter", "PipelineRun", "PipelineEndpoint", "PublishedPipeline",
           "StepSequence", "Schedule", "ScheduleRecurrence", "TrainingOutput"]
