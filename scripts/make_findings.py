"""Regenerate ``docs/findings.md`` and its figures from stored runs.

Run from the repository root::

    python3 scripts/make_findings.py [--runs runs/findings] [--docs docs]

Every study runs into ``RUNS/<name>/`` through the ordinary resumable runner,
so a second call only reads the stores (and an interrupted one resumes). The
scale fits a 2-core CPU in roughly ten minutes; the page says what was run
and what remains unmeasured.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import math
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np

from ntkeq import __version__
from ntkeq.equivalence import finite_time_ntk_prediction, prediction_distance
from ntkeq.kernels import kernel
from ntkeq.study.config import (
    NetworkModelConfig,
    StudyConfig,
    apply_overrides,
    config_from_dict,
    load_preset,
    to_dict,
)
from ntkeq.study.report import (
    StudyResults,
    agreement_rows,
    compare_published,
    report_table,
)
from ntkeq.study.runner import run_study
from ntkeq.study.sweep import THEORY_SLOPE, SweepResults, run_sweep, write_sweep_report
from ntkeq.study.trial import build_network, model_seed, trial_split
from ntkeq.training import epoch_batches, split_validation

logger = logging.getLogger("make_findings")

#: Scale of the network runs (the paper: width 10,000, 50 trials).
SWEEP_WIDTHS = (256, 1024, 4096, 16384)
SWEEP_TRIALS = 5
SWEEP_EPOCHS = 300
FINITE_WIDTHS = {"NN1": 10_000, "NN2": 512}
FINITE_TRIALS = 3
PREDICTORS = {"NN1": "NTKJ1@NN1", "NN2": "NTKJ2@NN2"}


def kernel_study(runs: Path, preset: str) -> list[dict[str, Any]]:
    """The nine kernel rows of ``preset`` (50 trials) beside Figure 3."""
    config = apply_overrides(load_preset(preset), models="kernels")
    results = run_study(config, runs / f"kernels-{preset}")
    return compare_published(results)


def finite_time_study(runs: Path) -> StudyResults:
    """NN1 and NN2 as published, their @ predictors, and the exact NTKJ rows."""
    config = apply_overrides(
        load_preset("paper-as-published"),
        models="NN1,NN2,NTKJ1,NTKJ2",
        trials=FINITE_TRIALS,
        device="cpu",
        sets=[
            *(f"models.{name}.width={w}" for name, w in FINITE_WIDTHS.items()),
            'models.NTKJ1.variant="exact"',
            'models.NTKJ2.variant="exact"',
        ],
    )
    doc = to_dict(config)
    doc["models"] += [{"name": name} for name in PREDICTORS.values()]
    config = config_from_dict(doc, preset=config.preset)
    return run_study(config, runs / "finite-time")


def sgd_sweep_config() -> StudyConfig:
    """NN1 as the published script trains it (batch 8), for SWEEP_EPOCHS."""
    return apply_overrides(
        load_preset("paper-as-published"),
        models="NN1",
        trials=SWEEP_TRIALS,
        epochs=SWEEP_EPOCHS,
        device="cpu",
    )


def published_kernel_sweep(runs: Path) -> SweepResults:
    """The SGD sweep with the published script's NTKJ1 formulas as predictor."""
    doc = to_dict(sgd_sweep_config())
    doc["models"].append({"name": "NTKJ1@NN1", "variant": "as-published"})
    config = config_from_dict(doc, preset="paper-as-published")
    return _sweep(config, runs / "sweep-as-published-kernel")


def full_batch_sweep(runs: Path) -> SweepResults:
    """The matched preset's NNJ1 (full-batch gradient descent) at several widths."""
    config = apply_overrides(
        load_preset("matched"), models="NNJ1", trials=SWEEP_TRIALS, device="cpu"
    )
    return _sweep(config, runs / "sweep-full-batch")


