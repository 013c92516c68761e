"""Kernel regression (being written)."""


class KernelRegressor:
    pass
