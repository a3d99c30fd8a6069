"""Synthetic sessions for tests, demos and benchmarks."""

from .allen import VbnSession, make_vbn_session
from .ibl import IBL_LABS, make_ibl_session

__all__ = ["IBL_LABS", "VbnSession", "make_ibl_session", "make_vbn_session"]
