"""``ntkeq run``: run or resume a study from a preset or a TOML file.

Everything is validated before anything is written: the config and its
overrides, the executor flags, and the results folder (writable, not locked
by another run, holding no different study). Errors are one line on stderr
with exit status 2; Ctrl-C exits with 130 and leaves a resumable folder.
Progress and the cost estimate go to stderr, the final table to stdout.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ntkeq.study.config import (
    ConfigError,
    NetworkModelConfig,
    StudyConfig,
    apply_overrides,
    load_config,
    load_preset,
)
from ntkeq.study.executors import make_executor
from ntkeq.study.runner import Progress, check_device, preflight, run_study
from ntkeq.study.store import StoreError
from ntkeq.study.trial import StabilityWarning

logger = logging.getLogger(__name__)

__all__ = ["add_run_arguments", "build_config", "estimate_study", "run_command"]

DEFAULT_PRESET = "quick"
#: Estimated run times above this many seconds are printed prominently.
LONG_RUN_SECONDS = 3600.0
#: Rough per-trial time of the nine kernels on a laptop (n_obs = 1000).
KERNEL_SECONDS_PER_TRIAL = 0.2
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every ``ntkeq run`` flag to ``parser``."""
    src = parser.add_argument_group("what to run")
    src.add_argument(
        "--preset",
        metavar="NAME",
        help=f"shipped study preset (default {DEFAULT_PRESET}; see `ntkeq presets`)",
    )
    src.add_argument("--config", metavar="FILE.toml", help="study config file")
    src.add_argument(
        "--out",
        metavar="DIR",
        help="results folder (default ntkeq-results/<preset>); rerun to resume",
    )
    over = parser.add_argument_group("overrides for this run (stored with the results)")
    over.add_argument("--trials", type=int, metavar="N", help="number of trials")
    over.add_argument(
        "--models",
        metavar="LIST",
        help="comma list of model names and the groups kernels, networks, predictors",
    )
    over.add_argument("--width", type=int, metavar="N", help="width of every network")
    over.add_argument("--epochs", type=int, metavar="N", help="epochs of every network")
    over.add_argument("--device", metavar="DEV", help="auto, cpu, cuda, cuda:N")
    over.add_argument("--seed", type=int, metavar="N", help="base seed")
    over.add_argument(
        "--set",
        action="append",
        default=[],
        dest="sets",
        metavar="KEY=VALUE",
        help="any config key, e.g. data.n_obs=500, models.NN1.epochs=10, "
        "models.*.width=64 (repeatable)",
    )
    ex = parser.add_argument_group("where to run")
    ex.add_argument(
        "--jobs", type=int, metavar="N", help="worker processes (default 1)"
    )
    ex.add_argument(
        "--scheduler", metavar="ADDR", help="Dask scheduler, e.g. tcp://HOST:8786"
    )
    ex.add_argument(
        "--dask-workers", type=int, metavar="N", help="start a local Dask cluster"
    )
    parser.add_argument(
        "--force-new",
        action="store_true",
        help="start afresh in a folder holding another study (the old "
        "results.sqlite is renamed results.sqlite.bak-TIMESTAMP)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="no progress bar or estimate; only errors and the final table",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="log progress to stderr (-vv for debug detail)",
    )


def build_config(args: argparse.Namespace) -> StudyConfig:
    """The effective config of ``args``: preset or file, then overrides."""
    preset = getattr(args, "preset", None)
    config_file = getattr(args, "config", None)
    if preset is not None and config_file is not None:
        raise ConfigError("--preset and --config exclude each other; give one")
    if config_file is not None:
        config = load_config(config_file)
    else:
        config = load_preset(preset or DEFAULT_PRESET)
    for flag in ("trials", "width", "epochs", "seed"):
        value = getattr(args, flag, None)
        if value is not None and value < (0 if flag == "seed" else 1):
            raise ConfigError(
                f"--{flag} {value} is not allowed; use a positive integer"
            )
    return apply_overrides(
        config,
        trials=getattr(args, "trials", None),
        models=getattr(args, "models", None),
        width=getattr(args, "width", None),
        epochs=getattr(args, "epochs", None),
        device=getattr(args, "device", None),
        seed=getattr(args, "seed", None),
        sets=getattr(args, "sets", None) or (),
    )


def _fmt_seconds(t: float) -> str:
    if t < 90:
        return f"{t:.0f} s"
    if t < 5400:
        return f"{t / 60:.1f} min"
    return f"{t / 3600:.1f} h"


