"""azureml.data.dataset_factory: Dataset.File and Dataset.Tabular."""

from .abstract_dataset import _normalize_paths
from .file_dataset import FileDataset
from .tabular_dataset import TabularDataset

__all__ = ["FileDatasetFactory", "TabularDatasetFactory"]


def _ws_of(paths):
    for p in paths if isinstance(paths, list) else [paths]:
        ds = p[0] if isinstance(p, tuple) else getattr(p, "datastore", None)  # DataPath, DataReference
        ws = getattr(ds, "workspace", None)
        if ws is not None:
            return ws
    return None


class FileDatasetFactory:
    @staticmethod
    def from_files(path, validate=True, partition_format=None, is_file=False):
        d = FileDataset(_ws_of(path), {"type": "file", "paths": _normalize_paths(path)})
        if validate:
            d.to_path()
        return d

    @staticmethod
    def upload_directory(src_dir, target, pattern=None, overwrite=False, show_progress=True):
        ds, path = target if isinstance(target, tuple) else target._pair()
        ds.upload(src_dir, target_path=path, overwrite=overwrite, show_progress=show_progress)
        return FileDatasetFactory.from_files((ds, path))


class TabularDatasetFactory:
    @staticmethod
    def _make(path, fmt, validate):
        d = TabularDataset(_ws_of(path), {"type": "tabular", "paths": _normalize_paths(path), "format": fmt})
        if validate:
            d.to_path()
        return d

    @staticmethod
    def from_delimited_files(path, validate=True, include_path=False, infer_column_types=True, set_column_types=None,
                             separator=",", header=True, partition_format=None, support_multi_line=False,
                             empty_as_string=False, encoding="utf8"):
        header = header not in (False, "NO_HEADERS", 0) if not hasattr(header, "name") else header.name != "NO_HEADERS"
        return TabularDatasetFactory._make(path, {"kind": "delimited", "separator": separator, "header": header,
                                                  "encoding": "utf-8" if encoding == "utf8" else encoding}, validate)

    @staticmethod
    def from_parquet_files(path, validate=True, include_path=False, set_column_types=None, partition_format=None):
        return TabularDatasetFactory._make(path, {"kind": "parquet"}, validate)

    @staticmethod
    def from_json_lines_files(path, validate=True, include_path=False, set_column_types=None, partition_format=None,
                              invalid_lines="error", encoding="utf8"):
        return TabularDatasetFactory._make(path, {"kind": "json_lines",
                                                  "encoding": "utf-8" if encoding == "utf8" else encoding}, validate)

    @staticmethod
    def from_sql_query(*args, **kwargs):
        raise NotImplementedError("Dataset.Tabular.from_sql_query is not supported by atelier: export the query "
                                  "to files in a datastore and use from_delimited_files or from_parquet_files")

    @staticmethod
    def register_pandas_dataframe(dataframe, target, name, description=None, tags=None, show_progress=True):
        import os
        import tempfile
        ds, path = target if isinstance(target, tuple) else target._pair()
        with tempfile.TemporaryDirectory() as tmp:
            f = os.path.join(tmp, "part-00000.csv")
            dataframe.to_csv(f, index=False)
            ds.upload_files([f], relative_root=tmp, target_path=path, overwrite=True, show_progress=show_progress)
        d = TabularDatasetFactory.from_delimited_files((ds, path.rstrip("/") + "/*.csv"))
        return d.register(ds.workspace, name, description=description, tags=tags, create_new_version=True)
