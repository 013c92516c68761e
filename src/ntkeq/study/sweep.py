"""``ntkeq sweep``: the study's networks at several widths, and how they approach
their kernels.

Each width is its own resumable study in ``OUT/width-<w>/`` run by
:func:`ntkeq.study.runner.run_study`, with every network's width set to w and
everything else (data, seeds, training) unchanged: trial seeds depend only on
(base seed, trial, model name), so every width sees the same data and the same
test targets. Each network is accompanied by its closed-form finite-time
predictor ``<FAMILY><L>@<NETWORK>`` (the kernel family of the network's
parameterization at its depth) where the installed study supports such
models. The sweep's own configuration (widths and base study) is kept in
``OUT/sweep.toml``; a rerun with a different one is refused.

Notation
--------
w
    hidden-layer width of every network, one value per sub-study.
RMSE
    a network's test error sqrt(mean((f(x) - y)^2)) over the n_test points.
distance
    sqrt(mean((f(x) - f_K(x))^2)) over the test points between the network f
    and its ``@`` predictor f_K after the same training time
    (:func:`ntkeq.equivalence.prediction_distance`).
mean, SE
    over trials; SE is the population standard deviation over sqrt(trials),
    the paper's convention.
slope
    exponent b of a least-squares fit value ~ a * w^b in log-log space
    (:func:`ntkeq.equivalence.fit_power_law`); the NTK theory (Jacot et al.
    2018, Arora et al. 2019) predicts b = -1/2 for the distance and the
    lazy-training measures at a fixed training time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import sqlite3
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ntkeq import __version__
from ntkeq.study.config import (
    ConfigError,
    KernelModelConfig,
    NetworkModelConfig,
    StudyConfig,
    apply_overrides,
    config_diff,
    config_from_dict,
    to_toml,
)
from ntkeq.study.executors import Executor, LocalExecutor, WorkUnit
from ntkeq.study.runner import (
    Progress,
    check_device,
    check_out_dir,
    preflight,
    run_study,
)
from ntkeq.study.store import STORE_NAME, ResultsStore, StoreError, StoreLock

logger = logging.getLogger(__name__)

__all__ = [
    "SWEEP_FILE",
    "THEORY_SLOPE",
    "SweepResults",
    "WidthRow",
    "add_sweep_arguments",
    "load_sweep",
    "parse_widths",
    "predictor_name",
    "run_sweep",
    "sweep_base_config",
    "sweep_command",
    "sweep_report",
    "width_dir",
    "write_sweep_report",
]

#: The sweep's configuration inside its folder.
SWEEP_FILE = "sweep.toml"
#: Exponent of the network-to-kernel distance in width predicted by the NTK
#: theory at a fixed training time.
THEORY_SLOPE = -0.5
#: Kernel family of each network parameterization (``standard`` has none).
FAMILY_OF_PARAMETERIZATION = {"ntkb": "NTKB", "ntkj": "NTKJ", "ntka": "NTKA"}
SWEEP_FORMATS = ("markdown", "json")
#: Stored per-network numbers that are bookkeeping, not lazy-training measures.
NOT_LAZY_MEASURES = frozenset({"ntk_subsample", "steps", "lambda_max"})
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


# --------------------------------------------------------------------------
# Configuration


def parse_widths(widths: str | Sequence[int]) -> tuple[int, ...]:
    """Validate the widths of a sweep, given as ``"256,1024"`` or a sequence.

    Raises
    ------
    ConfigError
        Empty, not positive integers, or duplicated, with a one-line message.

    Examples
    --------
    >>> parse_widths("256, 1024,4096")
    (256, 1024, 4096)
    """
    if isinstance(widths, str):
        tokens = [t.strip() for t in widths.split(",")]
        if not widths.strip() or any(not t for t in tokens):
            raise ConfigError(
                f"--widths {widths!r}: expected a comma list of positive integers, "
                "e.g. 256,1024,4096"
            )
        values: list[Any] = []
        for t in tokens:
            try:
                values.append(int(t))
            except ValueError:
                raise ConfigError(
                    f"--widths: {t!r} is not an integer; expected a comma list of "
                    "positive integers, e.g. 256,1024,4096"
                ) from None
    else:
        values = list(widths)
    if not values:
        raise ConfigError("widths is empty; give at least one width, e.g. 256,1024")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ConfigError(
                f"width {v!r} is not allowed; widths must be positive integers"
            )
    dup = sorted({int(v) for v in values if values.count(v) > 1})
    if dup:
        raise ConfigError(
            f"widths {', '.join(map(str, dup))} appear more than once; give each "
            "width once"
        )
    return tuple(int(v) for v in values)


def predictor_name(network: NetworkModelConfig) -> str | None:
    """Name of the closed-form ``@`` predictor matching ``network``.

    The kernel family of the network's parameterization at its depth, e.g.
    ``NTKJ1@NN1`` for an ntkj NN1; ``None`` for the ``standard``
    parameterization, which has no closed-form kernel in ntkeq.

    Examples
    --------
    >>> predictor_name(NetworkModelConfig("NN2", depth=2, parameterization="ntkb"))
    'NTKB2@NN2'
    """
    family = FAMILY_OF_PARAMETERIZATION.get(network.parameterization)
    if family is None:
        return None
    return f"{family}{network.depth}@{network.name}"


def _is_finite_time_predictor(model: Any) -> bool:
    """Whether a configured ``X@NN`` model is a finite-time predictor.

    A study without predictor models reads ``NTKJ1@NN1`` as the plain
    (infinite-time) kernel NTKJ1 under a display name; that is not the
    network's prediction at its training time, so it does not count.
    """
    if isinstance(model, KernelModelConfig | NetworkModelConfig):
        return any(hasattr(model, a) for a in ("f0", "network"))
    return True


def sweep_base_config(config: StudyConfig) -> tuple[StudyConfig, bool]:
    """The models a sweep runs: the networks of ``config`` and their predictors.

    Kernel models are dropped (they do not depend on width). For each network
    the predictor named by :func:`predictor_name` is added if the installed
    study config accepts it as a finite-time predictor model.

    Returns
    -------
    (StudyConfig, bool)
        The base configuration, and whether predictors are included.

    Raises
    ------
    ConfigError
        If ``config`` has no network model.
    """
    networks = [m for m in config.models if isinstance(m, NetworkModelConfig)]
    if not networks:
        raise ConfigError(
            "the study has no network model to sweep; add one (e.g. --models NN1)"
        )
    base = replace(config, models=tuple(networks))
    names = [n for n in (predictor_name(m) for m in networks) if n is not None]
    configured = {m.name: m for m in config.models}
    added = []
    for name in names:
        if name in configured:
            added.append(configured[name])
            continue
        try:
            doc = tomllib.loads(to_toml(base))
            doc["models"].append({"name": name})
            trial = config_from_dict(doc, preset=base.preset)
        except (ConfigError, ValueError):
            logger.info("predictor %s is not supported; sweeping networks", name)
            continue
        added.append(trial.model(name))
    supported = bool(added) and all(_is_finite_time_predictor(m) for m in added)
    if not supported:
        return base, False
    return replace(base, models=(*base.models, *added)), True


def width_config(base: StudyConfig, width: int) -> StudyConfig:
    """``base`` with every network's width set to ``width``."""
    return apply_overrides(base, width=width)


