"""azureml.data.output_dataset_config: v1's OutputFileDatasetConfig, a folder a run writes
whose files atelier uploads to a datastore when the script ends."""

import uuid

from .._compat import unsupported
from ._binding import Binding, datastore_name

__all__ = ["OutputFileDatasetConfig", "OutputDatasetConfig"]


class OutputDatasetConfig(Binding):
    pass


class OutputFileDatasetConfig(OutputDatasetConfig):
    """``OutputFileDatasetConfig(name=None, destination=(datastore, "path"))``; without a
    destination, the default datastore's azureml/<uuid>/<name>/ (Azure's layout, with a fresh
    id in place of the run's, which is not known before the run is submitted)."""

    def __init__(self, name=None, destination=None, source=None, partition_format=None):
        self.name = name or "output_" + uuid.uuid4().hex[:8]
        if destination is None:
            destination = ("default", "azureml/%s/%s" % (uuid.uuid4().hex, self.name))
        self.destination = destination
        self._registration = None

    def _ref(self):
        ds, path = self.destination
        if "{run-id}" in (path or ""):
            self.destination = (ds, path.replace("{run-id}", uuid.uuid4().hex))
            ds, path = self.destination
        return self.name, datastore_name(ds), (path or "").strip("/"), "upload", None

    def as_mount(self, disable_metadata_cache=False):
        return self

    def as_upload(self, overwrite=False, source_globs=None):
        return self

    def register_on_complete(self, name, description=None, tags=None):
        """Registers the output folder as a FileDataset (a new version of name) once the run
        completes: when Run.wait_for_completion sees it Completed, in the submitting process."""
        self._registration = (name, description, tags)
        return self

    def read_delimited_files(self, *args, **kwargs):
        raise unsupported("OutputFileDatasetConfig.read_delimited_files",
                          "register the output folder as Dataset.Tabular.from_delimited_files after the run")

    def read_parquet_files(self, *args, **kwargs):
        return self.read_delimited_files()

    def as_input(self, name=None):
        raise unsupported("OutputFileDatasetConfig.as_input", "atelier has no pipelines yet: give the next run "
                          "the destination as a dataset (Dataset.File.from_files(destination))")
