"""Moved to :mod:`shipit.parity.versions`. This name stays only until tests/test_nodeinfo.py
(rewritten on branch ``node``) imports ``compare`` from there; then delete this module."""

from .parity.versions import DASK_OPTIONAL, DASK_STACK, Facts, compare

__all__ = ["DASK_OPTIONAL", "DASK_STACK", "Facts", "compare"]