def width_dir(out_dir: Path | str, width: int) -> Path:
    """The sub-study folder of one width, ``OUT/width-<w>``."""
    return Path(out_dir) / f"width-{width}"


def _sweep_toml(base: StudyConfig, widths: Sequence[int]) -> str:
    listed = ", ".join(str(w) for w in widths)
    return to_toml(base) + f"\n[sweep]\nwidths = [{listed}]\n"


def _read_sweep(out_dir: Path) -> tuple[StudyConfig, tuple[int, ...]] | None:
    path = out_dir / SWEEP_FILE
    if not path.exists():
        return None
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
        sweep = doc.pop("sweep")
        base = config_from_dict(doc)
        widths = parse_widths(list(sweep["widths"]))
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"{path} is not a readable ntkeq sweep file ({exc})") from None
    return base, widths


def _sweep_diff(
    stored: tuple[StudyConfig, tuple[int, ...]],
    base: StudyConfig,
    widths: Sequence[int],
) -> list[str]:
    old_base, old_widths = stored
    diff = [k for k in config_diff(old_base, base) if k != "trials"]
    if tuple(old_widths) != tuple(widths):
        diff.insert(0, "widths")
    return diff


def _preflight_sweep(
    base: StudyConfig, widths: Sequence[int], out_dir: Path, force_new: bool
) -> None:
    check_out_dir(out_dir)
    stored = None if force_new else _read_sweep(out_dir)
    if stored is not None:
        diff = _sweep_diff(stored, base, widths)
        if diff:
            shown = ", ".join(diff[:8]) + (", ..." if len(diff) > 8 else "")
            raise StoreError(
                f"{out_dir} holds a sweep with a different config (differs in: "
                f"{shown}); rerun with the same settings to resume, use another "
                "--out, or pass --force-new to start afresh"
            )
    for w in widths:
        preflight(width_config(base, w), width_dir(out_dir, w), force_new=force_new)


