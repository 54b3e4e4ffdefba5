"""azureml.core: Azure ML SDK v1's core classes, over atelier (see the azureml package)."""

from .compute import ComputeTarget
from .conda_dependencies import CondaDependencies
from .dataset import Dataset
from .datastore import Datastore
from .environment import Environment
from .experiment import Experiment
from .keyvault import Keyvault
from .model import Model
from .run import Run
from .runconfig import RunConfiguration
from .script_run_config import ScriptRunConfig
from .workspace import Workspace

# The azureml-core release whose API this package follows.
VERSION = "1.60.0"
__version__ = VERSION

__all__ = ["ComputeTarget", "CondaDependencies", "Dataset", "Datastore", "Environment", "Experiment", "Keyvault",
           "Model", "Run", "RunConfiguration", "ScriptRunConfig", "Workspace", "VERSION"]
