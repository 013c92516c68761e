"""Where trials run: in this process, in worker processes, or on Dask.

A work unit is one trial with a group of its models: all of the trial's
pending kernel models together (they share one Gram computation per
variant), or one network. Executors compute units with
:func:`ntkeq.study.trial.run_trial` and yield each :class:`TrialResult` as
it finishes; the caller (the runner, in the parent process) alone writes to
the results store, one transaction per (trial, model).

Dask is an optional dependency (``pip install ntkeq[distributed]``).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Protocol

from ntkeq.study.config import ConfigError, StudyConfig
from ntkeq.study.trial import TrialResult, run_trial

logger = logging.getLogger(__name__)

__all__ = [
    "DaskExecutor",
    "Executor",
    "LocalExecutor",
    "ProcessExecutor",
    "WorkUnit",
    "make_executor",
]


@dataclass(frozen=True)
class WorkUnit:
    """One trial index and the names of the models to fit in it."""

    trial: int
    models: tuple[str, ...]

    def label(self) -> str:
        """Short description for progress displays, e.g. ``trial 3: NN1``."""
        shown = ", ".join(self.models) if len(self.models) <= 3 else "kernels"
        return f"trial {self.trial}: {shown}"


class Executor(Protocol):
    """Computes work units and yields their results as they finish."""

    name: str

    def run(
        self,
        config: StudyConfig,
        units: Sequence[WorkUnit],
        on_start: Callable[[WorkUnit], None] | None = None,
    ) -> Iterator[TrialResult]:
        """Yield one :class:`TrialResult` per unit, in completion order."""
        ...

    def close(self) -> None:
        """Release workers (idempotent)."""
        ...


class LocalExecutor:
    """Runs units one after another in this process (the default)."""

    name = "local"

    def run(
        self,
        config: StudyConfig,
        units: Sequence[WorkUnit],
        on_start: Callable[[WorkUnit], None] | None = None,
    ) -> Iterator[TrialResult]:
        """Yield each unit's result right after computing it."""
        for unit in units:
            if on_start is not None:
                on_start(unit)
            yield run_trial(config, unit.trial, unit.models)

    def close(self) -> None:
        """Nothing to release."""


def _init_worker(threads: int) -> None:
    # The parent handles Ctrl-C and stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads)
    except ImportError:  # pragma: no cover - scikit-learn brings threadpoolctl
        pass
    import torch

    torch.set_num_threads(threads)


