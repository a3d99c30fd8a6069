"""Interfaces reading one modality each of an IBL session (ALF files)."""

from .cameras import IblCamerasInterface
from .electrodes import IblProbesInterface
from .epochs import IblEpochsInterface
from .licks import IblLicksInterface
from .motion_energy import IblMotionEnergyInterface
from .passive import IblPassiveInterface
from .pose import IblPoseInterface
from .pupil import IblPupilInterface
from .raw_ephys import IblRawEphysInterface
from .rewards import IblRewardsInterface
from .session import IblSessionInterface
from .spike_sorting import IblSortingInterface
from .trials import IblTrialsInterface
from .wheel import IblWheelInterface

# The interfaces of the processed file, in the order they are added to it.
PROCESSED_INTERFACES = [
    IblSessionInterface,
    IblProbesInterface,
    IblSortingInterface,
    IblTrialsInterface,
    IblWheelInterface,
    IblLicksInterface,
    IblRewardsInterface,
    IblEpochsInterface,
    IblPassiveInterface,
    IblCamerasInterface,
    IblPoseInterface,
    IblPupilInterface,
    IblMotionEnergyInterface,
]

__all__ = [cls.__name__ for cls in PROCESSED_INTERFACES] + ["IblRawEphysInterface", "PROCESSED_INTERFACES"]