def estimate_study(
    config: StudyConfig, pending: dict[str, int]
) -> tuple[float, list[str], dict[str, float]]:
    """Predicted seconds for the pending work, one line per network, and the
    predicted seconds of one result of each model.

    ``pending`` maps model names to their number of missing trials. Networks
    are timed by :func:`ntkeq.training.estimate_cost` (a short warm-up of real
    SGD steps); a trial's kernels are counted at
    :data:`KERNEL_SECONDS_PER_TRIAL` together, ``@`` predictors at nothing
    (they come with their network).
    """
    from ntkeq.data import split_sizes
    from ntkeq.study.trial import build_network
    from ntkeq.training import estimate_cost

    lines = []
    n_train, _ = split_sizes(config.data.n_obs, config.data.test_fraction)
    kernels = [m.name for m in config.models if m.kind == "kernel"]
    per_result = {m.name: 0.0 for m in config.models}
    for name in kernels:
        per_result[name] = KERNEL_SECONDS_PER_TRIAL / len(kernels)
    kernel_trials = max((pending.get(n, 0) for n in kernels), default=0)
    total = kernel_trials * KERNEL_SECONDS_PER_TRIAL
    for m in config.models:
        if not isinstance(m, NetworkModelConfig) or pending.get(m.name, 0) == 0:
            continue
        net, train_config = build_network(config, m, 0, config.data.d_in)
        cost = estimate_cost(net, n_train, train_config, warmup_steps=40)
        del net
        per_result[m.name] = cost.seconds
        seconds = cost.seconds * pending[m.name]
        total += seconds
        lines.append(
            f"{m.name}: {pending[m.name]} trials x {m.epochs} epochs x "
            f"{math.ceil(cost.steps / m.epochs)} steps x "
            f"{cost.seconds_per_step * 1e3:.2g} ms = {_fmt_seconds(seconds)}"
        )
    return total, lines, per_result


def _pending(config: StudyConfig, out_dir: Path) -> dict[str, int]:
    from ntkeq.study.store import STORE_NAME, ResultsStore

    done: set[tuple[int, str]] = set()
    path = out_dir / STORE_NAME
    if path.exists():
        with ResultsStore(path, readonly=True) as store:
            done = store.done()
    return {
        m: sum((t, m) not in done for t in range(config.trials))
        for m in config.model_names
    }


