"""The equivalence study: configs, trials, a resumable store, executors.

``ntkeq run`` (:mod:`ntkeq.study.cli_run`) and :func:`run_study` run a
study described by a :class:`StudyConfig` (a shipped preset or a TOML file)
into a results folder; :func:`open_results` reads it back for
:mod:`ntkeq.study.report`. See ``docs/study.md``.
"""

from ntkeq.study.config import (
    ConfigError,
    StudyConfig,
    apply_overrides,
    list_presets,
    load_config,
    load_preset,
)
from ntkeq.study.trial import TrialResult, run_trial

__all__ = [
    "ConfigError",
    "StudyConfig",
    "TrialResult",
    "apply_overrides",
    "list_presets",
    "load_config",
    "load_preset",
    "open_results",
    "run_study",
    "run_trial",
]


def __getattr__(name: str) -> object:
    # The store and runner import the report module; load them on first use.
    if name == "open_results":
        from ntkeq.study.store import open_results

        return open_results
    if name == "run_study":
        from ntkeq.study.runner import run_study

        return run_study
    raise AttributeError(f"module 'ntkeq.study' has no attribute {name!r}")
