"""nwbridge: IBL Brain Wide Map and Allen Visual Behavior Neuropixels sessions in one NWB representation."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("nwbridge")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "convert_ibl_session", "convert_allen_session"]


def __getattr__(name):
    # Imported lazily: the converter pulls in pynwb and neuroconv, which `nwbridge --help` does not need.
    if name == "convert_ibl_session":
        from .converters.ibl_session import convert_ibl_session

        return convert_ibl_session
    if name == "convert_allen_session":
        from .converters.allen_session import convert_allen_session

        return convert_allen_session
    raise AttributeError(f"module 'nwbridge' has no attribute {name!r}")
