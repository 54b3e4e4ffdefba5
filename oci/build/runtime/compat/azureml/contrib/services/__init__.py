# azureml.contrib.services: the parent of aml_request and aml_response, which the runtime maps to
# its atelier_http module (AMLRequest, AMLResponse, @rawhttp) before it imports score.py.
