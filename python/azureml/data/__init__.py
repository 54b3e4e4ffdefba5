"""azureml.data: v1's data references, data paths, datasets and output dataset configs,
mapped onto atelier's datastores and run data references (see docs/azureml-v1.md)."""

from .data_reference import DataReference
from .datapath import DataPath, DataPathComputeBinding
from .dataset_consumption_config import DatasetConsumptionConfig
from .file_dataset import FileDataset
from .output_dataset_config import OutputFileDatasetConfig, OutputDatasetConfig
from .tabular_dataset import TabularDataset

__all__ = ["DataReference", "DataPath", "DataPathComputeBinding", "DatasetConsumptionConfig", "FileDataset",
           "TabularDataset", "OutputFileDatasetConfig", "OutputDatasetConfig"]
