"""ntkeq: does a wide network behave like its neural tangent kernel?

Closed-form NTK and NNGP kernels of fully connected ReLU networks of any depth
(:mod:`ntkeq.kernels`), the finite networks they describe
(:mod:`ntkeq.networks`), a fast SGD trainer (:mod:`ntkeq.training`), the
paper's simulated data (:mod:`ntkeq.data`), kernel regression
(:class:`KernelRegressor`) and a resumable study runner (:mod:`ntkeq.study`).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ntkeq")
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0.0.0+unknown"

from ntkeq.kernels import kernel
from ntkeq.regression import KernelRegressor

__all__ = ["KernelRegressor", "__version__", "kernel"]
