# atelier's stand-ins for the parts of the Azure ML SDK a score.py uses inside a scoring image.
# A pkgutil-style namespace: an azureml package installed in the image (azureml-core, or
# atelier's SDK) merges with these; the runtime puts this directory last on sys.path, so
# installed modules of the same name win.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)
