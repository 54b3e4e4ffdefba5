from atelier_http import AMLRequest, rawhttp  # noqa: F401
