"""Overhead of ``ntkeq sweep`` over the networks' own training time.

Run by hand::

    python3 benchmarks/bench_sweep.py [--widths 1024,4096] [--trials 2]
        [--epochs 300] [--repeats 3]

Each repeat runs :func:`ntkeq.study.sweep.run_sweep` on the ``quick`` preset's
data (n_obs 1000) with NN1 only (and its ``@`` predictor where the study
supports predictors) into a fresh folder, then writes the sweep report and
figure. The sweep's overhead is its wall time minus the networks' stored
``fit_time`` (their training, as timed by the trial): it covers data,
kernels and predictors, the store and the sweep's bookkeeping. The report
(tables and one figure, a fixed cost whatever the widths and epochs) is
timed on its own. Imports (PyTorch, scikit-learn through the regression
module, Matplotlib) happen before timing. Each repeat starts with empty in-process
caches (data splits, Gram matrices, eigendecompositions), as a fresh
``ntkeq sweep`` process would; within a repeat every width after the first
reuses them. Prints every repeat, the median ratio and the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot  # noqa: F401  (imported before timing)

import ntkeq.equivalence
import ntkeq.regression
import ntkeq.training  # noqa: F401
from ntkeq.study.config import NetworkModelConfig, apply_overrides, load_preset
from ntkeq.study.store import STORE_NAME, ResultsStore
from ntkeq.study.sweep import parse_widths, run_sweep, width_dir, write_sweep_report
from ntkeq.study.trial import clear_gram_cache, clear_split_cache


def network_seconds(out: Path, widths: tuple[int, ...], networks: set[str]) -> float:
    """Sum of the stored fit_time of every network result in a sweep folder."""
    total = 0.0
    for w in widths:
        with ResultsStore(width_dir(out, w) / STORE_NAME, readonly=True) as store:
            for _t, model, _s, _r, fit_time, _reason in store.rows():
                if model in networks:
                    total += float(fit_time)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="1024,4096")
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    widths = parse_widths(args.widths)
    config = apply_overrides(
        load_preset("quick"),
        models="NN1",
        trials=args.trials,
        epochs=args.epochs,
        device="cpu",
    )
    networks = {m.name for m in config.models if isinstance(m, NetworkModelConfig)}

    ratios: list[float] = []
    report_times: list[float] = []
    load_before = os.getloadavg()[0]
    for r in range(args.repeats):
        clear_gram_cache()
        clear_split_cache()
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "sweep"
            t0 = time.perf_counter()
            results = run_sweep(config, widths, out)
            total = time.perf_counter() - t0
            write_sweep_report(results, out)
            report_times.append(time.perf_counter() - t0 - total)
            train = network_seconds(out, widths, networks)
        overhead = total - train
        ratios.append(overhead / train)
        print(
            f"repeat {r}: sweep {total:.2f} s, network training {train:.2f} s, "
            f"overhead {overhead:.2f} s = {100 * overhead / train:.2f} %; "
            f"report {report_times[-1]:.2f} s "
            f"(models {', '.join(results.base_config.model_names)})"
        )
    print(
        f"median sweep overhead over {args.repeats} repeats: "
        f"{100 * statistics.median(ratios):.2f} % of the networks' training time, "
        f"report {statistics.median(report_times):.2f} s "
        f"(widths {args.widths}, {args.trials} trials, {args.epochs} epochs); "
        f"1-minute load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after"
    )


if __name__ == "__main__":
    main()
