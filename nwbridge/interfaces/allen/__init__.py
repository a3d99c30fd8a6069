"""Interfaces reading one modality each of an Allen Visual Behavior Neuropixels session (AllenSDK NWB files)."""

from .electrodes import AllenProbesInterface
from .eye_tracking import AllenEyeTrackingInterface
from .lfp import AllenLfpInterface
from .licks import AllenLicksInterface
from .optotagging import AllenOptotaggingInterface
from .rewards import AllenRewardsInterface
from .running import AllenRunningInterface
from .session import AllenSessionInterface
from .stimuli import AllenStimulusInterface
from .trials import AllenTrialsInterface
from .units import AllenUnitsInterface

# The interfaces of the processed file, in the order they are added to it.
PROCESSED_INTERFACES = [
    AllenSessionInterface,
    AllenProbesInterface,
    AllenUnitsInterface,
    AllenTrialsInterface,
    AllenStimulusInterface,
    AllenOptotaggingInterface,
    AllenRunningInterface,
    AllenLicksInterface,
    AllenRewardsInterface,
    AllenEyeTrackingInterface,
]

__all__ = [cls.__name__ for cls in PROCESSED_INTERFACES] + ["AllenLfpInterface", "PROCESSED_INTERFACES"]
