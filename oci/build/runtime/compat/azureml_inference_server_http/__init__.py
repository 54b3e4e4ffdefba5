# azureml_inference_server_http: the parent of api.aml_request and api.aml_response, which the
# runtime maps to its atelier_http module before it imports score.py.
