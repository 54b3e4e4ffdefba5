"""azureml.core.resource_configuration: v1's ResourceConfiguration, the resources a model is
registered to need (recorded by Model.register as the model's properties cpu, memory_in_gb and
gpu; not used to size deployments: give cpu_cores and memory_gb in the deployment configuration)."""

__all__ = ["ResourceConfiguration"]


class ResourceConfiguration:
    def __init__(self, cpu=None, memory_in_gb=None, gpu=None):
        self.cpu = cpu
        self.memory_in_gb = memory_in_gb
        self.gpu = gpu

    def serialize(self):
        return {"cpu": self.cpu, "memoryInGB": self.memory_in_gb, "gpu": self.gpu}

    @staticmethod
    def deserialize(payload):
        payload = payload or {}
        return ResourceConfiguration(payload.get("cpu"), payload.get("memoryInGB"), payload.get("gpu"))

    def __repr__(self):
        return "ResourceConfiguration(cpu=%r, memory_in_gb=%r, gpu=%r)" % (self.cpu, self.memory_in_gb, self.gpu)
