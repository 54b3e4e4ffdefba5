# Azure ML's raw HTTP sample (how-to-use-azureml/deployment: "score.py with @rawhttp"): run()
# receives the request itself and answers with an AMLResponse.
import json

from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse


def init():
    print("This is init()")


@rawhttp
def run(request):
    print("This is run()")
    if request.method == 'GET':
        # For this example, just return the URL for GETs.
        respBody = str.encode(request.full_path)
        return AMLResponse(respBody, 200)
    elif request.method == 'POST':
        if request.files:
            f = request.files["image"]
            data = f.read()
            return AMLResponse(json.dumps({"file": f.filename, "size": len(data), "field": request.form.get("note")}), 200,
                               {"Content-Type": "application/json"})
        reqBody = request.get_data(False)
        # For a real-world solution, you would load the data from reqBody
        # and send it to the model. Then return the response.
        resp = AMLResponse(reqBody[::-1], 201, {"X-Reversed": "yes", "X-Multi": "a, b"})
        return resp
    else:
        return AMLResponse("bad request, use GET or POST", 500)
