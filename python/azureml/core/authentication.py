"""azureml.core.authentication: Azure's credential classes, accepted so v1 code constructs
them unchanged. atelier authenticates with its own token: ATELIER_TOKEN, the token of
.atelier/config.json or .azureml/config.json ("token"), or the admin token of a server started
in this directory. An authentication object may carry one explicitly: ``TokenAuthentication``."""

import os

__all__ = ["AbstractAuthentication", "InteractiveLoginAuthentication", "ServicePrincipalAuthentication",
           "AzureCliAuthentication", "MsiAuthentication", "TokenAuthentication", "AtelierTokenAuthentication"]


class AbstractAuthentication:
    """Base of the authentication classes; ``atelier_token`` is the token sent, None to find
    one as Workspace.from_config does."""

    atelier_token = None

    def get_authentication_header(self):
        t = self.atelier_token or os.environ.get("ATELIER_TOKEN")
        return {"Authorization": "Bearer " + t} if t else {}


class InteractiveLoginAuthentication(AbstractAuthentication):
    def __init__(self, force=False, tenant_id=None, cloud=None, **kwargs):
        self.tenant_id = tenant_id


class AzureCliAuthentication(AbstractAuthentication):
    def __init__(self, cloud=None, **kwargs):
        pass


class MsiAuthentication(AbstractAuthentication):
    def __init__(self, cloud=None, identity_config=None, **kwargs):
        pass


class ServicePrincipalAuthentication(AbstractAuthentication):
    """A service principal's id and secret are recorded, not used: atelier has no Azure AD.
    Give the principal an atelier token (``atelier token create``) and set ATELIER_TOKEN."""

    def __init__(self, tenant_id=None, service_principal_id=None, service_principal_password=None, cloud=None,
                 _enable_caching=True, **kwargs):
        self.tenant_id = tenant_id
        self.service_principal_id = service_principal_id
        self._password = service_principal_password

    def __repr__(self):
        return "ServicePrincipalAuthentication(tenant_id=%r, service_principal_id=%r)" % (
            self.tenant_id, self.service_principal_id)


class TokenAuthentication(AbstractAuthentication):
    """An atelier token given in code (v1's TokenAuthentication takes a function returning an
    Azure token: a callable returning the atelier token works too)."""

    def __init__(self, get_token_for_audience=None, token=None, **kwargs):
        if token is None and callable(get_token_for_audience):
            token = get_token_for_audience("atelier")
            if isinstance(token, (tuple, list)):
                token = token[0]
        elif token is None and isinstance(get_token_for_audience, str):
            token = get_token_for_audience
        self.atelier_token = token


AtelierTokenAuthentication = TokenAuthentication