# --------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class WidthRow:
    """One network at one width: its error, its distance to its predictor.

    Attributes
    ----------
    width : int
        Hidden-layer width w.
    network : str
        Network model name.
    trials : int
        Trials with an ``ok`` network result.
    rmse_mean, rmse_se : float or None
        Network test RMSE, mean and SE over trials.
    predictor : str or None
        Name of the ``@`` predictor, when the sweep ran one.
    distance_mean, distance_se : float or None
        Network-to-predictor test distance, mean and SE over the trials where
        both are ``ok``.
    lazy : dict
        Lazy-training measure name -> (mean, SE) over trials, as stored by
        the study (empty when the store holds none).
    """

    width: int
    network: str
    trials: int
    rmse_mean: float | None
    rmse_se: float | None
    predictor: str | None = None
    distance_mean: float | None = None
    distance_se: float | None = None
    lazy: Mapping[str, tuple[float, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class SweepResults:
    """Everything a sweep report needs.

    Attributes
    ----------
    base_config : StudyConfig
        The study run at every width (widths are overridden per sub-study).
    widths : tuple of int
        Widths swept, in the order given.
    out_dir : Path
        The sweep folder.
    rows : tuple of WidthRow
        One per (width, network) with results.
    predictors : bool
        Whether the sweep ran ``@`` predictors.
    fits : dict
        Series name (e.g. ``"NN1 distance"``) -> :class:`PowerLawFit`.
    """

    base_config: StudyConfig
    widths: tuple[int, ...]
    out_dir: Path
    rows: tuple[WidthRow, ...]
    predictors: bool
    fits: Mapping[str, Any] = field(default_factory=dict)

    def series(self) -> dict[str, tuple[list[int], list[float], list[float]]]:
        """Series name -> (widths, means, SEs) for every fitted measure."""
        out: dict[str, tuple[list[int], list[float], list[float]]] = {}
        for r in sorted(self.rows, key=lambda r: r.width):
            points: list[tuple[str, float | None, float | None]] = [
                (f"{r.network} distance", r.distance_mean, r.distance_se)
            ]
            points += [(f"{r.network} {k}", m, s) for k, (m, s) in r.lazy.items()]
            for name, mean, se in points:
                if mean is None or se is None or not mean > 0:
                    continue
                ws, ms, ss = out.setdefault(name, ([], [], []))
                ws.append(r.width)
                ms.append(mean)
                ss.append(se)
        return out


def _mean_se(values: Sequence[float]) -> tuple[float | None, float | None]:
    k = len(values)
    if k == 0:
        return None, None
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std() / math.sqrt(k))


def _lazy_rows(path: Path, model: str, n_trials: int) -> dict[int, dict[str, float]]:
    """Scalar lazy-training measures stored for ``model``: trial -> name -> value.

    Reads a JSON ``metrics`` column of ``results`` or a ``metrics`` table
    (trial, model, metrics JSON), whichever the store has; empty otherwise.
    """
    out: dict[int, dict[str, float]] = {}
    uri = path.resolve().as_uri() + "?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
        tables = {
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        rows: list[tuple[Any, Any]] = []
        cols = {r[1] for r in conn.execute("PRAGMA table_info(results)")}
        if "metrics" in cols:
            rows = list(
                conn.execute(
                    "SELECT trial, metrics FROM results WHERE model = ?", (model,)
                )
            )
        elif "metrics" in tables:
            mcols = {r[1] for r in conn.execute("PRAGMA table_info(metrics)")}
            if {"trial", "model", "metrics"} <= mcols:
                rows = list(
                    conn.execute(
                        "SELECT trial, metrics FROM metrics WHERE model = ?", (model,)
                    )
                )
    for trial, text in rows:
        if text is None or int(trial) >= n_trials:
            continue
        try:
            doc = json.loads(text)
        except (TypeError, ValueError):
            continue
        if not isinstance(doc, dict):
            continue
        values = {
            str(k): float(v)
            for k, v in doc.items()
            if isinstance(v, int | float)
            and not isinstance(v, bool)
            and k not in NOT_LAZY_MEASURES
            and math.isfinite(v)
        }
        if values:
            out[int(trial)] = values
    return out


def _width_rows(
    base: StudyConfig, width: int, folder: Path, predictors: bool
) -> list[WidthRow]:
    from ntkeq.equivalence import prediction_distance

    path = folder / STORE_NAME
    if not path.exists():
        return []
    rows = []
    with contextlib.closing(ResultsStore(path, readonly=True)) as store:
        results = store.load()
        ok = {
            (r.trial, r.model): r.rmse
            for r in results.results
            if r.status == "ok" and r.rmse is not None
        }
        for m in base.models:
            if not isinstance(m, NetworkModelConfig):
                continue
            trials = sorted(t for (t, name) in ok if name == m.name)
            rmse_mean, rmse_se = _mean_se(
                [float(ok[(t, m.name)] or 0.0) for t in trials]
            )
            pred = predictor_name(m) if predictors else None
            dist_mean = dist_se = None
            if pred is not None:
                f_net = store.predictions(m.name)
                f_ker = store.predictions(pred)
                both = [
                    t for t in trials if (t, pred) in ok and t in f_net and t in f_ker
                ]
                dist_mean, dist_se = _mean_se(
                    [prediction_distance(f_net[t], f_ker[t]) for t in both]
                )
            per_trial = _lazy_rows(path, m.name, results.n_trials)
            keys = sorted({k for v in per_trial.values() for k in v})
            lazy: dict[str, tuple[float, float]] = {}
            for k in keys:
                mean, se = _mean_se([v[k] for v in per_trial.values() if k in v])
                if mean is not None and se is not None:
                    lazy[k] = (mean, se)
            rows.append(
                WidthRow(
                    width, m.name, len(trials), rmse_mean, rmse_se, pred,
                    dist_mean, dist_se, lazy,
                )
            )  # fmt: skip
    return rows


def _fits(results: SweepResults) -> dict[str, Any]:
    from ntkeq.equivalence import fit_power_law

    fits: dict[str, Any] = {}
    for name, (ws, ms, ss) in results.series().items():
        if len(set(ws)) < 2:
            continue
        weighted = all(s > 0 for s in ss)
        fits[name] = fit_power_law(ws, ms, ss if weighted else None)
    return fits


def load_sweep(out_dir: Path | str) -> SweepResults:
    """Read a sweep folder (its ``sweep.toml`` and every width's store).

    Raises
    ------
    StoreError
        If ``out_dir`` holds no sweep.
    """
    out = Path(out_dir)
    stored = _read_sweep(out)
    if stored is None:
        raise StoreError(f"no sweep at {out}; run `ntkeq sweep --out {out}` first")
    base, widths = stored
    predictors = any("@" in name for name in base.model_names)
    rows: list[WidthRow] = []
    for w in widths:
        rows += _width_rows(base, w, width_dir(out, w), predictors)
    results = SweepResults(base, widths, out, tuple(rows), predictors)
    return replace(results, fits=_fits(results))


# --------------------------------------------------------------------------
# Running


class _KeepOpen:
    """An executor that ignores ``close``, so one pool serves every width."""

    def __init__(self, inner: Executor) -> None:
        self.inner = inner
        self.name = inner.name

    def run(
        self,
        config: StudyConfig,
        units: Sequence[WorkUnit],
        on_start: Callable[[WorkUnit], None] | None = None,
    ) -> Iterator[Any]:
        return self.inner.run(config, units, on_start)

    def close(self) -> None:
        """Leave the wrapped executor open."""


def run_sweep(
    base_config: StudyConfig,
    widths: Sequence[int],
    out_dir: Path | str,
    *,
    executor: Executor | None = None,
    progress: Callable[[int, Progress], None] | None = None,
    force_new: bool = False,
) -> SweepResults:
    """Run (or resume) a width sweep of ``base_config`` into ``out_dir``.

    Parameters
    ----------
    base_config : StudyConfig
        The study; its networks (and their ``@`` predictors, where supported,
        see :func:`sweep_base_config`) are run at every width.
    widths : sequence of int
        Distinct positive widths.
    out_dir : path-like
        Sweep folder: ``sweep.toml`` and one study folder ``width-<w>`` per
        width.
    executor : Executor, optional
        Where units run (default in-process); shared by all widths and closed
        at the end.
    progress : callable, optional
        Called with (width, :class:`~ntkeq.study.runner.Progress`).
    force_new : bool
        Start afresh in a folder holding a different sweep (each width's old
        store is moved aside by :func:`run_study`).

    Returns
    -------
    SweepResults

    Raises
    ------
    ConfigError
        Bad widths, or a study without networks.
    StoreError
        ``out_dir`` holds a different sweep (without ``force_new``), or a
        width folder is locked or incompatible. Nothing is written then.
    """
    executor = executor or LocalExecutor()
    try:
        ws = parse_widths(widths)
        base, _ = sweep_base_config(base_config)
        out = Path(out_dir)
        _preflight_sweep(base, ws, out, force_new)
        out.mkdir(parents=True, exist_ok=True)
        with StoreLock(out):
            (out / SWEEP_FILE).write_text(_sweep_toml(base, ws), encoding="utf-8")
            shared = _KeepOpen(executor)
            for w in ws:
                logger.info("width %d: running %s", w, ", ".join(base.model_names))

                def relay(event: Progress, w: int = w) -> None:
                    if progress is not None:
                        progress(w, event)

                run_study(
                    width_config(base, w),
                    width_dir(out, w),
                    executor=shared,
                    progress=relay,
                    force_new=force_new,
                )
    finally:
        executor.close()
    return load_sweep(out)


# --------------------------------------------------------------------------
# Reporting


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def _pm(mean: float | None, se: float | None) -> str:
    if mean is None:
        return "-"
    return f"{_num(mean)} ± {_num(se, 2)}"


def _report_doc(results: SweepResults) -> dict[str, Any]:
    base = results.base_config
    return {
        "widths": list(results.widths),
        "preset": base.preset,
        "variant": base.variant,
        "trials": base.trials,
        "seed": base.seed,
        "version": __version__,
        "models": list(base.model_names),
        "predictors": results.predictors,
        "theory_slope": THEORY_SLOPE,
        "rows": [
            {
                "width": r.width,
                "network": r.network,
                "trials": r.trials,
                "rmse_mean": r.rmse_mean,
                "rmse_se": r.rmse_se,
                "predictor": r.predictor,
                "distance_mean": r.distance_mean,
                "distance_se": r.distance_se,
                "lazy": {k: {"mean": m, "se": s} for k, (m, s) in r.lazy.items()},
            }
            for r in results.rows
        ],
        "fits": {
            name: {
                "slope": f.slope,
                "slope_se": None if math.isnan(f.slope_se) else f.slope_se,
                "intercept": f.intercept,
                "r2": f.r2,
            }
            for name, f in results.fits.items()
        },
    }


def _markdown(results: SweepResults) -> str:
    base = results.base_config
    lazy_keys = sorted({k for r in results.rows for k in r.lazy})
    lines = [
        f"# Width sweep: {base.preset} ({base.variant})",
        "",
        f"Widths {', '.join(map(str, results.widths))}; {base.trials} trials, "
        f"seed {base.seed}; models {', '.join(base.model_names)}; ntkeq "
        f"{__version__}. Mean ± SE over trials (SE = population standard "
        "deviation / sqrt(trials)).",
        "",
    ]
    if not results.predictors:
        lines += [
            "No `@` predictor models in this study: the network-to-kernel "
            "distance is not measured.",
            "",
        ]
    head = ["width", "network", "trials", "RMSE", "predictor", "distance"]
    head += lazy_keys
    lines += [
        "| " + " | ".join(head) + " |",
        "| " + " | ".join("---" for _ in head) + " |",
    ]
    for r in sorted(results.rows, key=lambda r: (r.network, r.width)):
        cells = [
            str(r.width),
            r.network,
            str(r.trials),
            _pm(r.rmse_mean, r.rmse_se),
            r.predictor or "-",
            _pm(r.distance_mean, r.distance_se),
        ]
        cells += [_pm(*r.lazy[k]) if k in r.lazy else "-" for k in lazy_keys]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Fitted slopes (value ~ width^slope)", ""]
    if not results.fits:
        lines.append("No fit: it needs at least two widths with positive values.")
    else:
        lines += ["| series | slope ± SE | R² | theory |", "| --- | --- | --- | --- |"]
        for name, f in results.fits.items():
            se = "nan (2 points)" if math.isnan(f.slope_se) else f"{f.slope_se:.3f}"
            lines.append(
                f"| {name} | {f.slope:.3f} ± {se} | {f.r2:.3f} | {THEORY_SLOPE:g} |"
            )
        lines += [
            "",
            "The NTK theory predicts that at a fixed training time the "
            "distance between a network and its kernel predictor, and the "
            "relative changes of its parameters and of its tangent kernel, "
            f"shrink roughly like width^{THEORY_SLOPE:g}.",
        ]
    return "\n".join(lines) + "\n"


def sweep_report(results: SweepResults, fmt: str = "markdown") -> str:
    """The sweep's report as text: a per-width table and the fitted slopes.

    Parameters
    ----------
    results : SweepResults
        From :func:`run_sweep` or :func:`load_sweep`.
    fmt : {"markdown", "json"}
        Markdown page, or one JSON object with keys ``widths``, ``rows``,
        ``fits`` (series -> slope, slope_se, intercept, r2),
        ``theory_slope`` and the study's identity.
    """
    if fmt == "markdown":
        return _markdown(results)
    if fmt == "json":
        return json.dumps(_report_doc(results), indent=2) + "\n"
    raise ValueError(f"fmt = {fmt!r} is not allowed; use one of {SWEEP_FORMATS}")


def write_sweep_report(results: SweepResults, out_dir: Path | str) -> list[Path]:
    """Write ``sweep.md``, ``sweep.json`` and (with a fit) ``sweep.png``/``.svg``."""
    from ntkeq.equivalence import plot_width_sweep

    out = Path(out_dir)
    paths = []
    for name, fmt in (("sweep.md", "markdown"), ("sweep.json", "json")):
        path = out / name
        path.write_text(sweep_report(results, fmt), encoding="utf-8")
        paths.append(path)
    series = {
        name: (ms, ss)
        for name, (ws, ms, ss) in results.series().items()
        if name in results.fits and len(ws) == len(results.widths)
    }
    if series:
        widths = sorted(results.widths)
        base = results.base_config
        title = (
            f"{base.preset} ({base.variant}), {base.trials} trials, seed "
            f"{base.seed}, ntkeq {__version__}"
        )
        for ext in ("png", "svg"):
            path = out / f"sweep.{ext}"
            paths.append(plot_width_sweep(widths, series, results.fits, path, title))
    return paths


# --------------------------------------------------------------------------
# Command line


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every ``ntkeq sweep`` flag to ``parser``."""
    parser.add_argument(
        "--widths",
        required=True,
        metavar="LIST",
        help="comma list of distinct positive widths, e.g. 256,1024,4096",
    )
    src = parser.add_argument_group("what to run")
    src.add_argument("--preset", metavar="NAME", help="study preset (default quick)")
    src.add_argument("--config", metavar="FILE.toml", help="study config file")
    src.add_argument(
        "--out",
        metavar="DIR",
        help="sweep folder (default ntkeq-results/sweep-<preset>); rerun to resume",
    )
    over = parser.add_argument_group("overrides (stored with the results)")
    over.add_argument("--trials", type=int, metavar="N", help="number of trials")
    over.add_argument(
        "--models", metavar="LIST", help="comma list of networks to sweep, e.g. NN1"
    )
    over.add_argument("--epochs", type=int, metavar="N", help="epochs of every network")
    over.add_argument("--device", metavar="DEV", help="auto, cpu, cuda, cuda:N")
    over.add_argument("--seed", type=int, metavar="N", help="base seed")
    over.add_argument(
        "--set",
        action="append",
        default=[],
        dest="sets",
        metavar="KEY=VALUE",
        help="any config key, e.g. data.n_obs=500 (repeatable)",
    )
    ex = parser.add_argument_group("where to run")
    ex.add_argument("--jobs", type=int, metavar="N", help="worker processes")
    ex.add_argument("--scheduler", metavar="ADDR", help="Dask scheduler address")
    ex.add_argument(
        "--dask-workers", type=int, metavar="N", help="start a local Dask cluster"
    )
    parser.add_argument(
        "--force-new",
        action="store_true",
        help="start afresh in a folder holding another sweep",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="no progress; only errors and the report",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="log progress to stderr",
    )


def sweep_command(args: argparse.Namespace) -> int:
    """Carry out ``ntkeq sweep``; returns the exit status (0, 2 or 130)."""
    import sys

    from ntkeq.study.cli_run import build_config
    from ntkeq.study.executors import make_executor

    quiet = bool(getattr(args, "quiet", False))

    def fail(message: object) -> int:
        print(f"ntkeq sweep: error: {message}", file=sys.stderr)
        return EXIT_USAGE

    # validate everything before anything is written
    try:
        widths = parse_widths(str(args.widths))
        config = build_config(args)
        base, predictors = sweep_base_config(config)
        out_dir = Path(args.out) if getattr(args, "out", None) else None
        out_dir = out_dir or Path("ntkeq-results") / f"sweep-{config.preset}"
        force_new = bool(getattr(args, "force_new", False))
        _preflight_sweep(base, widths, out_dir, force_new)
        executor = make_executor(
            jobs=getattr(args, "jobs", None),
            scheduler=getattr(args, "scheduler", None),
            dask_workers=getattr(args, "dask_workers", None),
        )
        if executor.name != "dask":
            check_device(base)
    except (ConfigError, StoreError) as exc:
        return fail(exc)

    def show(width: int, event: Progress) -> None:
        if event.last:
            print(
                f"width {width}: {event.done}/{event.total} {event.last} "
                f"{event.status}",
                file=sys.stderr,
            )

    if not quiet:
        print(
            f"sweeping {', '.join(base.model_names)} over widths "
            f"{', '.join(map(str, widths))} into {out_dir}"
            + ("" if predictors else " (no @ predictors in this study)"),
            file=sys.stderr,
        )
    try:
        results = run_sweep(
            base,
            widths,
            out_dir,
            executor=executor,
            progress=None if quiet else show,
            force_new=force_new,
        )
    except KeyboardInterrupt:
        print(
            "ntkeq sweep: interrupted; finished results are saved, rerun the same "
            "command to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except (ConfigError, StoreError) as exc:
        return fail(exc)

    paths = write_sweep_report(results, out_dir)
    if not quiet:
        print("wrote " + ", ".join(str(p) for p in paths), file=sys.stderr)
    sys.stdout.write(sweep_report(results, "markdown"))
    return 0
