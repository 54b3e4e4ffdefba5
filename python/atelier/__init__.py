"""atelier: the Python SDK of the atelier ML workspace server.

Modelled on the Azure ML run API, so scripts port with an import change::

    from atelier import Run
    run = Run.get_context()
    run.log("rmse", 0.5)

Standard library only.
"""

from ._http import ActivityFailedError, AtelierError
from .compute import ComputeTarget, KubernetesCompute, LocalCompute, PodmanCompute, RemoteCompute, SlurmCompute
from .datastore import Datastore, DownloadResult, UploadResult
from .image import ContainerImage, ContainerImageConfig, Image, ImageBuildError, InferenceConfig
from .model import Model
from .run import OfflineRun, Run
from .submit import Environment, ScriptRunConfig
from .webservice import (AciWebservice, AksWebservice, DeploymentConfiguration, LocalWebservice, Webservice,
                         WebserviceException)
from .workspace import Experiment, Workspace

__version__ = "0.1.0"

__all__ = ["AciWebservice", "ActivityFailedError", "AksWebservice", "AtelierError", "DeploymentConfiguration",
           "LocalWebservice", "Webservice", "WebserviceException", "ComputeTarget", "ContainerImage", "ContainerImageConfig", "Datastore",
           "DownloadResult", "Environment", "Experiment", "Image", "ImageBuildError", "InferenceConfig",
           "KubernetesCompute", "LocalCompute", "Model", "OfflineRun", "PodmanCompute", "RemoteCompute", "Run",
           "ScriptRunConfig", "SlurmCompute", "UploadResult", "Workspace", "__version__"]