def sgd_spread(config: StudyConfig, network: str = "NN1") -> list[float]:
    """Per trial: linearized SGD with the network's own batches against the
    gradient-descent predictor, as the RMSE between their test predictions.

    Both run kernel dynamics with the exact NTKJ1 kernel from f_0 = 0 on the
    network's fitting points, learning rate and epochs; the first takes the
    network's batch sequence step by step, the second its mean (what the
    ``@`` predictors compute). The difference is SGD's own spread in the
    kernel regime, whatever the width.
    """
    model = config.model(network)
    assert isinstance(model, NetworkModelConfig)
    k = kernel(f"NTKJ{model.depth}")
    out = []
    for t in range(config.trials):
        split = trial_split(config, t)
        seed = model_seed(config.seed, t, network)
        _, tc = build_network(config, model, seed, split.X_train.shape[1])
        n_fit = split_validation(len(split.y_train), tc.validation_split)[0]
        X, y = split.X_train[:n_fit], split.y_train[:n_fit]
        K_fit, K_test = k(X), k(split.X_test, X)
        residual, f_test = -np.array(y), np.zeros(len(split.y_test))
        for epoch in range(tc.epochs):
            for idx in epoch_batches(n_fit, tc.batch_size, epoch, tc.seed):
                step = (2.0 * tc.learning_rate / len(idx)) * residual[idx]
                residual -= K_fit[:, idx] @ step
                f_test -= K_test[:, idx] @ step
        mean_path = finite_time_ntk_prediction(K_fit, K_test, y, tc).predictions
        out.append(prediction_distance(f_test, mean_path))
    return out


def _sweep(config: StudyConfig, out: Path) -> SweepResults:
    results = run_sweep(config, SWEEP_WIDTHS, out)
    write_sweep_report(results, out)
    return results


def _pm(mean: float | None, se: float | None, digits: int = 4) -> str:
    if mean is None:
        return "-"
    return f"{mean:.{digits}f} ± {(se or 0.0):.{digits}f}"


def _kernel_table(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "| model | published | ours | (ours − published) / combined SE |",
        "| --- | --- | --- | --- |",
    ]
    for r in rows:
        z = "-" if r["z"] is None else f"{r['z']:+.1f}"
        out.append(
            f"| {r['model']} | {_pm(r['published_mean'], r['published_se'], 6)} | "
            f"{_pm(r['mean_rmse'], r['se'], 6)} | {z} |"
        )
    return out


def _sweep_section(sweep: SweepResults) -> list[str]:
    """The sweep's table and fitted slopes, from its own markdown report."""
    report = (sweep.out_dir / "sweep.md").read_text(encoding="utf-8")
    body = report.split("\n", 2)[2].strip().splitlines()
    keep = [line for line in body[2:] if not line.startswith("The NTK theory")]
    return [line.replace("## Fitted", "#### Fitted") for line in keep]


def _distances(sweep: SweepResults) -> dict[int, tuple[float, float]]:
    """Width -> (mean, SE) of the network-to-predictor distance."""
    return {
        r.width: (r.distance_mean, r.distance_se or 0.0)
        for r in sweep.rows
        if r.distance_mean is not None
    }


def stored_fit_seconds(runs: Path) -> float:
    """Total fit time of every (trial, model) stored under ``runs``."""
    total = 0.0
    for path in sorted(runs.rglob("results.sqlite")):
        uri = path.resolve().as_uri() + "?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
            total += conn.execute("SELECT SUM(fit_time) FROM results").fetchone()[0]
    return total


def _slope(sweep: SweepResults, series: str) -> str:
    fit = sweep.fits.get(series)
    if fit is None:
        return "-"
    return f"{fit.slope:.2f} ± {fit.slope_se:.2f}"


def _local_slopes(*sweeps: SweepResults) -> list[str]:
    tables = [_distances(sw) for sw in sweeps]
    rows = []
    for w1, w2 in itertools.pairwise(SWEEP_WIDTHS):
        cells = [
            f"{math.log(d[w2][0] / d[w1][0]) / math.log(w2 / w1):+.2f}"
            if w1 in d and w2 in d
            else "-"
            for d in tables
        ]
        rows.append(f"| {w1} → {w2} | " + " | ".join(cells) + " |")
    return rows


def _variant_rows(exact: SweepResults, published: SweepResults) -> list[str]:
    de, dp = _distances(exact), _distances(published)
    return [
        f"| {w} | {_pm(*de[w])} | {_pm(*dp[w])} |"
        for w in SWEEP_WIDTHS
        if w in de and w in dp
    ]


