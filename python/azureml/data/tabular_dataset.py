"""azureml.data.tabular_dataset: v1's TabularDataset over delimited, parquet or JSON lines
files. to_pandas_dataframe() needs pandas (and pyarrow for parquet) where it runs."""

import random
import tempfile

from .abstract_dataset import AbstractDataset

__all__ = ["TabularDataset"]


def _pandas():
    try:
        import pandas
    except ImportError:
        raise ImportError("TabularDataset.to_pandas_dataframe needs pandas: pip install pandas") from None
    return pandas


def _lines(path, fmt):
    with open(path, encoding=fmt.get("encoding") or "utf-8") as f:
        return [ln for ln in f.read().splitlines() if ln.strip()]


class TabularDataset(AbstractDataset):
    _TYPE = "tabular"

    def _read(self):
        pd = _pandas()
        fmt = self._doc.get("format") or {}
        with tempfile.TemporaryDirectory(prefix="azureml-tabular-") as tmp:
            files = sorted(self._fetch(tmp))
            frames = []
            for f in files:
                kind = fmt.get("kind", "delimited")
                if kind == "parquet":
                    frames.append(pd.read_parquet(f))
                elif kind == "json_lines":
                    frames.append(pd.read_json(f, lines=True, encoding=fmt.get("encoding") or "utf-8"))
                elif fmt.get("separator") == "\n":
                    # One column, a row per line (pandas takes no line separator as the delimiter).
                    lines = _lines(f, fmt)
                    if fmt.get("header", True):
                        frames.append(pd.DataFrame({lines[0] if lines else "Column1": lines[1:]}))
                    else:
                        frames.append(pd.DataFrame({0: lines}))
                else:
                    frames.append(pd.read_csv(f, sep=fmt.get("separator", ","),
                                              header=0 if fmt.get("header", True) else None,
                                              encoding=fmt.get("encoding") or "utf-8",
                                              skipinitialspace=bool(fmt.get("skipinitialspace"))))
            df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else (frames[0] if frames else pd.DataFrame())
        return self._apply(df)

    def _apply(self, df):
        for t in self._doc.get("transforms") or []:
            op = t[0]
            if op == "take":
                df = df.head(t[1])
            elif op == "skip":
                df = df.iloc[t[1]:]
            elif op == "keep_columns":
                df = df[[c for c in t[1]]]
            elif op == "drop_columns":
                df = df.drop(columns=[c for c in t[1] if c in df.columns])
            elif op == "sample":
                df = df.sample(frac=t[1], random_state=t[2])
            elif op == "split":
                rnd = random.Random(t[2])
                mask = [rnd.random() < t[1] for _ in range(len(df))]
                df = df[mask] if t[3] == 0 else df[[not m for m in mask]]
        return df.reset_index(drop=True)

    def _request_rows(self):
        """Model.profile's request bodies: each row's text. A one-column dataset of lines
        (separator "\n") is read without pandas."""
        fmt = self._doc.get("format") or {}
        if fmt.get("kind", "delimited") == "delimited" and fmt.get("separator") == "\n" and \
                not self._doc.get("transforms"):
            rows = []
            with tempfile.TemporaryDirectory(prefix="azureml-tabular-") as tmp:
                for f in sorted(self._fetch(tmp)):
                    lines = _lines(f, fmt)
                    rows += lines[1:] if fmt.get("header", True) else lines
            return rows
        df = self.to_pandas_dataframe()
        if len(df.columns) != 1:
            raise ValueError("a profile's input_dataset has one column (each row a request body), not %d"
                             % len(df.columns))
        return [str(v) for v in df.iloc[:, 0]]

    def to_pandas_dataframe(self, on_error="null", out_of_range_datetime="null"):
        return self._read()

    def to_csv_files(self, separator=","):
        raise NotImplementedError("TabularDataset.to_csv_files is not supported by atelier: "
                                  "to_pandas_dataframe().to_csv(...)")

    def to_parquet_files(self):
        raise NotImplementedError("TabularDataset.to_parquet_files is not supported by atelier: "
                                  "to_pandas_dataframe().to_parquet(...)")

    def take(self, count):
        return self._derive(["take", int(count)])

    def skip(self, count):
        return self._derive(["skip", int(count)])

    def head(self, count):
        return self.take(count).to_pandas_dataframe()

    def keep_columns(self, columns, validate=False):
        return self._derive(["keep_columns", [columns] if isinstance(columns, str) else list(columns)])

    def drop_columns(self, columns):
        return self._derive(["drop_columns", [columns] if isinstance(columns, str) else list(columns)])

    def take_sample(self, probability, seed=None):
        return self._derive(["sample", float(probability), seed])

    def random_split(self, percentage, seed=None):
        return self._derive(["split", float(percentage), seed, 0]), self._derive(["split", float(percentage), seed, 1])

    def to_path(self):
        if self._local is not None:
            return ["/" + r for _, r in self._local_files()]
        return ["/" + rel for _, _, rel in self._remote_files()]

    @property
    def column_names(self):
        return list(self.take(1).to_pandas_dataframe().columns)
