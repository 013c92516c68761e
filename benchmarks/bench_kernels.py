"""Speed and memory of ntkeq.kernels (run by hand; figures go to docs/kernels.md).

Measures, on the paper's inputs (rows uniform on [-5, 7]^15 scaled to unit
norm):

1. the nine paper kernels on 1000 x 1000, one call each and in one
   ``gram_many`` pass, for each variant and thread count;
2. a "numpy floor": the time of the same number of elementwise passes over a
   1000 x 1000 float64 array that the implementation makes (counted from the
   computation plan below: arccos, sqrt and exp passes timed as such, every
   other pass timed as a multiply), and the ratio ours / floor; then the
   same floor plus producing the results: nine fresh 1000 x 1000 arrays
   allocated together and each written once, as ``gram_many`` returns them
   (their first touch costs page faults that passes over a reused array
   never pay);
3. peak extra memory of a blocked n = 20,000 Gram matrix (tracemalloc, which
   sees numpy's allocations) against the 3.2 GB of the result itself.

Usage::

    python3 benchmarks/bench_kernels.py            # everything (about 1 min)
    python3 benchmarks/bench_kernels.py --quick    # skip the n = 20,000 run
    python3 benchmarks/bench_kernels.py --repeats 9 --n-large 10000

Timings are medians over ``--repeats`` runs; wall clock and process CPU time
are both reported, since other load on the machine inflates wall clock.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
import tracemalloc
from collections.abc import Callable

import numpy as np

from ntkeq import kernels as K


def paper_inputs(n: int, d: int = 15, seed: int = 0) -> np.ndarray:
    X = np.random.default_rng(seed).uniform(-5.0, 7.0, size=(n, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``fn`` over ``repeats`` runs (one warm-up)."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def count_passes(
    names: list[str], X: np.ndarray, variant: str, block_size: int
) -> dict[str, float]:
    """Elementwise passes per Gram entry that one ``gram_many`` call makes.

    Mirrors the operations of ``_Plan.fill`` and ``_run`` one by one; the
    counts are per computed entry (with X2 = None only the upper triangle of
    tiles is computed, about half the entries, and then mirrored).
    """
    reqs = [K.kernel(n, variant=variant)._request(X.shape[1]) for n in names]
    plan = K._Plan(reqs, X, X)
    n = {"arccos": 0.0, "sqrt": 0.0, "exp": 0.0, "other": 0.0}

    def outer(u: np.ndarray, w: np.ndarray) -> int:
        return 1 if (u.min() == u.max() and w.min() == w.max()) else 2

    for node in plan.nodes:
        b = node.layers[-1][0] if node.layers else node.b0
        f1, f2, s1, s2 = plan.factors[node]
        n["other"] += 1 + (b != 0.0) + outer(f1, f2) + outer(s1, s2)
        n["other"] += 3 if node.variant == "as-published" else 0
        n["other"] += 1 + 1 + 3 + 2  # clip, π − δ, sin (mul, sub, max), mul, add
        n["arccos"] += 1
        n["sqrt"] += 1
    for req in reqs:
        if req.kind == "laplace":
            n["other"] += 6
            n["sqrt"] += 1
            n["exp"] += 1
        elif req.kind == "nngp":
            assert req.chain is not None
            n["other"] += 1 + (req.chain.layers[-1][0] != 0.0)
        else:
            n["other"] += 1 + (req.theta0[1] != 0.0)
            for r, s, _ in req.theta:
                n["other"] += 2 + (1 if s == 1.0 else 2) + (r != 0.0)
        n["other"] += 2  # copy into the result, mirror
    return n


def floor_seconds(passes: dict[str, float], repeats: int) -> float:
    """Time of the counted passes over whole 1000 x 1000 arrays (median)."""
    rng = np.random.default_rng(0)
    a = rng.uniform(-1.0, 1.0, size=(1000, 1000))
    b = np.empty_like(a)
    ops = {
        "arccos": lambda: np.arccos(a, out=b),
        "sqrt": lambda: np.sqrt(np.abs(a, out=b), out=b),
        "exp": lambda: np.exp(a, out=b),
        "other": lambda: np.multiply(a, 1.0001, out=b),
    }
    total = 0.0
    for key, count in passes.items():
        if count:
            wall, _ = timed(ops[key], repeats)
            if key == "sqrt":  # the abs above is a second pass
                wall -= timed(ops["other"], repeats)[0]
            total += count * wall
    return total


def fresh_outputs_seconds(count: int, repeats: int) -> float:
    """Median time to allocate ``count`` 1000 x 1000 arrays together and
    write each once (they are all alive at once, like ``gram_many``'s)."""

    def make() -> list[np.ndarray]:
        outs = [np.empty((1000, 1000)) for _ in range(count)]
        for out in outs:
            out.fill(1.0)
        return outs

    return timed(make, repeats)[0]


def bench_paper(repeats: int) -> None:
    X = paper_inputs(1000)
    names = K.kernel_names()
    cpus = os.cpu_count() or 1
    print(f"\n## nine paper kernels, 1000 x 1000, d = 15 (median of {repeats})\n")
    print("| variant | threads | one by one (wall / cpu) | gram_many (wall / cpu) |")
    print("| --- | --- | --- | --- |")
    for variant in K.VARIANTS:
        ks = [K.kernel(n, variant=variant) for n in names]
        for threads in sorted({1, min(2, cpus)}):
            one = timed(lambda: [k(X, n_threads=threads) for k in ks], repeats)  # noqa: B023
            many = timed(
                lambda: K.gram_many(names, X, variant=variant, n_threads=threads),  # noqa: B023
                repeats,
            )
            print(
                f"| {variant} | {threads} | {one[0] * 1e3:.0f} ms / "
                f"{one[1] * 1e3:.0f} ms | {many[0] * 1e3:.0f} ms / "
                f"{many[1] * 1e3:.0f} ms |"
            )

    print("\n## numpy floor (gram_many, exact, 1 thread)\n")
    outputs = fresh_outputs_seconds(len(names), repeats)
    print(f"\nnine fresh results, allocated and written once: {outputs * 1e3:.0f} ms\n")
    print(
        "| inputs | passes per entry | floor | ours (wall) | ours / floor "
        "| ours / (floor + results) |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for label, Y in (("X2 = None", None), ("X2 = X (full)", X)):
        passes = count_passes(names, X, "exact", K.DEFAULT_BLOCK_SIZE)
        share = 1.0
        if Y is None:
            nb = -(-1000 // K.DEFAULT_BLOCK_SIZE)
            share = (nb * (nb + 1) / 2) / nb**2  # tiles on or above the diagonal
        scaled = {k: v * share for k, v in passes.items()}
        floor = floor_seconds(scaled, repeats)
        ours, _ = timed(lambda: K.gram_many(names, X, Y, n_threads=1), repeats)  # noqa: B023
        total = sum(passes.values())
        print(
            f"| {label} | {total:.0f} ({passes['arccos']:.0f} arccos, "
            f"{passes['sqrt']:.0f} sqrt, {passes['exp']:.0f} exp) x {share:.2f} "
            f"| {floor * 1e3:.0f} ms | {ours * 1e3:.0f} ms | {ours / floor:.2f} "
            f"| {ours / (floor + outputs):.2f} |"
        )


def bench_large(n: int) -> None:
    X = paper_inputs(n)
    result_gb = n * n * 8 / 1e9
    print(f"\n## blocked n = {n:,} (NTKB2, exact), result {result_gb:.1f} GB\n")
    print("| threads | wall | peak traced | peak beyond the result |")
    print("| --- | --- | --- | --- |")
    for threads in sorted({1, min(2, os.cpu_count() or 1)}):
        tracemalloc.start()
        w0 = time.perf_counter()
        G = K.kernel("NTKB2")(X, n_threads=threads)
        wall = time.perf_counter() - w0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        extra = peak - G.nbytes
        del G
        print(
            f"| {threads} | {wall:.1f} s | {peak / 1e9:.2f} GB | {extra / 1e6:.0f} MB |"
        )


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--n-large", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="skip the large run")
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"# bench_kernels, {datetime.date.today()}, {cpu_name()} "
        f"({os.cpu_count()} cores), numpy {np.__version__}, load {load:.1f}"
    )
    bench_paper(args.repeats)
    if not args.quick:
        bench_large(args.n_large)


if __name__ == "__main__":
    main()
