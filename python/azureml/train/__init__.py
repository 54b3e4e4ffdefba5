"""azureml.train: v1's (deprecated) estimators, as ScriptRunConfigs."""
