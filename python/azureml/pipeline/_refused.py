from .._compat import unsupported

INSTEAD = ("atelier has no pipelines yet: submit each step as a ScriptRunConfig, passing data through "
           "OutputFileDatasetConfig destinations and datasets (Dataset.File.from_files)")


def refused(name):
    def init(self, *args, **kwargs):
        raise unsupported(name, INSTEAD)

    def static(*args, **kwargs):
        raise unsupported(name, INSTEAD)

    return type(name, (), {"__init__": init, "__doc__": "v1's %s: not supported by atelier yet." % name,
                           "get": staticmethod(static), "list": staticmethod(static),
                           "create": staticmethod(static)})
