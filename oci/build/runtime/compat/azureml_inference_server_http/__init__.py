# azureml_inference_server_http inside an atelier scoring image: its api modules only.
