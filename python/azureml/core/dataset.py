"""azureml.core.dataset: v1's Dataset entry point (Dataset.File, Dataset.Tabular,
get_by_name, get_all)."""

from .. import _registry
from .._compat import AtelierError
from ..data.abstract_dataset import KIND, _datasets, from_server
from ..data.dataset_factory import FileDatasetFactory, TabularDatasetFactory
from ..data.file_dataset import FileDataset
from ..data.tabular_dataset import TabularDataset
from ..exceptions import DatasetNotFoundError

__all__ = ["Dataset"]


def _from_doc(workspace, doc):
    cls = TabularDataset if doc.get("type") == "tabular" else FileDataset
    return cls(workspace, doc)


def _legacy_hint(workspace, name):
    """A hint when an older SDK registered name client-side (in the default datastore)."""
    try:
        if _registry.get(workspace, KIND, name) is not None:
            return (" (an older atelier SDK kept a dataset %r in the default datastore under %s/%s/%s: "
                    "register it again to put it on the server)" % (name, _registry.ROOT, KIND, name))
    except AtelierError:
        pass
    return ""


class Dataset:
    File = FileDatasetFactory
    Tabular = TabularDatasetFactory

    @staticmethod
    def get_by_name(workspace, name, version="latest"):
        v = "latest" if version in (None, "latest") else int(version)
        try:
            d = workspace._client.request("GET", _datasets(workspace, name, v))
        except AtelierError as e:
            if e.status not in (400, 404):
                raise
            raise DatasetNotFoundError("no dataset %r%s in workspace %s%s" % (
                name, "" if v == "latest" else " version %s" % v, workspace.name, _legacy_hint(workspace, name)),
                code="not_found", status=404) from None
        return _from_doc(workspace, from_server(d))

    @staticmethod
    def get_by_id(workspace, id):
        name, _, version = str(id).partition(":")
        return Dataset.get_by_name(workspace, name, version or "latest")

    @staticmethod
    def get_all(workspace):
        """The registered datasets by name, each at its latest version."""
        page = workspace._client.request("GET", _datasets(workspace)) or {}
        return {d["name"]: _from_doc(workspace, from_server(d)) for d in page.get("datasets") or []}

    @staticmethod
    def list(workspace):
        return list(Dataset.get_all(workspace).values())
