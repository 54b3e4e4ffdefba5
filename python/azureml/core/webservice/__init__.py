"""azureml.core.webservice: v1's web services. atelier deploys images as services of its own
(`atelier service create`); the v1 classes are not mapped yet and say so."""

from ..._compat import unsupported

__all__ = ["Webservice", "LocalWebservice", "AciWebservice", "AksWebservice", "AksEndpoint"]

_INSTEAD = "build an image (Model.package or atelier.Image.create) and deploy it with `atelier service create`"


class _Refused:
    def __init__(self, *args, **kwargs):
        raise unsupported(type(self).__name__, _INSTEAD)

    @classmethod
    def deploy_configuration(cls, *args, **kwargs):
        raise unsupported("%s.deploy_configuration" % cls.__name__, _INSTEAD)

    @staticmethod
    def list(*args, **kwargs):
        raise unsupported("Webservice.list", "`atelier service list`")


class Webservice(_Refused):
    pass


class LocalWebservice(_Refused):
    pass


class AciWebservice(_Refused):
    pass


class AksWebservice(_Refused):
    pass


class AksEndpoint(_Refused):
    pass
