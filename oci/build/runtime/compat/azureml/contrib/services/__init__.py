# azureml.contrib.services: AMLRequest, AMLResponse and @rawhttp for score.py files that want the
# raw HTTP request (azureml-contrib-services' module names).
