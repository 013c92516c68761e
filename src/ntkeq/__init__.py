"""ntkeq: does a wide network behave like its neural tangent kernel?

Closed-form NTK and NNGP kernels of fully connected ReLU networks of any depth
(:mod:`ntkeq.kernels`), the finite networks they describe
(:mod:`ntkeq.networks`), a fast SGD trainer (:mod:`ntkeq.training`), the
paper's simulated data (:mod:`ntkeq.data`), kernel regression
(:class:`KernelRegressor`), direct measures of network-kernel agreement
(:mod:`ntkeq.equivalence`) and a resumable study runner (:mod:`ntkeq.study`).

The names below are re-exported lazily: ``import ntkeq`` stays cheap, and
``ntkeq.MLP`` imports PyTorch only when first used.

>>> import ntkeq
>>> ntkeq.kernel("NTKB2").name
'NTKB2'
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("ntkeq")
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0.0.0+unknown"

#: Public name -> module that defines it.
_EXPORTS: dict[str, str] = {
    "kernel": "ntkeq.kernels",
    "kernel_names": "ntkeq.kernels",
    "gram_many": "ntkeq.kernels",
    "relu_kernels": "ntkeq.kernels",
    "MLP": "ntkeq.networks",
    "empirical_ntk": "ntkeq.networks",
    "empirical_nngp": "ntkeq.networks",
    "TrainConfig": "ntkeq.training",
    "TrainResult": "ntkeq.training",
    "train": "ntkeq.training",
    "estimate_cost": "ntkeq.training",
    "Split": "ntkeq.data",
    "simulate": "ntkeq.data",
    "load_diabetes_split": "ntkeq.data",
    "KernelRegressor": "ntkeq.regression",
    "NumericalWarning": "ntkeq.regression",
    "kernel_gd_predict": "ntkeq.regression",
    "LazyTracker": "ntkeq.equivalence",
    "agreement_table": "ntkeq.equivalence",
    "fit_power_law": "ntkeq.equivalence",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ntkeq' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
