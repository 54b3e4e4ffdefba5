from atelier_http import AMLResponse  # noqa: F401