def _threads_per_worker(jobs: int) -> int:
    return max(1, (os.cpu_count() or 1) // jobs)


class ProcessExecutor:
    """Runs units on ``jobs`` worker processes (spawn context).

    Each worker limits PyTorch and BLAS to ``cpu_count // jobs`` threads so
    the workers do not oversubscribe the cores.
    """

    name = "processes"

    def __init__(self, jobs: int) -> None:
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
        self.jobs = jobs
        self._pool: ProcessPoolExecutor | None = None

    def run(
        self,
        config: StudyConfig,
        units: Sequence[WorkUnit],
        on_start: Callable[[WorkUnit], None] | None = None,
    ) -> Iterator[TrialResult]:
        """Submit every unit, then yield results in completion order."""
        if not units:
            return
        self._pool = ProcessPoolExecutor(
            max_workers=min(self.jobs, len(units)),
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(_threads_per_worker(self.jobs),),
        )
        futures: dict[Future[TrialResult], WorkUnit] = {}
        for unit in units:
            futures[self._pool.submit(run_trial, config, unit.trial, unit.models)] = (
                unit
            )
        if on_start is not None:
            on_start(units[0])
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            self.close()

    def close(self) -> None:
        """Cancel pending units and stop the workers, also mid-unit."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # Workers ignore SIGINT, so an interrupted run terminates them here
        # rather than waiting for their current unit.
        processes = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for p in processes:
            if p.is_alive():
                p.terminate()
        for p in processes:
            p.join(timeout=5)


def _dask() -> Any:
    try:
        import distributed
    except ImportError:
        raise ConfigError(
            "Dask is not installed; install it with `pip install ntkeq[distributed]` "
            "or run without --scheduler/--dask-workers"
        ) from None
    return distributed


class DaskExecutor:
    """Runs units on a Dask distributed cluster.

    Parameters
    ----------
    scheduler : str, optional
        Address of an existing scheduler, e.g. ``tcp://10.0.0.5:8786``.
    n_workers : int, optional
        Start a local cluster of this many single-threaded worker processes
        instead (used when ``scheduler`` is not given).
    """

    name = "dask"

    def __init__(
        self, scheduler: str | None = None, n_workers: int | None = None
    ) -> None:
        if scheduler is None and n_workers is None:
            raise ValueError("DaskExecutor needs scheduler or n_workers")
        if n_workers is not None and (
            isinstance(n_workers, bool)
            or not isinstance(n_workers, int)
            or n_workers < 1
        ):
            raise ValueError(f"n_workers must be a positive integer, got {n_workers!r}")
        self.scheduler = scheduler
        self.n_workers = n_workers
        self._distributed = _dask()
        self._client: Any = None
        self._cluster: Any = None

    def _connect(self) -> Any:
        if self._client is None:
            d = self._distributed
            if self.scheduler is not None:
                self._client = d.Client(self.scheduler, timeout="30s")
            else:
                self._cluster = d.LocalCluster(
                    n_workers=self.n_workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                )
                self._client = d.Client(self._cluster)
        return self._client

    def run(
        self,
        config: StudyConfig,
        units: Sequence[WorkUnit],
        on_start: Callable[[WorkUnit], None] | None = None,
    ) -> Iterator[TrialResult]:
        """Submit every unit to the cluster, yield results as they finish."""
        if not units:
            return
        client = self._connect()
        futures = [
            client.submit(run_trial, config, u.trial, u.models, pure=False)
            for u in units
        ]
        if on_start is not None:
            on_start(units[0])
        try:
            for future in self._distributed.as_completed(futures):
                yield future.result()
        finally:
            for f in futures:
                f.cancel()

    def close(self) -> None:
        """Close the client, and the local cluster if this executor started it."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None


def make_executor(
    jobs: int | None = None,
    scheduler: str | None = None,
    dask_workers: int | None = None,
) -> Executor:
    """The executor ``ntkeq run``'s flags ask for.

    ``scheduler`` or ``dask_workers`` select Dask, ``jobs > 1`` worker
    processes, anything else the in-process executor. Raises
    :class:`ConfigError` for conflicting flags or a missing Dask.

    Examples
    --------
    >>> make_executor().name, make_executor(jobs=2).name
    ('local', 'processes')
    """
    if jobs is not None and (
        isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1
    ):
        raise ConfigError(f"--jobs {jobs!r} is not allowed; use a positive integer")
    if dask_workers is not None and dask_workers < 1:
        raise ConfigError(
            f"--dask-workers {dask_workers} is not allowed; use a positive integer"
        )
    if scheduler is not None and dask_workers is not None:
        raise ConfigError("--scheduler and --dask-workers exclude each other; use one")
    if (scheduler is not None or dask_workers is not None) and jobs not in (None, 1):
        raise ConfigError(
            "--jobs applies to local worker processes; with Dask, size the cluster"
        )
    if scheduler is not None:
        if not scheduler.startswith(
            ("tcp://", "tls://", "inproc://", "ws://", "wss://")
        ):
            raise ConfigError(
                f"--scheduler {scheduler!r} is not an address; use e.g. tcp://HOST:8786"
            )
        return DaskExecutor(scheduler=scheduler)
    if dask_workers is not None:
        return DaskExecutor(n_workers=dask_workers)
    if jobs is not None and jobs > 1:
        return ProcessExecutor(jobs)
    return LocalExecutor()
