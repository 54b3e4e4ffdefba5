# azureml.core inside a scoring image: only Model (for Model.get_model_path). A pkgutil-style
# namespace, so an installed azureml-core's modules are found too.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

from azureml.core.model import Model  # noqa: E402,F401
