"""azureml.data.data_reference: v1's DataReference, a datastore path a run mounts (read-only,
each file fetched when first opened; downloaded where no FUSE file system can be mounted),
downloads or uploads."""

from ._binding import Binding, datastore_name

__all__ = ["DataReference"]


class DataReference(Binding):
    def __init__(self, datastore, data_reference_name=None, path_on_datastore=None, mode="mount",
                 path_on_compute=None, overwrite=False):
        self.datastore = datastore
        self.data_reference_name = data_reference_name or datastore_name(datastore)
        self.path_on_datastore = path_on_datastore
        self.mode = mode
        self.path_on_compute = path_on_compute
        self.overwrite = overwrite

    def _with(self, mode, path_on_compute=None, overwrite=None):
        return DataReference(self.datastore, self.data_reference_name, self.path_on_datastore, mode,
                             path_on_compute or self.path_on_compute,
                             self.overwrite if overwrite is None else overwrite)

    def as_mount(self):
        return self._with("mount")

    def as_download(self, path_on_compute=None, overwrite=False):
        return self._with("download", path_on_compute, overwrite)

    def as_upload(self, path_on_compute=None, overwrite=False):
        return self._with("upload", path_on_compute, overwrite)

    def path(self, path=None, data_reference_name=None):
        p = "/".join(x.strip("/") for x in (self.path_on_datastore, path) if x)
        return DataReference(self.datastore, data_reference_name or self.data_reference_name, p or None, self.mode,
                             self.path_on_compute, self.overwrite)

    def _ref(self):
        mode = self.mode if self.mode in ("upload", "mount") else "download"
        return (self.data_reference_name, datastore_name(self.datastore), (self.path_on_datastore or "").strip("/"),
                mode, None)

    def __repr__(self):
        return "$AZUREML_DATAREFERENCE_%s" % self.data_reference_name
