"""azureml.data.dataset_consumption_config: a dataset given to a run under a name
(``dataset.as_named_input("train").as_mount()``): the script finds it in its arguments (the
local path) and in ``Run.get_context().input_datasets[name]``."""

from ._binding import Binding

__all__ = ["DatasetConsumptionConfig"]


class DatasetConsumptionConfig(Binding):
    def __init__(self, name, dataset, mode="direct", path_on_compute=None):
        self.name = name
        self.dataset = dataset
        self.mode = mode
        self.path_on_compute = path_on_compute

    def as_mount(self, path_on_compute=None):
        return DatasetConsumptionConfig(self.name, self.dataset, "mount", path_on_compute)

    def as_download(self, path_on_compute=None):
        return DatasetConsumptionConfig(self.name, self.dataset, "download", path_on_compute)

    def _ref(self):
        ds, path = self.dataset._run_source()
        spec = dict(self.dataset._doc, mode=self.mode)
        globs = self.dataset._run_globs(path)
        if globs:
            spec["filter"] = globs
        # A mount is read-only: a dataset whose globs leave files out is downloaded, and the
        # files it does not take removed before the script starts.
        mode = "mount" if self.mode == "mount" and not globs else "download"
        return self.name, ds, path, mode, spec

    def __repr__(self):
        return "DatasetConsumptionConfig:%s" % self.name
