"""Closed-form NTK and NNGP kernels (being written)."""

from typing import Any


def kernel(name: str, variant: str = "exact", **params: Any) -> Any:
    raise NotImplementedError("ntkeq.kernels is being written")
