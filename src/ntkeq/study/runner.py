"""Run a study into a results folder, resumably.

:func:`run_study` validates the folder, takes its lock, opens (or creates)
``OUT/results.sqlite``, works out which (trial, model) pairs are missing,
hands them to an executor in units (a trial's kernels together, each
network alone) and stores each result as it arrives. Rerunning with the
same configuration resumes; a different configuration is refused unless
``force_new``, which moves the old store aside.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import socket
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ntkeq.study.config import (
    ConfigError,
    KernelModelConfig,
    NetworkModelConfig,
    StudyConfig,
    config_diff,
    config_from_dict,
    config_hash,
    to_toml,
)
from ntkeq.study.executors import Executor, LocalExecutor, WorkUnit
from ntkeq.study.report import StudyResults
from ntkeq.study.store import (
    SCHEMA_VERSION,
    STORE_NAME,
    ResultsStore,
    StoreError,
    StoreLock,
    can_write,
)
from ntkeq.study.trial import resolve_device

logger = logging.getLogger(__name__)

__all__ = [
    "Progress",
    "check_device",
    "check_out_dir",
    "plan_units",
    "preflight",
    "run_study",
]

#: Configuration keys that may change between runs on one folder: they do
#: not change any stored (trial, model) result.
RESUMABLE_KEYS = ("trials",)


@dataclass(frozen=True)
class Progress:
    """A progress event of :func:`run_study`.

    ``done`` of ``total`` (trial, model) results are stored; ``current`` names
    the unit now running (empty when unknown); ``last`` is the model whose
    result just arrived, with its ``status`` (empty on a start event).
    """

    done: int
    total: int
    current: str = ""
    last: str = ""
    status: str = ""


def check_out_dir(out_dir: Path | str) -> Path:
    """Check that ``out_dir`` is, or can be created as, a writable folder.

    Leaves nothing behind: writability is probed by creating and removing an
    empty temporary folder (permission bits alone do not tell, for example
    for root or on a read-only or virtual file system). Raises
    :class:`StoreError` with a one-line message.
    """
    out = Path(out_dir)
    if out.exists():
        if not out.is_dir():
            raise StoreError(f"--out {out} exists and is not a folder; choose a folder")
        if not can_write(out):
            raise StoreError(f"--out {out} is not writable; choose a writable folder")
        return out
    parent = out.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not can_write(parent):
        raise StoreError(f"--out {out} cannot be created: {parent} is not writable")
    return out


def check_device(config: StudyConfig) -> None:
    """Refuse a CUDA device this machine does not have, if networks need it.

    Kernel-only studies never touch the device, so they pass whatever it
    says; ``auto`` and ``cpu`` always pass. Call it where the units will run
    (not for a Dask cluster, whose workers may have GPUs the client lacks).
    Raises :class:`ConfigError` with a one-line message.
    """
    if config.device in ("auto", "cpu"):
        return
    if not any(isinstance(m, NetworkModelConfig) for m in config.models):
        return
    from ntkeq.training import resolve_device as torch_device

    try:
        torch_device(config.device)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _stored_config(store: ResultsStore) -> StudyConfig | None:
    text = store.get_meta("config_toml")
    if text is None:
        return None
    try:
        return config_from_dict(tomllib.loads(text), preset=store.get_meta("preset"))
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise StoreError(
            f"{store.path} holds a config this ntkeq cannot read ({exc})"
        ) from None


def preflight(
    config: StudyConfig, out_dir: Path | str, *, force_new: bool = False
) -> None:
    """Refuse, creating nothing, what :func:`run_study` would refuse.

    Checks that ``out_dir`` is writable and that any store in it is
    compatible and holds the same configuration (up to
    :data:`RESUMABLE_KEYS`) unless ``force_new``.
    """
    out = check_out_dir(out_dir)
    path = out / STORE_NAME
    if not path.exists() or force_new:
        return
    with ResultsStore(path, readonly=True) as store:
        _compare(store, config)


def _compare(store: ResultsStore, config: StudyConfig) -> None:
    stored = _stored_config(store)
    if stored is None:
        return
    diff = [k for k in config_diff(stored, config) if k not in RESUMABLE_KEYS]
    if diff:
        shown = ", ".join(diff[:8]) + (", ..." if len(diff) > 8 else "")
        raise StoreError(
            f"{store.path.parent} holds a study with a different config (differs in: "
            f"{shown}); rerun with the same settings to resume, use another --out, "
            "or pass --force-new to move the old results aside"
        )


def plan_units(config: StudyConfig, done: set[tuple[int, str]]) -> list[WorkUnit]:
    """Work units for every (trial, model) not in ``done``.

    Per trial: one unit with all pending kernel models (they share their
    Gram computation), then one unit per network with whichever of the
    network and its ``@`` predictors are pending (the predictors need the
    network's initialization, so a pending predictor retrains its network;
    a stored network row is not stored again).

    Examples
    --------
    >>> from ntkeq.study.config import load_preset
    >>> cfg = load_preset("quick")
    >>> units = plan_units(cfg, {(0, "NN1")})
    >>> [u.models for u in units[:2]]  # doctest: +NORMALIZE_WHITESPACE
    [('GP1', 'GP2', 'NTKA1', 'NTKA2', 'NTKJ1', 'NTKJ2', 'NTKB1', 'NTKB2',
      'K1'), ('NN2',)]
    """
    units = []
    for t in range(config.trials):
        kernels = tuple(
            m.name
            for m in config.models
            if isinstance(m, KernelModelConfig) and (t, m.name) not in done
        )
        if kernels:
            units.append(WorkUnit(t, kernels))
        for m in config.models:
            if not isinstance(m, NetworkModelConfig):
                continue
            names = [m.name, *(p.name for p in config.predictors_of(m.name))]
            pending = tuple(n for n in names if (t, n) not in done)
            if pending:
                units.append(WorkUnit(t, pending))
    return units


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _move_aside(path: Path) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.bak-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.bak-{stamp}-{n}")
        n += 1
    path.rename(target)
    return target


def run_study(
    config: StudyConfig,
    out_dir: Path | str,
    *,
    executor: Executor | None = None,
    progress: Callable[[Progress], None] | None = None,
    force_new: bool = False,
) -> StudyResults:
    """Run (or resume) ``config`` into ``out_dir`` and return its results.

    Parameters
    ----------
    config : StudyConfig
        The validated, effective configuration (after overrides); it is
        stored as TOML text with its SHA-256.
    out_dir : path-like
        The study folder; ``results.sqlite`` and a ``.lock`` file live there.
    executor : Executor, optional
        Where units run (default :class:`LocalExecutor`). It is closed when
        the run ends.
    progress : callable, optional
        Called with a :class:`Progress` at the start, when a unit starts (as
        far as the executor knows) and after each stored result.
    force_new : bool
        Start afresh even if ``out_dir`` holds a different study: the old
        ``results.sqlite`` is renamed to ``results.sqlite.bak-YYYYmmdd-HHMMSS``.

    Returns
    -------
    StudyResults
        Everything stored in ``out_dir`` (this run's and earlier runs').

    Raises
    ------
    ConfigError
        The config's networks need a CUDA device this machine lacks (checked
        for every executor but Dask, whose workers pick their own devices).
    StoreError
        Folder not writable, locked by another run, store incompatible, or
        holding a different configuration (without ``force_new``).
    """
    executor = executor or LocalExecutor()
    try:
        if executor.name != "dask":
            check_device(config)
        preflight(config, out_dir, force_new=force_new)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        with StoreLock(out):
            path = out / STORE_NAME
            if force_new and path.exists():
                moved = _move_aside(path)
                logger.info("moved the previous store to %s", moved)
            with ResultsStore(path) as store:
                return _run_locked(config, store, executor, progress)
    finally:
        executor.close()


def _run_locked(
    config: StudyConfig,
    store: ResultsStore,
    executor: Executor,
    progress: Callable[[Progress], None] | None,
) -> StudyResults:
    from ntkeq import __version__

    # identify the study (checked again under the lock)
    _compare(store, config)
    store.set_meta(
        schema_version=SCHEMA_VERSION,
        ntkeq_version=__version__,
        config_toml=to_toml(config),
        config_hash=config_hash(config),
        preset=config.preset,
        variant=config.variant,
        seed=config.seed,
        n_trials=config.trials,
        models=json.dumps(list(config.model_names)),
        host=socket.gethostname(),
        device=resolve_device(config.device),
    )
    if store.get_meta("started") is None:
        store.set_meta(started=_now())

    # plan what is missing
    done = store.done()
    total = config.trials * len(config.models)
    units = plan_units(config, done)
    finished = total - sum(len(u.models) for u in units)
    logger.info(
        "%d of %d results stored; %d units to run on %s",
        finished,
        total,
        len(units),
        executor.name,
    )
    if progress is not None:
        progress(Progress(finished, total))

    def on_start(unit: WorkUnit) -> None:
        if progress is not None:
            progress(Progress(finished, total, current=unit.label()))

    # run and store each (trial, model) as it arrives
    for result in executor.run(config, units, on_start):
        for outcome in result.outcomes:
            if store.add(result, outcome):
                finished += 1
            if progress is not None:
                progress(
                    Progress(finished, total, last=outcome.model, status=outcome.status)
                )

    if finished >= total:
        store.set_meta(finished=_now())
    return store.load()
