# azureml.contrib: a pkgutil-style namespace, merged with any installed azureml.contrib.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)
