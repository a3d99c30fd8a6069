"""Interfaces reading one modality each of an IBL session (ALF files)."""

from .licks import IblLicksInterface
from .rewards import IblRewardsInterface
from .session import IblSessionInterface
from .trials import IblTrialsInterface
from .wheel import IblWheelInterface

# The interfaces of the processed file, in the order they are added to it.
PROCESSED_INTERFACES = [
    IblSessionInterface,
    IblTrialsInterface,
    IblWheelInterface,
    IblLicksInterface,
    IblRewardsInterface,
]

__all__ = [cls.__name__ for cls in PROCESSED_INTERFACES] + ["PROCESSED_INTERFACES"]
