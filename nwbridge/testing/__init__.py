"""Synthetic sessions for tests, demos and benchmarks."""

from .ibl import IBL_LABS, make_ibl_session

__all__ = ["IBL_LABS", "make_ibl_session"]
