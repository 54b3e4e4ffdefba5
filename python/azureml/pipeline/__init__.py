"""azureml.pipeline: v1's pipelines. atelier has no pipelines yet: the classes exist so v1 code
imports, and constructing one raises NotImplementedError saying what to do instead."""
