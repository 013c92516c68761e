"""The results store: one SQLite file per study folder, ``OUT/results.sqlite``.

Every finished (trial, model) is written in its own transaction, so a run
killed at any moment loses at most the work in flight, and rerunning the
same command resumes where it stopped. Arrays are stored as little-endian
float64 bytes; nothing is pickled.

Schema (version :data:`SCHEMA_VERSION`)::

    meta(key TEXT PRIMARY KEY, value TEXT)
        schema_version, ntkeq_version, config_toml, config_hash, preset,
        variant, seed, n_trials, models (JSON list), started, finished,
        host, device
    trials(trial INTEGER PRIMARY KEY, seed INTEGER, y_test BLOB)
    results(trial, model, status, rmse, fit_time, reason, predictions BLOB,
            loss_curve BLOB, metrics TEXT, finished TEXT, UNIQUE(trial, model))

``loss_curve`` holds k (epoch, loss) rows, i.e. 2k float64 values (a
network's training loss, or an ``@`` predictor's at the same epochs).
``metrics`` is a JSON object: a network's lazy-training measures
(``parameter_change``, ``parameter_change_by_layer``, ``ntk_change``,
``ntk_subsample``), a predictor's ``steps`` and ``eta``, ``{}`` otherwise.
The file runs in write-ahead-log mode with ``synchronous=NORMAL``: a
committed result survives the process being killed.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from ntkeq.study.report import ModelResult, StudyResults
from ntkeq.study.trial import ModelOutcome, TrialResult

__all__ = [
    "LOCK_NAME",
    "SCHEMA_VERSION",
    "STORE_NAME",
    "ResultsStore",
    "StoreError",
    "StoreLock",
    "can_write",
    "open_results",
]

#: Bumped whenever the tables change incompatibly.
SCHEMA_VERSION = 2
STORE_NAME = "results.sqlite"
LOCK_NAME = ".lock"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS trials (
    trial INTEGER PRIMARY KEY,
    seed INTEGER NOT NULL,
    y_test BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    trial INTEGER NOT NULL,
    model TEXT NOT NULL,
    status TEXT NOT NULL,
    rmse REAL,
    fit_time REAL NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    predictions BLOB,
    loss_curve BLOB,
    metrics TEXT NOT NULL DEFAULT '{}',
    finished TEXT NOT NULL,
    UNIQUE (trial, model)
);
"""


class StoreError(ValueError):
    """A results store is missing, locked or incompatible (one-line message)."""


def can_write(folder: Path | str) -> bool:
    """Whether files can be created in the existing folder ``folder``.

    Probed by creating and removing an empty temporary folder: permission
    bits alone do not tell (root passes them everywhere, also on a virtual
    file system such as ``/proc``). Leaves nothing behind.
    """
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        probe = tempfile.mkdtemp(prefix=".ntkeq-probe-", dir=folder)
    except OSError:
        return False
    os.rmdir(probe)
    return True


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _blob(a: np.ndarray | None) -> bytes | None:
    if a is None:
        return None
    return np.ascontiguousarray(a, dtype="<f8").tobytes()


def _array(b: bytes | None, cols: int = 1) -> np.ndarray | None:
    if b is None:
        return None
    a = np.frombuffer(b, dtype="<f8").astype(np.float64)
    return a.reshape(-1, cols) if cols > 1 else a


