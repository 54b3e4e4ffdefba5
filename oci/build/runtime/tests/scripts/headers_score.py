# run() may take request_headers: the request's headers, as a dict.
def init():
    pass


def run(data, request_headers):
    return {"body": data, "agent": request_headers.get("User-Agent"), "custom": request_headers.get("X-Custom")}
