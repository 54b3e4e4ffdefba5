"""Azure ML SDK v1 (azureml-core) names, mapped onto atelier (issue 24).

``from azureml.core import Workspace, Experiment, Run, ScriptRunConfig, ...`` works against an
atelier server unchanged: the classes are the atelier SDK's, with Azure ML v1's constructors,
argument names and return shapes. A v1 name whose feature atelier does not have raises
NotImplementedError saying what atelier offers instead. Standard library only (pandas is used
by TabularDataset.to_pandas_dataframe when it is installed). See docs/azureml-v1.md.
"""


# A pkgutil-style namespace, as the scoring runtime's stand-ins (azureml.contrib.services,
# azureml.monitoring in images) are: installed together, both packages' modules are found.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)
