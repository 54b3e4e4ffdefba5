"""azureml.core.dataset: v1's Dataset entry point (Dataset.File, Dataset.Tabular,
get_by_name, get_all)."""

from .. import _registry
from ..data.abstract_dataset import KIND
from ..data.dataset_factory import FileDatasetFactory, TabularDatasetFactory
from ..data.file_dataset import FileDataset
from ..data.tabular_dataset import TabularDataset
from ..exceptions import DatasetNotFoundError

__all__ = ["Dataset"]


def _from_doc(workspace, doc):
    cls = TabularDataset if doc.get("type") == "tabular" else FileDataset
    return cls(workspace, doc)


class Dataset:
    File = FileDatasetFactory
    Tabular = TabularDatasetFactory

    @staticmethod
    def get_by_name(workspace, name, version="latest"):
        doc = _registry.get(workspace, KIND, name, None if version in (None, "latest") else int(version))
        if doc is None:
            raise DatasetNotFoundError("no dataset %r%s in workspace %s" % (
                name, "" if version in (None, "latest") else " version %s" % version, workspace.name),
                code="not_found", status=404)
        return _from_doc(workspace, doc)

    @staticmethod
    def get_by_id(workspace, id):
        name, _, version = str(id).partition(":")
        return Dataset.get_by_name(workspace, name, version or "latest")

    @staticmethod
    def get_all(workspace):
        """The registered datasets by name, each at its latest version."""
        return {n: Dataset.get_by_name(workspace, n) for n in _registry.names(workspace, KIND)}

    @staticmethod
    def list(workspace):
        return list(Dataset.get_all(workspace).values())
