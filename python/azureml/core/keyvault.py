"""azureml.core.keyvault: a workspace's Key Vault as atelier's workspace secrets. Secrets are
write-only over the API: a run names them in its configuration and reads them from its
environment, so get_secret works in a submitted run (Run.get_secret) and refuses elsewhere."""

import os

from atelier._http import quote_seg

from .._compat import unsupported

__all__ = ["Keyvault"]


class Keyvault:
    def __init__(self, workspace):
        self.workspace = workspace

    def _path(self, name=None):
        p = "/api/v1/workspaces/%s/secrets" % quote_seg(self.workspace.name)
        return p if name is None else p + "/" + quote_seg(name)

    def set_secret(self, name, value):
        self.workspace._client.request("PUT", self._path(name), body={"value": str(value)})

    def set_secrets(self, secrets_batch):
        for k, v in secrets_batch.items():
            self.set_secret(k, v)

    def list_secrets(self):
        d = self.workspace._client.request("GET", self._path()) or {}
        return [{"name": s.get("name")} for s in d.get("secrets") or []]

    def delete_secret(self, name):
        self.workspace._client.request("DELETE", self._path(name))

    def delete_secrets(self, secrets_batch):
        for n in secrets_batch:
            self.delete_secret(n)

    def get_secret(self, name):
        if name in os.environ and os.environ.get("ATELIER_RUN_ID"):
            return os.environ[name]
        raise unsupported("reading a secret back (Keyvault.get_secret)",
                          "atelier secrets are write-only; a submitted run that lists %r in its "
                          "configuration's secrets reads it with Run.get_context().get_secret(%r)" % (name, name))

    def get_secrets(self, secrets):
        return {n: self.get_secret(n) for n in secrets}
