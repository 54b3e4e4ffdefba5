"""What a run's arguments and data configuration may hold (data references, dataset inputs,
output folders) and how each becomes one of atelier's run data references."""

import re

PLACEHOLDER = "$AZUREML_DATAREFERENCE_"
_SAFE = re.compile(r"[^A-Za-z0-9_]")


def atelier_name(name):
    """A v1 data name as atelier's (1-64 letters, digits or '_'; ATELIER_DATA_<NAME>)."""
    n = _SAFE.sub("_", name or "data")[:64]
    return n or "data"


class Binding:
    """Base of the objects a ScriptRunConfig turns into data references: _ref() gives
    (v1 name, datastore name, path on the datastore, mode, dataset document or None)."""

    def _ref(self):
        raise NotImplementedError

    def __str__(self):
        return PLACEHOLDER + self._ref()[0]


def datastore_name(ds):
    return ds if isinstance(ds, str) else getattr(ds, "name", None)
