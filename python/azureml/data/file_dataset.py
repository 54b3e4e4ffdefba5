"""azureml.data.file_dataset: v1's FileDataset."""

import os
import shutil
import tempfile

from .abstract_dataset import AbstractDataset

__all__ = ["FileDataset"]


class FileDataset(AbstractDataset):
    _TYPE = "file"

    def to_path(self):
        """The files' paths relative to the dataset's root, as v1 gives them ("/a/b.csv")."""
        if self._local is not None:
            return ["/" + r for _, r in self._local_files()]
        return ["/" + rel for _, _, rel in self._remote_files()]

    def download(self, target_path=None, overwrite=False, ignore_not_found=False):
        """Downloads the files under target_path (a new temporary folder by default) and returns
        their local paths."""
        target = os.fspath(target_path) if target_path is not None else tempfile.mkdtemp(prefix="azureml-dataset-")
        if not overwrite:
            for rel in self.to_path():
                p = os.path.join(target, *rel.strip("/").split("/"))
                if os.path.exists(p):
                    raise FileExistsError("%s exists: pass overwrite=True" % p)
        return self._fetch(target)

    def mount(self, mount_point=None, **kwargs):
        """A context whose mount_point holds the files. atelier has no FUSE mount: the files
        are downloaded when it starts and removed when it stops."""
        return _MountContext(self, mount_point)

    def skip(self, count):
        return self._derive(["skip", int(count)])

    def take(self, count):
        return self._derive(["take", int(count)])

    def take_sample(self, probability, seed=None):
        return self._derive(["sample", float(probability), seed])

    def random_split(self, percentage, seed=None):
        return self._derive(["split", float(percentage), seed, 0]), self._derive(["split", float(percentage), seed, 1])

    def file_metadata(self, col):
        raise NotImplementedError("FileDataset.file_metadata is not supported by atelier: use to_path()")


class _MountContext:
    def __init__(self, dataset, mount_point):
        self._dataset = dataset
        self._own = mount_point is None
        self.mount_point = os.fspath(mount_point) if mount_point else tempfile.mkdtemp(prefix="azureml-mount-")

    def start(self):
        os.makedirs(self.mount_point, exist_ok=True)
        self._dataset._fetch(self.mount_point)
        return self

    def stop(self):
        if self._own:
            shutil.rmtree(self.mount_point, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False
