"""azureml.core.webservice: v1's web services, the atelier SDK's (services deployed from images
on the server's gateway; see docs/serving.md). AksEndpoint (A/B versions behind one endpoint)
is not supported."""

from atelier.webservice import AciWebservice, AksWebservice, LocalWebservice, Webservice, WebserviceException

from ..._compat import unsupported

__all__ = ["Webservice", "LocalWebservice", "AciWebservice", "AksWebservice", "AksEndpoint", "WebserviceException"]


class AksEndpoint:
    def __init__(self, *args, **kwargs):
        raise unsupported("AksEndpoint", "deploy each version as its own Webservice, or update one service "
                          "(Webservice.update) for a rolling update")

    @staticmethod
    def deploy_configuration(*args, **kwargs):
        raise unsupported("AksEndpoint", "AksWebservice.deploy_configuration")