def _print_table(console: Any, results: Any) -> None:
    from rich.table import Table

    from ntkeq.study.report import report_table

    # provenance and the SE convention as plain lines: as a table title and
    # caption they would wrap to the width of the four narrow columns
    table = Table()
    for col in ("model", "trials", "mean RMSE", "SE"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for row in report_table(results):
        mean, se = row.get("mean_rmse"), row.get("se")
        table.add_row(
            str(row["model"]),
            str(row["trials"]),
            "-" if mean is None else f"{mean:.6g}",
            "-" if se is None else f"{se:.3g}",
        )
    console.print(
        f"preset {results.preset}, variant {results.variant}, seed {results.seed}, "
        f"{results.n_trials} trials planned, ntkeq {results.version}"
    )
    console.print(table)
    console.print("SE: population standard deviation / sqrt(trials), as in the paper")


class _Bar:
    """A rich progress bar on stderr fed by :class:`Progress` events.

    With predicted seconds per result (``per_result``, from
    :func:`estimate_study`) the bar advances by each finished result's
    predicted cost, so its fraction follows time rather than the count of
    results (a width-10,000 network weighs hours, a kernel milliseconds).
    The ETA is the predicted cost still pending, less the time the running
    unit has already taken; once a twentieth of the predicted work is done it
    is rescaled by how long that work really took. Without predictions every
    result weighs the same.
    """

    #: Fraction of the predicted work after which the ETA is calibrated.
    CALIBRATE_AFTER = 0.05

    def __init__(
        self,
        console: Any,
        pending: Mapping[str, int] | None = None,
        per_result: Mapping[str, float] | None = None,
    ) -> None:
        from rich.progress import (
            BarColumn,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.progress import Progress as RichProgress
        from rich.text import Text

        bar = self

        class _Eta(ProgressColumn):
            def render(self, task: Any) -> Text:
                return Text(f"ETA {bar.eta()}")

        self._rich = RichProgress(
            TextColumn("[bold]results"),
            BarColumn(),
            TextColumn("{task.fields[count]}"),
            TimeElapsedColumn(),
            _Eta(),
            TextColumn("{task.fields[what]}"),
            console=console,
            transient=False,
        )
        self._task: Any = None
        weights = dict(per_result or {})
        weighted = sum(weights.values()) > 0
        self._weight = (lambda n: weights.get(n, 0.0)) if weighted else (lambda n: 1.0)
        self._total = sum(self._weight(n) * k for n, k in (pending or {}).items())
        self._done = 0.0
        self._stored = 0
        self._start = self._last = time.monotonic()
        self._done_at_last = 0.0

    def eta(self) -> str:
        """Predicted time left, as h:mm:ss (``-:--:--`` before any event)."""
        if self._task is None or self._total <= 0:
            return "-:--:--"
        now = time.monotonic()
        scale = 1.0
        if self._done >= self.CALIBRATE_AFTER * self._total:
            scale = (self._last - self._start) / self._done
        left = max(0.0, (self._total - self._done) * scale - (now - self._last))
        return _hms(left)

    def __enter__(self) -> _Bar:
        self._rich.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._rich.__exit__(*exc)

    def __call__(self, event: Progress) -> None:
        now = time.monotonic()
        if self._task is None:
            self._stored = event.done
            if not self._total:
                self._total = float(event.total - event.done)
            self._task = self._rich.add_task(
                "", total=self._total or 1.0, count="", what=""
            )
        if event.last and event.done > self._stored:
            # a newly stored result (a retrained network is not stored twice)
            self._done += self._weight(event.last)
            self._last = now
        self._stored = event.done
        what = event.current or (
            f"{event.last} {event.status}" if event.last else "starting"
        )
        self._rich.update(
            self._task,
            completed=self._done,
            count=f"{event.done}/{event.total}",
            what=what,
        )


def _hms(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def stability_messages(config: StudyConfig) -> list[str]:
    """Stability-bound warnings of every network, on trial 0's fitting points.

    See :func:`ntkeq.study.trial.stability_message`; the bound depends on the
    trial's data only slightly, so trial 0 stands for all.
    """
    from ntkeq.study.trial import stability_message, trial_seed, trial_split
    from ntkeq.training import split_validation

    networks = [m for m in config.models if isinstance(m, NetworkModelConfig)]
    if not networks:
        return []
    seed = trial_seed(config.seed, 0)
    split = trial_split(config, 0)
    X_train = np.asarray(split.X_train)
    X_all = np.concatenate([X_train, np.asarray(split.X_test)])
    out = []
    for m in networks:
        n_fit = split_validation(X_train.shape[0], m.validation_split)[0]
        message = stability_message(config, m, X_train[:n_fit], seed, X_all)
        if message:
            out.append(message)
    return out


def run_command(args: argparse.Namespace) -> int:
    """Carry out ``ntkeq run``; returns the exit status (0, 2 or 130)."""
    from rich.console import Console

    err = Console(stderr=True)
    out = Console()
    quiet = bool(getattr(args, "quiet", False))

    def fail(message: object) -> int:
        err.print(
            f"ntkeq run: error: {message}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return EXIT_USAGE

    # validate everything before anything is written
    try:
        config = build_config(args)
        executor_args = {
            "jobs": getattr(args, "jobs", None),
            "scheduler": getattr(args, "scheduler", None),
            "dask_workers": getattr(args, "dask_workers", None),
        }
        executor = make_executor(**executor_args)
        if executor.name != "dask":
            check_device(config)
        out_dir = Path(args.out) if getattr(args, "out", None) else None
        out_dir = out_dir or Path("ntkeq-results") / config.preset
        force_new = bool(getattr(args, "force_new", False))
        preflight(config, out_dir, force_new=force_new)
    except (ConfigError, StoreError) as exc:
        return fail(exc)

    try:
        # cost estimate (networks only; kernels are cheap)
        pending = (
            _pending(config, out_dir)
            if not force_new
            else {m: config.trials for m in config.model_names}
        )
        per_result: dict[str, float] = {}
        if not quiet and any(
            pending[m.name] for m in config.models if isinstance(m, NetworkModelConfig)
        ):
            seconds, lines, per_result = estimate_study(config, pending)
            message = f"estimated {_fmt_seconds(seconds)} ({'; '.join(lines)})"
            if seconds > LONG_RUN_SECONDS:
                err.print(f"[bold yellow]Long run: {message}[/]", highlight=False)
            else:
                err.print(message, markup=False, highlight=False)

        if not quiet:
            err.print(
                f"running {config.preset} ({config.variant}) into {out_dir} "
                f"on {executor.name}",
                markup=False,
                highlight=False,
            )
        try:
            messages = stability_messages(config)
        except Exception as exc:  # the bound is advisory
            logger.info("stability bound not computed: %s", exc)
            messages = []
        for message in messages:
            err.print(f"warning: {message}", markup=False, highlight=False)
        # shown once above; each stored result also records it in its reason
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StabilityWarning)
            if quiet:
                results = run_study(
                    config, out_dir, executor=executor, force_new=force_new
                )
            else:
                with _Bar(err, pending, per_result) as bar:
                    results = run_study(
                        config,
                        out_dir,
                        executor=executor,
                        progress=bar,
                        force_new=force_new,
                    )
    except KeyboardInterrupt:
        err.print(
            "ntkeq run: interrupted; finished results are saved, rerun the same "
            "command to resume",
            markup=False,
            highlight=False,
        )
        return EXIT_INTERRUPTED
    except (ConfigError, StoreError) as exc:
        return fail(exc)

    # report
    try:
        from ntkeq.study.report import write_report
    except ImportError as exc:  # the report module is optional at run time
        logger.warning(
            "report not written (%s); run `ntkeq report %s` later", exc, out_dir
        )
    else:
        paths = write_report(results, out_dir)
        if not quiet:
            err.print(
                "wrote " + ", ".join(str(p) for p in paths),
                markup=False,
                highlight=False,
            )
    _print_table(out, results)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m ntkeq.study.cli_run``)."""
    parser = argparse.ArgumentParser(prog="ntkeq run")
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    return run_command(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
