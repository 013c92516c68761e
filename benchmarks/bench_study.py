"""Speed of the kernel-only paper study: 50 trials, nine kernels, nine solves.

Run by hand::

    python3 benchmarks/bench_study.py [--preset paper-as-published] [--trials 50]

It times the whole study through :func:`ntkeq.study.runner.run_study` (data,
Gram matrices, ridgeless solves, SQLite writes), then one trial's parts, and
compares with the floor set by the factorizations a trial cannot avoid: one
n_obs x n_obs factorization to sample y (n^3/3 flops for Cholesky) and nine
n_train x n_train Cholesky solves (9 n_train^3/3). The machine's float64
Cholesky rate is measured in the same run. Finally it prints the kernel rows
beside the published Figure 3 (mean +- SE, ddof 0).

Imports happen before timing: the runner records the study's device, which
imports PyTorch (over a second) even for a kernel-only study. A trial runs
its linear algebra with one BLAS thread (see ``ntkeq.study.trial``), so the
parts and the Cholesky rate are measured with one BLAS thread too. Prints
the load average before and after, as timings on a loaded machine mislead.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.linalg
from threadpoolctl import threadpool_limits

from ntkeq import data, kernels
from ntkeq.regression import solve_dual
from ntkeq.study.config import apply_overrides, load_preset
from ntkeq.study.report import PUBLISHED_FIGURE3, report_table
from ntkeq.study.runner import run_study
from ntkeq.study.trial import resolve_device, trial_seed


def cholesky_gflops(n: int, repeats: int = 7) -> float:
    """Median float64 Cholesky rate (n^3/3 flops per call) on an n x n SPD matrix."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, n))
    A = A @ A.T + n * np.eye(n)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        scipy.linalg.cholesky(A, lower=True, check_finite=False)
        times.append(time.perf_counter() - t0)
    return n**3 / 3 / statistics.median(times) / 1e9


def trial_parts(preset: str, repeats: int = 5) -> dict[str, float]:
    """Median seconds of one trial's data, Gram matrices and nine solves."""
    cfg = apply_overrides(load_preset(preset), models="kernels")
    names = [m.name for m in cfg.models]
    parts: dict[str, list[float]] = {"data": [], "grams": [], "solves": []}
    for i in range(repeats):
        t0 = time.perf_counter()
        split = data.simulate(
            n_obs=cfg.data.n_obs,
            d_in=cfg.data.d_in,
            variant=cfg.data_variant,
            test_fraction=cfg.data.test_fraction,
            seed=trial_seed(cfg.seed, i),
        )
        t1 = time.perf_counter()
        X = np.concatenate([split.X_train, split.X_test])
        grams = kernels.gram_many(names, X, variant=cfg.variant)
        t2 = time.perf_counter()
        n = split.n_train
        for K in grams.values():
            solve_dual(K[:n, :n], split.y_train)
        t3 = time.perf_counter()
        parts["data"].append(t1 - t0)
        parts["grams"].append(t2 - t1)
        parts["solves"].append(t3 - t2)
    return {k: statistics.median(v) for k, v in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper-as-published")
    parser.add_argument("--trials", type=int, default=50)
    args = parser.parse_args()

    cfg = apply_overrides(
        load_preset(args.preset), models="kernels", trials=args.trials
    )
    n_obs = cfg.data.n_obs
    n_train = data.split_sizes(n_obs, cfg.data.test_fraction)[0]
    resolve_device(cfg.device)  # the import of PyTorch, outside the timing
    load_before = os.getloadavg()[0]

    # whole study, through the runner and the store
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        results = run_study(cfg, Path(tmp) / "out")
        wall = time.perf_counter() - t0

    # parts of one trial and the floor
    with threadpool_limits(limits=1, user_api="blas"):
        parts = trial_parts(args.preset)
        rate = cholesky_gflops(n_train)
    floor_flops = n_obs**3 / 3 + 9 * n_train**3 / 3
    floor = floor_flops / (rate * 1e9)
    per_trial = wall / args.trials

    print(f"preset {args.preset}, kernels only, {args.trials} trials")
    print(
        f"  1-minute load average    {load_before:8.2f} before, "
        f"{os.getloadavg()[0]:.2f} after"
    )
    print(f"  study wall time          {wall:8.2f} s  ({per_trial * 1e3:.0f} ms/trial)")
    for k, v in parts.items():
        print(f"  one trial: {k:<13} {v * 1e3:8.1f} ms (median of 5)")
    print(f"  float64 Cholesky rate    {rate:8.2f} GFLOP/s (n = {n_train}, 1 thread)")
    print(
        f"  floor per trial          {floor * 1e3:8.1f} ms "
        f"({floor_flops / 1e9:.2f} GFLOP of factorizations)"
    )
    print(f"  ratio to the floor       {per_trial / floor:8.1f} x")
    print()
    print("| model | published mean ± SE | ours mean ± SE | difference / combined SE |")
    print("| --- | --- | --- | --- |")
    for row in report_table(results):
        pub_mean, pub_se = PUBLISHED_FIGURE3[row["model"]]
        z = (row["mean_rmse"] - pub_mean) / math.hypot(row["se"], pub_se)
        print(
            f"| {row['model']} | {pub_mean:.6f} ± {pub_se:.6f} | "
            f"{row['mean_rmse']:.6f} ± {row['se']:.6f} | {z:+.1f} |"
        )


if __name__ == "__main__":
    main()
