"""azureml.core.datastore: v1's Datastore over atelier's datastores (files, S3, Azure Blob,
GCS). ``ds.path("folder")``, ``ds.as_mount()`` and ``ds.as_download()`` give data references
for runs; the other register_* kinds of Azure raise NotImplementedError naming what atelier has."""

from atelier.datastore import Datastore as _Datastore

from .._compat import adopt, unsupported
from ..data.data_reference import DataReference

__all__ = ["Datastore"]

_KINDS = ("an Azure Blob container (register_azure_blob_container), S3 (register_s3), GCS (register_gcs) "
          "or a folder of the server (register_files)")


def _refuse(what):
    def f(*args, **kwargs):
        raise unsupported("Datastore.%s" % what, "atelier's datastores are %s" % _KINDS)
    return staticmethod(f)


class Datastore(_Datastore):
    """``Datastore(workspace, name)`` or ``Datastore.get(workspace, name)``."""

    def __init__(self, workspace, name=None, _details=None):
        _Datastore.__init__(self, workspace, name, _details)

    # v1 attributes

    datastore_type = property(lambda self: {"azureblob": "AzureBlob", "files": "Files", "s3": "S3",
                                            "gcs": "GCS"}.get(self.kind, self.kind))

    @property
    def folder(self):
        """The folder of a files datastore (atelier's Datastore.path, which v1 uses for a method)."""
        return _Datastore.path.fget(self)

    # data references

    def path(self, path=None, data_reference_name=None):
        return DataReference(self, data_reference_name or self.name, path, "mount")

    def as_mount(self):
        return DataReference(self, self.name, None, "mount")

    def as_download(self, path_on_compute=None, overwrite=False):
        return DataReference(self, self.name, None, "download", path_on_compute, overwrite)

    def as_upload(self, path_on_compute=None, overwrite=False):
        return DataReference(self, self.name, None, "upload", path_on_compute, overwrite)

    # the registry, as the v1 class

    @staticmethod
    def get(workspace, datastore_name=None, name=None):
        return adopt(_Datastore.get(workspace, datastore_name, name), Datastore)

    @staticmethod
    def get_default(workspace):
        return adopt(_Datastore.get_default(workspace), Datastore)

    @staticmethod
    def list(workspace):
        return [adopt(d, Datastore) for d in _Datastore.list(workspace)]

    @staticmethod
    def register_azure_blob_container(workspace, datastore_name, container_name, account_name, sas_token=None,
                                      account_key=None, protocol=None, endpoint=None, overwrite=False,
                                      create_if_not_exists=False, skip_validation=False, blob_cache_timeout=None,
                                      grant_workspace_access=False, subscription_id=None, resource_group=None,
                                      **kwargs):
        return adopt(_Datastore.register_azure_blob_container(
            workspace, datastore_name, container_name, account_name, sas_token=sas_token, account_key=account_key,
            protocol=protocol, endpoint=endpoint, overwrite=overwrite, create_if_not_exists=create_if_not_exists,
            **kwargs), Datastore)

    @staticmethod
    def register_s3(workspace, name, bucket, access_key, secret_key, **kwargs):
        return adopt(_Datastore.register_s3(workspace, name, bucket, access_key, secret_key, **kwargs), Datastore)

    @staticmethod
    def register_gcs(workspace, name, bucket, **kwargs):
        return adopt(_Datastore.register_gcs(workspace, name, bucket, **kwargs), Datastore)

    @staticmethod
    def register_files(workspace, name, path, overwrite=False):
        return adopt(_Datastore.register_files(workspace, name, path, overwrite), Datastore)

    register_azure_file_share = _refuse("register_azure_file_share")
    register_azure_data_lake = _refuse("register_azure_data_lake")
    register_azure_data_lake_gen2 = _refuse("register_azure_data_lake_gen2")
    register_azure_sql_database = _refuse("register_azure_sql_database")
    register_azure_postgre_sql = _refuse("register_azure_postgre_sql")
    register_azure_my_sql = _refuse("register_azure_my_sql")
    register_dbfs = _refuse("register_dbfs")
    register_hdfs = _refuse("register_hdfs")