def write_page(
    docs: Path,
    published: list[dict[str, Any]],
    exact: list[dict[str, Any]],
    finite: StudyResults,
    sgd: SweepResults,
    full: SweepResults,
    published_kernel: SweepResults,
    spread: list[float],
    seconds: float,
) -> Path:
    """Write ``docs/findings.md`` (and copy the sweep figures next to it)."""
    figures = docs / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    for sweep, stem in ((sgd, "findings_sweep"), (full, "findings_sweep_full_batch")):
        for ext in ("png", "svg"):
            src = sweep.out_dir / f"sweep.{ext}"
            if src.exists():
                shutil.copyfile(src, figures / f"{stem}.{ext}")
    finite_rows = {r["model"]: r for r in report_table(finite)}
    distances = {(r["network"], r["kernel"]): r for r in agreement_rows(finite)}
    zs = [abs(r["z"]) for r in published if r["z"] is not None]
    widths = ", ".join(map(str, SWEEP_WIDTHS))

    lines = [
        "# Findings",
        "",
        "Generated by `python3 scripts/make_findings.py` from the stores under",
        f"`runs/findings/` ({seconds / 60:.0f} min of model fitting in all, on a",
        f"2-core CPU, no GPU; ntkeq {__version__}). Mean ± SE over trials, SE =",
        "population standard deviation / sqrt(trials) as in the paper. Seed 0",
        "everywhere.",
        "",
        "## (a) The published kernel rows are reproduced; the equations differ",
        "",
        "`paper-as-published` (the published script's kernel formulas), kernels",
        f"only, 50 trials: every row within {max(zs):.1f} combined SE of Figure 3.",
        "",
        *_kernel_table(published),
        "",
        "`paper` (the equations as written), same trials and seeds:",
        "",
        *_kernel_table(exact),
        "",
        "The published script normalizes each angle by K(x, x) K(x', x') instead",
        "of its square root (clipping the angle to 0 where the ratio leaves",
        "[−1, 1]) and carries NTKB's c_1 = 2 into its NTKJ2 recursion",
        "(`docs/theory.md`, Variants). The first change alters every kernel with a",
        "bias term, including the NTKB1 kernel that generates the responses, so",
        "under the exact equations both the data and the predictors change and",
        "every kernel's RMSE is about five times larger, with the spread between",
        "the rows nearly gone (`docs/reproduction.md`).",
        "",
        "## (b) Networks against their kernel at the same training time",
        "",
        "`paper-as-published` data; NN1 and NN2 (Jacot parameterization) trained",
        "as the published script trains them (lr 0.002, batch 8, 30 %",
        "validation, 3000 and 6000 epochs), NN1 at the paper's width "
        f"{FINITE_WIDTHS['NN1']:,},",
        f"NN2 at width {FINITE_WIDTHS['NN2']} (width 10,000 would take about 6 h per",
        f"trial on this CPU, `docs/training.md`); {FINITE_TRIALS} trials.",
        "`NTKJ1@NN1` and `NTKJ2@NN2` are kernel gradient descent with the exact",
        "NTKJ kernel after the same training (same points, steps and learning",
        "rate, starting from the network's own initial function); `NTKJ1` and",
        "`NTKJ2` (exact) are ridgeless regression, the infinite-time limit.",
        "distance = RMSE between the network's and the kernel model's test",
        "predictions.",
        "",
        "| network | its RMSE | kernel model | its RMSE | distance to the network |",
        "| --- | --- | --- | --- | --- |",
    ]
    for net, pred in PREDICTORS.items():
        limit = pred.split("@")[0]
        for kern in (pred, limit):
            n, k = finite_rows.get(net), finite_rows.get(kern)
            d = distances.get((net, kern))
            if n is None or k is None or d is None:
                continue
            lines.append(
                f"| {net} | {_pm(n['mean_rmse'], n['se'])} | {kern} | "
                f"{_pm(k['mean_rmse'], k['se'])} | "
                f"{_pm(d['mean_distance'], d['se'])} |"
            )
    lines += [
        "",
        "Each network is much closer to its kernel's prediction at the same",
        "training time than to the infinite-time kernel, which the paper",
        "compared it with: the paper's NN-versus-NTK gap is mostly the",
        "difference between finite and infinite training time",
        "(`docs/regression.md` found the same against the published networks'",
        "RMSEs: NTKJ1 at the training time 0.2096 against NN1 0.2072).",
        "",
        "## (c) Lazy training and (d) width sweeps",
        "",
        "Two sweeps over widths " + widths + f", {SWEEP_TRIALS} trials each,",
        "same data and seeds at every width (`ntkeq sweep`). distance = RMSE",
        "between the network's and its exact-kernel predictor's test predictions",
        "after the same training; parameter_change = ‖θ_T − θ_0‖ / ‖θ_0‖;",
        "ntk_change = relative change of the empirical NTK on 100 training points.",
        "",
        "### Mini-batch SGD as published",
        "",
        f"`paper-as-published` data, NN1 trained as published but for {SWEEP_EPOCHS}",
        "epochs, predictor `NTKJ1@NN1`.",
        "",
        *_sweep_section(sgd),
        "",
        "![width sweep, SGD](figures/findings_sweep.png)",
        "",
        "### Full-batch gradient descent (the theorem's setting)",
        "",
        "`matched` preset: `exact` data, NNJ1 (Jacot parameterization, one",
        "hidden layer) trained full batch on all 670 training points for 300",
        "epochs at half its stability bound (lr 0.25), predictor `NTKJ1@NNJ1`.",
        "",
        *_sweep_section(full),
        "",
        "![width sweep, full batch](figures/findings_sweep_full_batch.png)",
        "",
        "### What the sweeps say",
        "",
        "At a fixed training time the NTK theory predicts that the network's",
        "distance to its kernel predictor and its relative parameter and",
        f"tangent-kernel changes shrink roughly like width^{THEORY_SLOPE:g}.",
        "Fitted slopes (± SE):",
        "",
        "| measure | SGD (batch 8) | full batch |",
        "| --- | --- | --- |",
    ]
    for measure in ("distance", "parameter_change", "ntk_change"):
        lines.append(
            f"| {measure} | {_slope(sgd, f'NN1 {measure}')} | "
            f"{_slope(full, f'NNJ1 {measure}')} |"
        )
    lines += [
        "",
        "",
        "parameter_change follows width^-0.5; ntk_change falls faster. The",
        "theory's rate for the distance is asymptotic, and the fitted slope",
        "pools small widths with large ones; between consecutive widths (a",
        "factor 4) the local slope log(d_2 / d_1) / log 4 is:",
        "",
        "| widths | SGD (batch 8) | full batch |",
        "| --- | --- | --- |",
        *_local_slopes(sgd, full),
        "",
        "The predictor must be the network's own kernel. The same SGD sweep",
        "with the published script's NTKJ1 formulas (`variant =",
        '"as-published"`) as predictor:',
        "",
        "| width | distance to exact NTKJ1@NN1 | distance to as-published NTKJ1@NN1 |",
        "| --- | --- | --- |",
        *_variant_rows(sgd, published_kernel),
        "",
        "Against the as-published formulas the distance falls much more",
        f"slowly (fitted slope {_slope(published_kernel, 'NN1 distance')}, against",
        f"{_slope(sgd, 'NN1 distance')} for the exact kernel): they are not the",
        "tangent kernel of any network, which is why `@` predictors use the",
        "`exact` kernel unless a variant is given.",
        "",
        "The `@` predictor follows the mean (gradient-descent) path of SGD. Run",
        "step by step with each network's own batches, the linearized model's",
        "SGD ends within "
        f"{_pm(float(np.mean(spread)), float(np.std(spread) / np.sqrt(len(spread))))}",
        "RMSE of that mean path on the test points (exact NTKJ1, f_0 = 0, the",
        f"{len(spread)} SGD-sweep trials): SGD's own spread is a small part of the",
        "distances above, which measure how far the finite network is from its",
        "kernel.",
        "",
        "## Not measured here",
        "",
        "- NN2 at the paper's width 10,000 (about 6 h per trial on this CPU) and",
        "  50-trial network studies (no GPU was available).",
        f"- Sweeps beyond width {max(SWEEP_WIDTHS):,}, deeper networks in the",
        "  sweeps, and sweeps at the paper's 3000 epochs.",
        "",
    ]
    path = docs / "findings.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs/findings", type=Path)
    parser.add_argument("--docs", default="docs", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")

    t0 = time.perf_counter()
    published = kernel_study(args.runs, "paper-as-published")
    logger.info("kernels (as-published) done at %.0f s", time.perf_counter() - t0)
    exact = kernel_study(args.runs, "paper")
    logger.info("kernels (exact) done at %.0f s", time.perf_counter() - t0)
    sgd = _sweep(sgd_sweep_config(), args.runs / "sweep")
    spread = sgd_spread(sgd_sweep_config())
    logger.info("SGD sweep done at %.0f s", time.perf_counter() - t0)
    full = full_batch_sweep(args.runs)
    logger.info("full-batch sweep done at %.0f s", time.perf_counter() - t0)
    published_kernel = published_kernel_sweep(args.runs)
    logger.info("as-published predictor sweep done at %.0f s", time.perf_counter() - t0)
    finite = finite_time_study(args.runs)
    logger.info("finite-time study done at %.0f s", time.perf_counter() - t0)
    seconds = stored_fit_seconds(args.runs)
    path = write_page(
        args.docs,
        published,
        exact,
        finite,
        sgd,
        full,
        published_kernel,
        spread,
        seconds,
    )
    logger.info("wrote %s", path)


if __name__ == "__main__":
    main()
