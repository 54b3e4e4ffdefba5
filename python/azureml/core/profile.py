"""azureml.core.profile: v1's ModelProfile, what Model.profile returns (the atelier SDK's:
a temporary service measured with the dataset's requests; see atelier.webservice.ModelProfile)."""

from atelier.webservice import (MAX_PROFILE_CPU, MAX_PROFILE_MEMORY, MIN_PROFILE_CPU, MIN_PROFILE_MEMORY,
                                ModelProfile)

__all__ = ["ModelProfile", "MIN_PROFILE_CPU", "MAX_PROFILE_CPU", "MIN_PROFILE_MEMORY", "MAX_PROFILE_MEMORY"]