class StoreLock:
    """Exclusive lock on a study folder, held for the duration of a run.

    An ``fcntl.flock`` on ``OUT/.lock``: the operating system releases it when
    the process ends, even on ``kill -9``, so a stale lock never blocks.
    """

    def __init__(self, out_dir: Path | str) -> None:
        self.path = Path(out_dir) / LOCK_NAME
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock; :class:`StoreError` if another run holds it."""
        f = open(self.path, "a+", encoding="utf-8")  # held open while locked
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip()
            f.close()
            raise StoreError(
                f"{self.path.parent} is in use by another ntkeq run "
                f"({holder or 'pid unknown'}); "
                "wait for it to finish or use another --out"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}\n")
        f.flush()
        self._file = f

    def release(self) -> None:
        """Release the lock (idempotent)."""
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class ResultsStore:
    """Read and write ``results.sqlite`` (see the module docstring for the schema).

    Parameters
    ----------
    path : path-like
        The SQLite file.
    readonly : bool
        Open an existing store read-only (for reports); :class:`StoreError`
        if it does not exist.
    """

    def __init__(self, path: Path | str, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if readonly:
            if not self.path.is_file():
                raise StoreError(
                    f"no results store at {self.path}; run `ntkeq run --out DIR` first"
                )
            uri = self.path.resolve().as_uri() + "?mode=ro"
            self._conn = sqlite3.connect(uri, uri=True)
        else:
            self._conn = sqlite3.connect(self.path)
        try:
            self._conn.execute("PRAGMA foreign_keys = ON")
            if not readonly:
                self._conn.executescript(_SCHEMA)
            self._check_schema()
            if not readonly:
                self._conn.execute("PRAGMA journal_mode = WAL")
                self._conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise StoreError(
                f"{self.path} is not an ntkeq results store ({exc})"
            ) from None
        except StoreError:
            self._conn.close()
            raise

    # -- lifecycle ---------------------------------------------------------

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_schema(self) -> None:
        tables = {
            r[0]
            for r in self._conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table'"
            )
        }
        if not {"meta", "trials", "results"} <= tables:
            raise StoreError(
                f"{self.path} is not an ntkeq results store (tables missing)"
            )
        version = self.get_meta("schema_version")
        columns = {r[1] for r in self._conn.execute("PRAGMA table_info(results)")}
        if version is None and "metrics" not in columns:
            version = "1"
        if version is not None and version != str(SCHEMA_VERSION):
            raise StoreError(
                f"{self.path} has results schema version {version}, this ntkeq reads "
                f"version {SCHEMA_VERSION}; use the ntkeq version that wrote it or "
                "start afresh with --force-new"
            )

    # -- meta --------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """One meta value, or ``None`` if unset."""
        row = self._conn.execute(
            "SELECT value FROM meta WHERE key = ?", (key,)
        ).fetchone()
        return None if row is None else str(row[0])

    def meta(self) -> dict[str, str]:
        """Every meta value."""
        return {k: v for k, v in self._conn.execute("SELECT key, value FROM meta")}

    def set_meta(self, **values: Any) -> None:
        """Set meta values in one transaction (``None`` values are skipped)."""
        rows = [(k, str(v)) for k, v in values.items() if v is not None]
        with self._conn:
            self._conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                rows,
            )

    def is_empty(self) -> bool:
        """True when the store has no configuration and no results yet."""
        n = self._conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        return n == 0 and self.get_meta("config_toml") is None

    # -- results -----------------------------------------------------------

    def done(self) -> set[tuple[int, str]]:
        """The (trial, model) pairs already stored."""
        return {
            (int(t), str(m))
            for t, m in self._conn.execute("SELECT trial, model FROM results")
        }

    def add(self, trial: TrialResult, outcome: ModelOutcome) -> bool:
        """Store one finished (trial, model) in its own transaction.

        Returns False (and changes nothing) if that pair was already stored.
        """
        with self._conn:
            self._conn.execute(
                "INSERT OR IGNORE INTO trials (trial, seed, y_test) VALUES (?, ?, ?)",
                (trial.index, trial.seed, _blob(trial.y_test)),
            )
            cur = self._conn.execute(
                "INSERT OR IGNORE INTO results (trial, model, status, rmse, fit_time, "
                "reason, predictions, loss_curve, metrics, finished) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    trial.index,
                    outcome.model,
                    outcome.status,
                    outcome.rmse,
                    float(outcome.fit_time),
                    outcome.reason,
                    _blob(outcome.predictions),
                    _blob(outcome.loss_curve),
                    json.dumps(dict(outcome.metrics), allow_nan=False),
                    _now(),
                ),
            )
            return cur.rowcount == 1

    def predictions(self, model: str) -> dict[int, np.ndarray]:
        """Stored test predictions of ``model``, trial -> (n_test,) array."""
        rows = self._conn.execute(
            "SELECT trial, predictions FROM results WHERE model = ? ORDER BY trial",
            (model,),
        )
        out = {}
        for t, b in rows:
            a = _array(b)
            if a is not None:
                out[int(t)] = a
        return out

    def loss_curve(self, trial: int, model: str) -> np.ndarray | None:
        """Stored (k, 2) loss curve of one network, or ``None``."""
        row = self._conn.execute(
            "SELECT loss_curve FROM results WHERE trial = ? AND model = ?",
            (trial, model),
        ).fetchone()
        return None if row is None else _array(row[0], cols=2)

    def metrics(self) -> dict[tuple[int, str], dict[str, Any]]:
        """Non-empty stored metrics, (trial, model) -> dict."""
        out = {}
        for t, m, text in self._conn.execute(
            "SELECT trial, model, metrics FROM results WHERE metrics != '{}'"
        ):
            out[(int(t), str(m))] = json.loads(text)
        return out

    def y_test(self, trial: int) -> np.ndarray | None:
        """Stored test targets (n_test,) of one trial, or ``None``."""
        row = self._conn.execute(
            "SELECT y_test FROM trials WHERE trial = ?", (trial,)
        ).fetchone()
        return None if row is None else _array(row[0])

    def rows(self) -> Iterator[tuple[Any, ...]]:
        """(trial, model, status, rmse, fit_time, reason) of every result."""
        yield from self._conn.execute(
            "SELECT trial, model, status, rmse, fit_time, reason FROM results "
            "ORDER BY trial, model"
        )

    def count(self) -> int:
        """Number of stored (trial, model) results."""
        return int(self._conn.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    # -- loading -----------------------------------------------------------

    def load(self) -> StudyResults:
        """Everything a report needs, as :class:`~ntkeq.study.report.StudyResults`.

        Raises
        ------
        StoreError
            If the store was never initialized by a run.
        """
        meta = self.meta()
        required = ("config_toml", "preset", "variant", "seed", "n_trials", "models")
        missing = [k for k in required if k not in meta]
        if missing:
            raise StoreError(
                f"{self.path} has no study metadata ({', '.join(missing)} missing); "
                "it was not written by `ntkeq run`"
            )
        # a rerun with fewer --trials keeps the extra results but hides them
        n_trials = int(meta["n_trials"])
        results = tuple(
            ModelResult(
                trial=int(t),
                model=str(m),
                rmse=None if r is None or s != "ok" else float(r),
                status=str(s),
                fit_time=float(ft),
            )
            for t, m, s, r, ft, _reason in self.rows()
            if int(t) < n_trials
        )
        predictions: dict[tuple[int, str], np.ndarray] = {}
        curves: dict[tuple[int, str], np.ndarray] = {}
        for t, m, pb, cb in self._conn.execute(
            "SELECT trial, model, predictions, loss_curve FROM results"
        ):
            if int(t) >= n_trials:
                continue
            pred = _array(pb)
            if pred is not None:
                predictions[(int(t), str(m))] = pred
            curve = _array(cb, cols=2)
            if curve is not None:
                curves[(int(t), str(m))] = curve
        metrics = {k: v for k, v in self.metrics().items() if k[0] < n_trials}
        return StudyResults(
            preset=meta["preset"],
            variant=meta["variant"],
            version=meta.get("ntkeq_version", "unknown"),
            seed=int(meta["seed"]),
            n_trials=n_trials,
            models=tuple(json.loads(meta["models"])),
            config_toml=meta["config_toml"],
            results=results,
            started=meta.get("started"),
            finished=meta.get("finished"),
            host=meta.get("host"),
            device=meta.get("device"),
            predictions=predictions,
            loss_curves=curves,
            metrics=metrics,
        )


def open_results(out_dir: Path | str) -> StudyResults:
    """Load the results of the study folder ``out_dir`` (read-only).

    Raises
    ------
    StoreError
        If ``out_dir/results.sqlite`` is missing or incompatible.
    """
    with contextlib.closing(
        ResultsStore(Path(out_dir) / STORE_NAME, readonly=True)
    ) as s:
        return s.load()
