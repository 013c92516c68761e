"""Overhead of ``ntkeq sweep`` over the networks' own training time.

Run by hand::

    python3 benchmarks/bench_sweep.py [--widths 1024,4096] [--trials 2]
        [--epochs 300] [--repeats 3]

Each repeat runs :func:`ntkeq.study.sweep.run_sweep` on the ``quick`` preset's
data (n_obs 1000) with NN1 only (and its ``@`` predictor where the study
supports predictors) into a fresh folder, then writes the sweep report and
figure. The overhead is the wall time of all of that minus the networks'
stored ``fit_time`` (their training, as timed by the trial): it covers data,
kernels and predictors, the store, the sweep's bookkeeping and the report.
Imports happen before timing. Prints every repeat and the median ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from ntkeq.study.config import NetworkModelConfig, apply_overrides, load_preset
from ntkeq.study.store import STORE_NAME, ResultsStore
from ntkeq.study.sweep import parse_widths, run_sweep, width_dir, write_sweep_report


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

    ratios = []
    for r in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "sweep"
            t0 = time.perf_counter()
            results = run_sweep(config, widths, out)
            write_sweep_report(results, out)
            total = time.perf_counter() - t0
            train = network_seconds(out, widths, networks)
        overhead = total - train
        ratios.append(overhead / train)
        print(
            f"repeat {r}: total {total:.2f} s, network training {train:.2f} s, "
            f"overhead {overhead:.2f} s = {100 * overhead / train:.2f} % "
            f"(models {', '.join(results.base_config.model_names)})"
        )
    print(
        f"median overhead over {args.repeats} repeats: "
        f"{100 * statistics.median(ratios):.2f} % of the networks' training time "
        f"(widths {args.widths}, {args.trials} trials, {args.epochs} epochs)"
    )


if __name__ == "__main__":
    main()
