"""azureml.exceptions: Azure ML v1's exception classes. atelier's errors (AtelierError) are
raised as they are; these are raised where v1 code catches them by name."""

from atelier import AtelierError


class AzureMLException(AtelierError):
    def __init__(self, exception_message="", inner_exception=None, code="invalid", status=400, **kwargs):
        super().__init__(exception_message, code=code, status=status)
        self.inner_exception = inner_exception

    @property
    def message(self):
        return self.args[0] if self.args else ""

    @message.setter
    def message(self, v):
        pass


class UserErrorException(AzureMLException):
    pass


class ProjectSystemException(AzureMLException):
    pass


class WorkspaceException(ProjectSystemException):
    pass


class ComputeTargetException(AzureMLException):
    pass


class ExperimentExecutionException(AzureMLException):
    pass


# What Run.wait_for_completion raises for a Failed run.
from atelier import ActivityFailedError as ActivityFailedException  # noqa: E402


class ModelNotFoundException(AzureMLException):
    pass


# What the atelier SDK's web services raise.
from atelier.webservice import WebserviceException  # noqa: E402


class AuthenticationException(AzureMLException):
    pass


class RunEnvironmentException(AzureMLException):
    pass


class DatasetNotFoundError(UserErrorException):
    pass


__all__ = ["AzureMLException", "UserErrorException", "ProjectSystemException", "WorkspaceException",
           "ComputeTargetException", "ExperimentExecutionException", "ActivityFailedException",
           "ModelNotFoundException", "WebserviceException", "AuthenticationException",
           "RunEnvironmentException", "DatasetNotFoundError"]
