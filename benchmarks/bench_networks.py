"""Empirical kernels of ntkeq.networks: speed, and convergence to the closed forms.

Run by hand (about two minutes on two cores)::

    python3 benchmarks/bench_networks.py [--out docs/figures/networks_convergence.png]

Prints two markdown tables for docs/networks.md:

1. the median wall time of :func:`ntkeq.networks.empirical_ntk` (layer-wise
   identity) against full per-example Jacobians from ``torch.func``, on the
   same float64 network and inputs, and their largest relative difference;
2. the relative Frobenius error of the empirical NTK and readout NNGP of one
   network (RMS over seeds) against :func:`ntkeq.kernels.relu_kernels`, for
   widths 64 to 4096, with the fitted slope of log error on log width (the
   theory says -1/2).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.func import functional_call, jacrev, vmap

from ntkeq.kernels import relu_kernels
from ntkeq.networks import MLP, derived_seeds, empirical_ntk, readout_nngp


def _median_time(fn: Any, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _jacobian_ntk(net: MLP, X: torch.Tensor) -> torch.Tensor:
    params = {k: v.detach() for k, v in net.named_parameters()}

    def f(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(net, p, (x[None],))[0]

    J = vmap(jacrev(f), in_dims=(None, 0))(params, X)
    flat = torch.cat([j.reshape(X.shape[0], -1) for j in J.values()], dim=1)
    return flat @ flat.T


def speed_table(n: int = 64, depth: int = 2) -> None:
    X = torch.from_numpy(np.random.default_rng(0).standard_normal((n, 15)))
    print(
        f"\nempirical NTK, {n} inputs, depth {depth}, float64, "
        f"{torch.get_num_threads()} thread(s), median of 5 runs"
    )
    print(
        "| width | parameters | layer-wise (s) | Jacobians (s) | ratio | max rel diff |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for width in (128, 256, 512, 1024):
        net = MLP(15, depth, width, "ntkb", seed=0, dtype=torch.float64)
        t_fast = _median_time(lambda net=net: empirical_ntk(net, X))
        t_slow = _median_time(lambda net=net: _jacobian_ntk(net, X), repeats=3)
        fast = empirical_ntk(net, X)
        slow = _jacobian_ntk(net, X).numpy()
        diff = np.abs(fast - slow).max() / np.abs(slow).max()
        print(
            f"| {width} | {net.n_parameters} | {t_fast:.4f} | {t_slow:.3f} | "
            f"{t_slow / t_fast:.0f} | {diff:.1e} |"
        )


def convergence_table(out: Path | None, n_seeds: int = 4) -> None:
    X = np.random.default_rng(0).standard_normal((8, 15))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    widths = [64, 256, 1024, 4096]
    print(f"\nRMS relative error of one network's kernel over {n_seeds} seeds")
    print("| family | depth | kernel | " + " | ".join(map(str, widths)) + " | slope |")
    print("| --- | --- | --- | " + "--- | " * len(widths) + "--- |")
    curves = {}
    for family in ("ntkb", "ntkj", "ntka"):
        for depth in (1, 2, 3):
            nngp, ntk = relu_kernels(X, family=family, depth=depth)
            errs: dict[str, list[float]] = {"ntk": [], "nngp": []}
            for width in widths:
                e_ntk, e_nngp = [], []
                for s in derived_seeds(1, n_seeds):
                    net = MLP(15, depth, width, family, s, dtype=torch.float64)
                    k = empirical_ntk(net, X)
                    g = readout_nngp(net, X)
                    e_ntk.append((np.linalg.norm(k - ntk) / np.linalg.norm(ntk)) ** 2)
                    e_nngp.append(
                        (np.linalg.norm(g - nngp) / np.linalg.norm(nngp)) ** 2
                    )
                errs["ntk"].append(math.sqrt(np.mean(e_ntk)))
                errs["nngp"].append(math.sqrt(np.mean(e_nngp)))
            for kind, e in errs.items():
                slope = np.polyfit(np.log(widths), np.log(e), 1)[0]
                row = " | ".join(f"{v:.4f}" for v in e)
                print(f"| {family} | {depth} | {kind} | {row} | {slope:.2f} |")
                curves[family, depth, kind] = e
    if out is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
        for ax, kind in zip(axes, ("ntk", "nngp"), strict=True):
            for (family, depth, curve_kind), e in curves.items():
                if curve_kind == kind:
                    ax.loglog(widths, e, marker="o", label=f"{family} L={depth}")
            ref = [
                curves["ntkb", 1, kind][0] * math.sqrt(widths[0] / w) for w in widths
            ]
            ax.loglog(widths, ref, "k--", label="width^-1/2")
            ax.set_xlabel("width")
            ax.set_title(f"empirical {kind.upper()} vs closed form")
        axes[0].set_ylabel("relative Frobenius error (RMS)")
        axes[1].legend(fontsize=7, ncol=2)
        fig.tight_layout()
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=120)
        print(f"\nfigure written to {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="convergence figure")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: steadiest timings)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    speed_table()
    convergence_table(args.out)


if __name__ == "__main__":
    main()
