"""azureml.data.datapath: v1's DataPath (a datastore and a path on it)."""

from .data_reference import DataReference

__all__ = ["DataPath", "DataPathComputeBinding"]


class DataPathComputeBinding:
    def __init__(self, mode="mount", path_on_compute=None, overwrite=False):
        self._mode, self._path_on_compute, self._overwrite = mode, path_on_compute, overwrite


class DataPath:
    def __init__(self, datastore=None, path_on_datastore=None, name=None):
        self.datastore = datastore
        self.path_on_datastore = path_on_datastore
        self.name = name

    def create_data_reference(self, data_reference_name=None, datapath_compute_binding=None):
        b = datapath_compute_binding or DataPathComputeBinding()
        return DataReference(self.datastore, data_reference_name or self.name, self.path_on_datastore, b._mode,
                             b._path_on_compute, b._overwrite)

    def _pair(self):
        return self.datastore, self.path_on_datastore or ""
