"""Tables, figures and the layer-change analysis of a study.

Turns the per-trial results of a study into the paper's table (its Figures 2
and 3), the boxplot of its Figure 1 and the one-to-two-layer comparison of its
Section 4.2, in markdown, CSV, JSON or LaTeX.

Notation
--------
``rmse``
    Test root mean squared error of one model in one trial.
``k``
    Number of trials of a model whose status is ``"ok"``; only those count.
``mean_rmse``
    Sample mean of the k RMSEs.
``se``
    Standard error in the paper's convention: population standard deviation
    (ddof 0) divided by sqrt(k), as in the published script.
``se_sample``
    Standard error with the sample standard deviation (ddof 1) over sqrt(k);
    undefined (``None``) for k < 2.
``percent_change``
    100 * (mean_rmse at depth L+1 - mean_rmse at depth L) / mean_rmse at
    depth L, the quantity quoted in the paper's Section 4.2.

Every rendering states the preset, variant, trial count, seed and ntkeq
version that produced it. The CSV form carries them as leading ``#`` comment
lines; the LaTeX form as ``%`` comments and in the caption.

Tables are built as :class:`ReportTable` objects by the functions listed in
``TABLE_BUILDERS``; the markdown and LaTeX renderers print every table in
that list, and the JSON form stores each extra table under its key, so a new
table is added by appending one builder.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "FORMATS",
    "LAYER_CHANGE_FAMILIES",
    "PAPER_ORDER",
    "PUBLISHED_FIGURE3",
    "TABLE_BUILDERS",
    "Column",
    "ModelResult",
    "ReportTable",
    "StudyResults",
    "agreement_rows",
    "compare_published",
    "layer_change",
    "layer_change_from_means",
    "lazy_rows",
    "model_label",
    "ordered_models",
    "render_report",
    "report_table",
    "report_tables",
    "status_counts",
    "write_boxplot",
    "write_equivalence_figures",
    "write_report",
]

#: Output formats accepted by :func:`render_report`.
FORMATS: tuple[str, ...] = ("markdown", "csv", "json", "latex")

#: The paper's row order (Figures 2 and 3); other models follow in config order.
PAPER_ORDER: tuple[str, ...] = (
    "NN1",
    "NN2",
    "GP1",
    "GP2",
    "NTKA1",
    "NTKA2",
    "NTKJ1",
    "NTKJ2",
    "NTKB1",
    "NTKB2",
    "K1",
)

#: Published Figure 3: model -> (mean RMSE, SE with ddof 0) over 50 trials.
PUBLISHED_FIGURE3: dict[str, tuple[float, float]] = {
    "NN1": (0.207151, 0.0022229),
    "NN2": (0.191916, 0.00202076),
    "GP1": (0.0634271, 0.000419303),
    "GP2": (0.0635353, 0.000420746),
    "NTKA1": (0.0808606, 0.000538324),
    "NTKA2": (0.0836348, 0.000625299),
    "NTKJ1": (0.063008, 0.000412339),
    "NTKJ2": (0.062946, 0.000412801),
    "NTKB1": (0.0629396, 0.000413537),
    "NTKB2": (0.0629477, 0.000413594),
    "K1": (0.103857, 0.000862339),
}

#: Families compared across depths in the layer-change analysis (Section 4.2).
LAYER_CHANGE_FAMILIES: tuple[str, ...] = ("NN", "NTKA", "NTKB", "NTKJ", "GP")

_FAMILY_LABELS = {
    "NN": "NN",
    "GP": "GP",
    "NTKA": "NTKA",
    "NTKJ": "NTKJ",
    "NTKB": "NTKB",
}
_MODEL_NAME = re.compile(r"^([A-Za-z]+?)(\d+)$")
_STATUSES = ("ok", "failed", "diverged")


# ---------------------------------------------------------------------------
# The contract with the study store
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelResult:
    """Outcome of one model in one trial.

    Parameters
    ----------
    trial : int
        Trial index (0-based).
    model : str
        Model name as in the config, e.g. ``"NN1"``, ``"NTKB2"``, ``"K1"``,
        ``"NTKJ1@NN1"``.
    rmse : float or None
        Test RMSE; ``None`` when ``status != "ok"``.
    status : str
        ``"ok"``, ``"failed"`` or ``"diverged"``.
    fit_time : float
        Seconds spent fitting and predicting.
    """

    trial: int
    model: str
    rmse: float | None
    status: str
    fit_time: float


@dataclass(frozen=True)
class StudyResults:
    """Everything a report needs: the study's identity and its results.

    Parameters
    ----------
    preset : str
        Preset the config came from (``"custom"`` for a user TOML).
    variant : str
        ``"exact"`` or ``"as-published"``.
    version : str
        ntkeq version that wrote the results.
    seed : int
        Base seed of the study.
    n_trials : int
        Number of trials planned.
    models : tuple of str
        Model names in the configured order.
    config_toml : str
        The effective config as TOML text.
    results : tuple of ModelResult
        One entry per (trial, model) that has finished, in any order.
    started, finished, host, device : str or None
        Free-form metadata (ISO times, host name, compute device).
    predictions : mapping, optional
        (trial, model) -> test predictions of shape (n_test,), for the
        agreement table.
    loss_curves : mapping, optional
        (trial, model) -> (k, 2) array of (epoch, training loss).
    metrics : mapping, optional
        (trial, model) -> dict of a network's lazy-training measures
        (``parameter_change``, ``parameter_change_by_layer``,
        ``ntk_change``).
    """

    preset: str
    variant: str
    version: str
    seed: int
    n_trials: int
    models: tuple[str, ...]
    config_toml: str
    results: tuple[ModelResult, ...]
    started: str | None = None
    finished: str | None = None
    host: str | None = None
    device: str | None = None
    predictions: Mapping[tuple[int, str], Any] = field(default_factory=dict)
    loss_curves: Mapping[tuple[int, str], Any] = field(default_factory=dict)
    metrics: Mapping[tuple[int, str], Mapping[str, Any]] = field(default_factory=dict)


# ---------------------------------------------------------------------------
# Generic table description (the extension point)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One column of a :class:`ReportTable`.

    Parameters
    ----------
    key : str
        Key of the value in each row dict.
    header : str
        Human-readable header for markdown and LaTeX.
    kind : str
        How values are formatted: ``"text"``, ``"int"``, ``"float"`` (six
        significant digits) or ``"percent"`` (signed, three significant
        digits).
    """

    key: str
    header: str
    kind: str = "text"


@dataclass(frozen=True)
class ReportTable:
    """A titled table with typed columns, rendered by every format.

    Parameters
    ----------
    key : str
        JSON key the table is stored under (the main table is ``"rows"``).
    title : str
        Section title in markdown, caption in LaTeX.
    columns : tuple of Column
        Columns in display order.
    rows : tuple of dict
        One dict per row, keyed by the columns' keys (extra keys allowed).
    notes : tuple of str
        Footnotes printed under the table.
    """

    key: str
    title: str
    columns: tuple[Column, ...]
    rows: tuple[dict[str, Any], ...]
    notes: tuple[str, ...] = field(default_factory=tuple)


# ---------------------------------------------------------------------------
# Names and ordering
# ---------------------------------------------------------------------------


def _split_name(model: str) -> tuple[str, int] | None:
    """Family and depth of a paper-style model name, or None."""
    match = _MODEL_NAME.match(model)
    if match is None:
        return None
    return match.group(1).upper(), int(match.group(2))


def model_label(model: str) -> str:
    """Human label for a model name, in the paper's style.

    Parameters
    ----------
    model : str
        Model name such as ``"NN1"`` or ``"NTKB2"``.

    Returns
    -------
    str
        ``"NN (1 layer)"``, ``"NTKB (2 layers)"``, ``"Laplacian (K1)"``; any
        other name is returned unchanged.

    Examples
    --------
    >>> model_label("NN1"), model_label("NTKJ3"), model_label("K1")
    ('NN (1 layer)', 'NTKJ (3 layers)', 'Laplacian (K1)')
    """
    if model.upper() == "K1":
        return "Laplacian (K1)"
    parts = _split_name(model)
    if parts is None or parts[0] not in _FAMILY_LABELS:
        return model
    family, depth = parts
    noun = "layer" if depth == 1 else "layers"
    return f"{_FAMILY_LABELS[family]} ({depth} {noun})"


def ordered_models(results: StudyResults) -> list[str]:
    """Models in report order: the paper's rows first, then config order.

    Models that appear in ``results.results`` but not in ``results.models``
    are appended in order of first appearance.

    Examples
    --------
    >>> r = StudyResults("quick", "exact", "0", 0, 1, ("K1", "NTKB3", "NN1"),
    ...                  "", ())
    >>> ordered_models(r)
    ['NN1', 'K1', 'NTKB3']
    """
    seen = list(dict.fromkeys([*results.models, *(r.model for r in results.results)]))
    paper = [m for m in PAPER_ORDER if m in seen]
    return paper + [m for m in seen if m not in PAPER_ORDER]


# ---------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------


def _latest(results: StudyResults) -> list[ModelResult]:
    """One result per (trial, model); a later entry replaces an earlier one."""
    latest: dict[tuple[int, str], ModelResult] = {}
    for r in results.results:
        latest[(r.trial, r.model)] = r
    return list(latest.values())


def _ok_rmses(results: StudyResults) -> dict[str, list[float]]:
    """Finite RMSEs of status-"ok" results per model, in trial order."""
    per_model: dict[str, list[tuple[int, float]]] = {}
    for r in _latest(results):
        if r.status == "ok" and r.rmse is not None and math.isfinite(r.rmse):
            per_model.setdefault(r.model, []).append((r.trial, float(r.rmse)))
    return {m: [v for _, v in sorted(pairs)] for m, pairs in per_model.items()}


def _summary(values: Sequence[float]) -> dict[str, Any]:
    """Count, mean and both standard errors of one model's RMSEs."""
    k = len(values)
    if k == 0:
        return {"trials": 0, "mean_rmse": None, "se": None, "se_sample": None}
    mean = math.fsum(values) / k
    ss = math.fsum((v - mean) ** 2 for v in values)
    se = math.sqrt(ss / k) / math.sqrt(k)
    se_sample = math.sqrt(ss / (k - 1)) / math.sqrt(k) if k > 1 else None
    return {"trials": k, "mean_rmse": mean, "se": se, "se_sample": se_sample}


def status_counts(results: StudyResults) -> dict[str, dict[str, int]]:
    """Number of results per model and status.

    Returns
    -------
    dict
        ``{model: {"ok": n, "failed": n, "diverged": n, "invalid": n}}`` in
        report order, where ``"invalid"`` counts ``"ok"`` results without a
        finite RMSE and results with any other status; only ``"ok"`` results
        enter the table.
    """
    counts = {
        m: dict.fromkeys((*_STATUSES, "invalid"), 0) for m in ordered_models(results)
    }
    for r in _latest(results):
        finite = r.rmse is not None and math.isfinite(r.rmse)
        if r.status == "ok" and not finite:
            key = "invalid"
        elif r.status in _STATUSES:
            key = r.status
        else:
            key = "invalid"
        counts[r.model][key] += 1
    return counts


def _trials_done(results: StudyResults) -> int:
    """Number of distinct trials with at least one result."""
    return len({r.trial for r in results.results})


def report_table(results: StudyResults) -> list[dict[str, Any]]:
    """The paper's table of mean RMSE and its standard errors (Figure 3).

    Only results with status ``"ok"`` and a finite RMSE count. The standard
    error ``se`` follows the paper (population standard deviation, ddof 0,
    over sqrt(trials)); ``se_sample`` uses ddof 1 and is ``None`` with fewer
    than two trials. A model without any counted trial gets ``trials = 0``
    and ``None`` statistics.

    Parameters
    ----------
    results : StudyResults
        The study's results; partial studies are summarised as they are.

    Returns
    -------
    list of dict
        One row per model in the paper's row order (others after, in config
        order), with exactly the keys ``"model"``, ``"trials"``,
        ``"mean_rmse"``, ``"se"``, ``"se_sample"``.

    Examples
    --------
    >>> rs = tuple(ModelResult(i, "NN1", v, "ok", 1.0)
    ...            for i, v in enumerate([1.0, 2.0, 3.0, 4.0]))
    >>> r = StudyResults("quick", "exact", "0", 0, 4, ("NN1",), "", rs)
    >>> report_table(r)  # se = sqrt(1.25)/2, se_sample = sqrt(5/3)/2
    [{'model': 'NN1', 'trials': 4, 'mean_rmse': 2.5, 'se': 0.5590..., \
'se_sample': 0.6454...}]
    """
    rmses = _ok_rmses(results)
    return [{"model": m, **_summary(rmses.get(m, []))} for m in ordered_models(results)]


# ---------------------------------------------------------------------------
# Section 4.2: change from one depth to the next
# ---------------------------------------------------------------------------


def layer_change_from_means(means: Mapping[str, float | None]) -> list[dict[str, Any]]:
    """Percentage change in mean RMSE when a layer is added (Section 4.2).

    For each family of ``LAYER_CHANGE_FAMILIES`` and each pair of consecutive
    depths (L, L+1) whose means are both present, computes
    ``100 * (mean[L+1] - mean[L]) / mean[L]``.

    Parameters
    ----------
    means : mapping of str to float or None
        Mean RMSE per model name (``None`` entries are skipped).

    Returns
    -------
    list of dict
        Rows ``{"family", "depth_from", "depth_to", "mean_from", "mean_to",
        "percent_change"}``, families in ``LAYER_CHANGE_FAMILIES`` order.

    Examples
    --------
    >>> rows = layer_change_from_means({"NN1": 0.207151, "NN2": 0.191916})
    >>> round(rows[0]["percent_change"], 2)
    -7.35
    """
    by_family: dict[str, dict[int, float]] = {}
    for name, mean in means.items():
        parts = _split_name(name)
        if parts is None or mean is None or not math.isfinite(mean):
            continue
        by_family.setdefault(parts[0], {})[parts[1]] = float(mean)

    rows = []
    for family in LAYER_CHANGE_FAMILIES:
        depths = by_family.get(family, {})
        for depth in sorted(depths):
            if depth + 1 not in depths or depths[depth] == 0.0:
                continue
            lo, hi = depths[depth], depths[depth + 1]
            rows.append(
                {
                    "family": family,
                    "depth_from": depth,
                    "depth_to": depth + 1,
                    "mean_from": lo,
                    "mean_to": hi,
                    "percent_change": 100.0 * (hi - lo) / lo,
                }
            )
    return rows


def layer_change(results: StudyResults) -> list[dict[str, Any]]:
    """Layer-change analysis of the paper's Section 4.2 on a study's means.

    See :func:`layer_change_from_means` for the rows returned.
    """
    means = {row["model"]: row["mean_rmse"] for row in report_table(results)}
    return layer_change_from_means(means)


# ---------------------------------------------------------------------------
# Comparison with the published table
# ---------------------------------------------------------------------------


def compare_published(results: StudyResults) -> list[dict[str, Any]]:
    """Compare each paper model's mean RMSE with the published Figure 3.

    The published values come from the published script, so they are the
    reference for the ``as-published`` variant; an ``exact`` study is
    expected to differ for the kernels.

    Parameters
    ----------
    results : StudyResults
        The study's results.

    Returns
    -------
    list of dict
        For each model of ``PAPER_ORDER`` with at least one counted trial, in
        that order: ``{"model", "trials", "mean_rmse", "se",
        "published_mean", "published_se", "difference", "combined_se",
        "z"}`` where ``difference = mean_rmse - published_mean``,
        ``combined_se = sqrt(se**2 + published_se**2)`` (both ddof 0) and
        ``z = difference / combined_se``, the difference in combined
        standard errors (``None`` when ``combined_se`` is 0).
    """
    rows = []
    for row in report_table(results):
        model = row["model"]
        if model not in PUBLISHED_FIGURE3 or row["trials"] == 0:
            continue
        pub_mean, pub_se = PUBLISHED_FIGURE3[model]
        difference = row["mean_rmse"] - pub_mean
        combined = math.hypot(row["se"], pub_se)
        rows.append(
            {
                "model": model,
                "trials": row["trials"],
                "mean_rmse": row["mean_rmse"],
                "se": row["se"],
                "published_mean": pub_mean,
                "published_se": pub_se,
                "difference": difference,
                "combined_se": combined,
                "z": difference / combined if combined > 0 else None,
            }
        )
    return rows


# ---------------------------------------------------------------------------
# Tables for rendering
# ---------------------------------------------------------------------------


def _trial_phrase(results: StudyResults) -> str:
    done = _trials_done(results)
    if done >= results.n_trials:
        return f"{results.n_trials} trials"
    return f"{done} of {results.n_trials} trials"


def _main_table(results: StudyResults) -> ReportTable:
    """The paper's Figure 3 with labels and per-model failure counts."""
    counts = status_counts(results)
    rows = []
    for row in report_table(results):
        c = counts[row["model"]]
        rows.append(
            {
                **row,
                "label": model_label(row["model"]),
                "failed": c["failed"],
                "diverged": c["diverged"],
                "invalid": c["invalid"],
            }
        )
    columns = (
        Column("label", "Method"),
        Column("model", "Model"),
        Column("trials", "Number of Trials", "int"),
        Column("mean_rmse", "Mean RMSE", "float"),
        Column("se", "SE (paper, ddof 0)", "float"),
        Column("se_sample", "SE (sample, ddof 1)", "float"),
        Column("failed", "Failed", "int"),
        Column("diverged", "Diverged", "int"),
    )
    notes = [
        "Only trials with status ok count; failed and diverged trials are "
        "listed per model and left out of the mean.",
        "SE (paper) is the population standard deviation (ddof 0) over "
        "sqrt(trials), as in the published script; SE (sample) uses ddof 1.",
    ]
    n_invalid = sum(r["invalid"] for r in rows)
    if n_invalid:
        notes.append(
            f"{n_invalid} result(s) had no finite RMSE or an unknown status "
            "and were left out."
        )
    if _trials_done(results) < results.n_trials:
        notes.append(
            f"Partial results: {_trials_done(results)} of {results.n_trials} "
            "planned trials have results."
        )
    return ReportTable("rows", "Mean test RMSE", columns, tuple(rows), tuple(notes))


def _layer_change_table(results: StudyResults) -> ReportTable | None:
    """Section 4.2's percentage change in mean RMSE per added layer."""
    rows = layer_change(results)
    if not rows:
        return None
    columns = (
        Column("family", "Family"),
        Column("depth_from", "From depth", "int"),
        Column("depth_to", "To depth", "int"),
        Column("mean_from", "Mean RMSE (from)", "float"),
        Column("mean_to", "Mean RMSE (to)", "float"),
        Column("percent_change", "Change", "percent"),
    )
    note = "Change is 100 * (mean_to - mean_from) / mean_from (paper, Section 4.2)."
    return ReportTable(
        "layer_change", "Change with an added layer", columns, tuple(rows), (note,)
    )


def _model_kinds(results: StudyResults) -> dict[str, str]:
    """Model name -> ``"network"``, ``"kernel"`` or ``"predictor"``.

    Read from the stored configuration; without one, names starting with
    ``NN`` are networks, names with ``@`` predictors, the rest kernels.
    """
    kinds: dict[str, str] = {}
    if results.config_toml.strip():
        try:
            import tomllib

            from ntkeq.study.config import config_from_dict

            cfg = config_from_dict(tomllib.loads(results.config_toml))
            kinds = {m.name: m.kind for m in cfg.models}
        except (ValueError, tomllib.TOMLDecodeError):
            kinds = {}
    for m in ordered_models(results):
        if m not in kinds:
            kinds[m] = (
                "predictor"
                if "@" in m
                else "network"
                if m.upper().startswith("NN")
                else "kernel"
            )
    return kinds


def _ok_predictions(results: StudyResults) -> list[dict[str, Any]]:
    """Per planned trial, model -> test predictions of its status-ok results."""
    ok = {(r.trial, r.model) for r in _latest(results) if r.status == "ok"}
    trials: dict[int, dict[str, Any]] = {}
    for (t, m), pred in results.predictions.items():
        if (t, m) in ok and t < results.n_trials:
            trials.setdefault(t, {})[m] = pred
    return [trials[t] for t in sorted(trials)]


def agreement_rows(results: StudyResults) -> list[dict[str, Any]]:
    """RMSE between each network's and each kernel model's test predictions.

    For every network and every kernel or ``@`` predictor model, the
    distance sqrt(mean((f_network - f_kernel)^2)) over the test points in
    each trial where both have status ``"ok"``, summarized over trials by
    :func:`ntkeq.equivalence.agreement_table` (mean, SE with ddof 0 and with
    ddof 1).

    Returns
    -------
    list of dict
        Keys ``network``, ``kernel``, ``trials``, ``mean_distance``, ``se``,
        ``se_sample`` (``None`` for one trial).
    """
    if not results.predictions:
        return []
    from ntkeq.equivalence import agreement_table

    kinds = _model_kinds(results)
    order = ordered_models(results)
    networks = [m for m in order if kinds.get(m) == "network"]
    others = [m for m in order if kinds.get(m) in ("kernel", "predictor")]
    if not networks or not others:
        return []
    rows = agreement_table(_ok_predictions(results), networks=networks, kernels=others)
    for row in rows:
        if not math.isfinite(row["se_sample"]):
            row["se_sample"] = None
    return rows


def _agreement_table(results: StudyResults) -> ReportTable | None:
    """Network-to-kernel prediction distance (the equivalence measured directly)."""
    rows = agreement_rows(results)
    if not rows:
        return None
    columns = (
        Column("network", "Network"),
        Column("kernel", "Kernel model"),
        Column("trials", "Number of Trials", "int"),
        Column("mean_distance", "Mean RMSE(network, kernel)", "float"),
        Column("se", "SE (paper, ddof 0)", "float"),
        Column("se_sample", "SE (sample, ddof 1)", "float"),
    )
    notes = (
        "RMSE between the two models' test predictions in each trial where "
        "both are ok; 0 would be exact equivalence.",
        "K@NN is kernel gradient descent with kernel K after the training NN "
        "received (same points, learning rate, batch size, epochs; plus NN's "
        "initial function unless f0 = false).",
    )
    return ReportTable(
        "agreement", "Agreement: network vs kernel", columns, tuple(rows), notes
    )


def lazy_rows(results: StudyResults) -> list[dict[str, Any]]:
    """Mean and SE (ddof 0) over trials of each network's lazy-training measures.

    Returns
    -------
    list of dict
        Keys ``network``, ``trials``, ``parameter_change``,
        ``parameter_change_se``, ``ntk_change``, ``ntk_change_se`` and
        ``by_layer`` (the mean of ``parameter_change_by_layer`` per layer,
        input layer first, as text).
    """
    per: dict[str, list[Mapping[str, Any]]] = {}
    for (t, m), values in sorted(results.metrics.items()):
        if t < results.n_trials and "parameter_change" in values:
            per.setdefault(m, []).append(values)
    rows = []
    for m in ordered_models(results):
        if m not in per:
            continue
        row: dict[str, Any] = {"network": m, "trials": len(per[m])}
        for key in ("parameter_change", "ntk_change"):
            stats = _summary([v[key] for v in per[m] if v.get(key) is not None])
            row[key], row[f"{key}_se"] = stats["mean_rmse"], stats["se"]
        layers = [v.get("parameter_change_by_layer") or [] for v in per[m]]
        depth = min((len(x) for x in layers), default=0)
        means = [
            math.fsum(x[i] for x in layers if x[i] is not None) / len(layers)
            for i in range(depth)
        ]
        row["by_layer"] = ", ".join(f"{v:.3g}" for v in means)
        rows.append(row)
    return rows


def _lazy_table(results: StudyResults) -> ReportTable | None:
    """Lazy-training measures per network, mean and SE over trials."""
    rows = lazy_rows(results)
    if not rows:
        return None
    columns = (
        Column("network", "Network"),
        Column("trials", "Number of Trials", "int"),
        Column("parameter_change", "‖θ_T − θ_0‖/‖θ_0‖", "float"),
        Column("parameter_change_se", "SE", "float"),
        Column("by_layer", "Per layer (input first)"),
        Column("ntk_change", "‖Θ_T − Θ_0‖_F/‖Θ_0‖_F", "float"),
        Column("ntk_change_se", "SE", "float"),
    )
    notes = (
        "Relative change from initialization to the end of training; the "
        "empirical NTK Θ is measured on a fixed subsample of fitting points "
        "(config ntk_subsample). SE is ddof 0 over sqrt(trials).",
    )
    return ReportTable(
        "lazy", "Lazy training: how far each network moved", columns, tuple(rows),
        notes,
    )  # fmt: skip


#: Builders of the report's tables, in display order. The first must build the
#: main table (key ``"rows"``); a builder may return None to skip its table.
TABLE_BUILDERS: list[Callable[[StudyResults], ReportTable | None]] = [
    _main_table,
    _layer_change_table,
    _agreement_table,
    _lazy_table,
]


def report_tables(results: StudyResults) -> list[ReportTable]:
    """Every table of the report, built by ``TABLE_BUILDERS`` in order."""
    tables = [builder(results) for builder in TABLE_BUILDERS]
    return [t for t in tables if t is not None]


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------


def _fmt(value: Any, kind: str, missing: str) -> str:
    if value is None:
        return missing
    if kind == "float":
        return f"{value:.6g}"
    if kind == "percent":
        return f"{value:+.3g}%"
    return str(value)


def _identity(results: StudyResults) -> list[tuple[str, str]]:
    """(name, value) pairs that identify the study a report came from."""
    pairs = [
        ("preset", results.preset),
        ("variant", results.variant),
        ("trials", _trial_phrase(results).removesuffix(" trials")),
        ("seed", str(results.seed)),
        ("version", f"ntkeq {results.version}"),
    ]
    for name in ("started", "finished", "host", "device"):
        value = getattr(results, name)
        if value:
            pairs.append((name, str(value)))
    return pairs


def _headline(results: StudyResults) -> str:
    return (
        f"Preset {results.preset}, variant {results.variant}, "
        f"{_trial_phrase(results)}, seed {results.seed}, "
        f"ntkeq {results.version}"
    )


def _render_markdown(results: StudyResults, tables: list[ReportTable]) -> str:
    lines = ["# ntkeq study report", "", f"**{_headline(results)}**", ""]
    extra = [f"{k}: {v}" for k, v in _identity(results)[5:]]
    if extra:
        lines += ["; ".join(extra), ""]
    for table in tables:
        lines += [f"## {table.title}", ""]
        lines.append("| " + " | ".join(c.header for c in table.columns) + " |")
        align = ("---:" if c.kind != "text" else "---" for c in table.columns)
        lines.append("| " + " | ".join(align) + " |")
        for row in table.rows:
            cells = (_fmt(row.get(c.key), c.kind, "—") for c in table.columns)
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines += [f"- {note}" for note in table.notes]
        if table.notes:
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _render_csv(results: StudyResults, tables: list[ReportTable]) -> str:
    out = io.StringIO()
    out.write("# ntkeq study report\n")
    for name, value in _identity(results):
        out.write(f"# {name}: {value}\n")
    main = tables[0]
    keys = ["model", "label", "trials", "mean_rmse", "se", "se_sample"]
    keys += ["failed", "diverged"]
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(keys)
    for row in main.rows:
        writer.writerow(["" if row[k] is None else row[k] for k in keys])
    return out.getvalue()


def _render_json(results: StudyResults, tables: list[ReportTable]) -> str:
    main_keys = ("model", "trials", "mean_rmse", "se", "se_sample")
    main = tables[0]
    doc: dict[str, Any] = {
        "preset": results.preset,
        "variant": results.variant,
        "version": results.version,
        "seed": results.seed,
        "rows": [{k: row[k] for k in main_keys} for row in main.rows],
        "n_trials_planned": results.n_trials,
        "n_trials_completed": _trials_done(results),
        "failed": {
            row["model"]: {"failed": row["failed"], "diverged": row["diverged"]}
            for row in main.rows
        },
    }
    for table in tables[1:]:
        doc[table.key] = [
            {c.key: row.get(c.key) for c in table.columns} for row in table.rows
        ]
    for key in ("layer_change", "agreement", "lazy"):
        doc.setdefault(key, [])
    for name in ("started", "finished", "host", "device"):
        doc[name] = getattr(results, name)
    return json.dumps(doc, indent=2) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "—": "--",
}


def _tex(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _render_latex(results: StudyResults, tables: list[ReportTable]) -> str:
    lines = ["% ntkeq study report"]
    lines += [f"% {name}: {value}" for name, value in _identity(results)]
    for table in tables:
        spec = "".join("r" if c.kind != "text" else "l" for c in table.columns)
        lines += [
            r"\begin{table}[ht]",
            r"\centering",
            rf"\begin{{tabular}}{{{spec}}}",
            r"\hline",
            " & ".join(_tex(c.header) for c in table.columns) + r" \\",
            r"\hline",
        ]
        for row in table.rows:
            cells = (_tex(_fmt(row.get(c.key), c.kind, "--")) for c in table.columns)
            lines.append(" & ".join(cells) + r" \\")
        lines += [r"\hline", r"\end{tabular}"]
        caption = f"{table.title}. {_headline(results)}. " + " ".join(table.notes)
        lines += [rf"\caption{{{_tex(caption.strip())}}}", r"\end{table}", ""]
    return "\n".join(lines)


_RENDERERS: dict[str, Callable[[StudyResults, list[ReportTable]], str]] = {
    "markdown": _render_markdown,
    "csv": _render_csv,
    "json": _render_json,
    "latex": _render_latex,
}


def render_report(results: StudyResults, fmt: str = "markdown") -> str:
    """Render the study's report as text.

    Parameters
    ----------
    results : StudyResults
        The study's results (complete or partial).
    fmt : str
        ``"markdown"`` (every table with the paper's labels and footnotes),
        ``"csv"`` (the main table; the study's identity as leading ``#``
        comment lines), ``"json"`` (one object with the keys ``preset``,
        ``variant``, ``version``, ``seed`` and ``rows``, plus
        ``n_trials_planned``, ``n_trials_completed``, ``failed``,
        ``layer_change``, ``agreement``, ``lazy`` and the metadata) or
        ``"latex"`` (one ``table`` environment per table, identity in ``%``
        comments and captions).

    Returns
    -------
    str
        The report, ending in a newline.

    Raises
    ------
    ValueError
        If ``fmt`` is not one of ``FORMATS``.
    """
    if fmt not in _RENDERERS:
        allowed = ", ".join(FORMATS)
        raise ValueError(f"fmt={fmt!r} is not a report format; use one of {allowed}")
    return _RENDERERS[fmt](results, report_tables(results))


# ---------------------------------------------------------------------------
# Figure and files
# ---------------------------------------------------------------------------


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, then rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def write_boxplot(results: StudyResults, paths: Iterable[Path | str]) -> None:
    """Draw the paper's Figure 1: a boxplot of RMSE over trials per model.

    Parameters
    ----------
    results : StudyResults
        The study's results; models without a counted trial are left out.
    paths : iterable of path
        Files to write; the format follows each suffix (``.png``, ``.svg``,
        ``.pdf``).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rmses = _ok_rmses(results)
    models = [m for m in ordered_models(results) if rmses.get(m)]

    fig = Figure(figsize=(max(6.0, 0.75 * len(models) + 2.0), 4.8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if models:
        ax.boxplot([rmses[m] for m in models])
        ax.set_xticks(range(1, len(models) + 1))
        ax.set_xticklabels(models, rotation=45 if len(models) > 8 else 0)
    else:
        ax.text(0.5, 0.5, "no completed trials", ha="center", va="center")
    ax.set_xlabel("model")
    ax.set_ylabel("test RMSE")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(
        f"RMSE over {_trial_phrase(results)}: preset {results.preset}, "
        f"variant {results.variant}\nseed {results.seed}, ntkeq {results.version}",
        fontsize=10,
    )
    fig.tight_layout()

    for path in map(Path, paths):
        metadata = {"Date": None} if path.suffix.lower() == ".svg" else None

        def save(tmp: Path, path: Path = path, metadata: Any = metadata) -> None:
            fig.savefig(tmp, format=path.suffix.lstrip(".").lower(), metadata=metadata)

        _atomic_write(path, save)


def _lazy_plot_rows(results: StudyResults) -> list[dict[str, Any]]:
    return [
        {"network": m, **values}
        for (t, m), values in sorted(results.metrics.items(), key=lambda kv: kv[0])
        if t < results.n_trials and "parameter_change" in values
    ]


def _curve_groups(results: StudyResults) -> tuple[dict[str, list], dict[str, list]]:
    """Networks' and their predictors' loss curves, aligned on shared epochs."""
    kinds = _model_kinds(results)
    ok = {(r.trial, r.model) for r in _latest(results) if r.status == "ok"}
    nets: dict[str, list] = {}
    preds: dict[str, list] = {}
    for (t, m), curve in sorted(results.loss_curves.items(), key=lambda kv: kv[0]):
        if (t, m) not in ok or t >= results.n_trials or len(curve) == 0:
            continue
        target = nets if kinds.get(m) == "network" else preds
        if kinds.get(m) in ("network", "predictor"):
            target.setdefault(m, []).append(curve)
    for group in (nets, preds):
        for m, curves in list(group.items()):
            first = curves[0]
            group[m] = [
                c
                for c in curves
                if c.shape == first.shape and np.array_equal(c[:, 0], first[:, 0])
            ]
    # a predictor is drawn only beside its network
    preds = {m: c for m, c in preds.items() if m.split("@", 1)[-1] in nets}
    return nets, preds


def write_equivalence_figures(results: StudyResults, out_dir: Path) -> list[Path]:
    """Write ``lazy.png`` and ``loss_curves.png`` when the study has their data.

    ``lazy.png``: each network's parameter and NTK change per trial
    (:func:`ntkeq.equivalence.plot_lazy_measures`). ``loss_curves.png``: each
    network's training loss beside its ``@`` predictors' at the same epochs,
    averaged over trials (:func:`ntkeq.equivalence.plot_loss_curves`).
    """
    from ntkeq.equivalence import plot_lazy_measures, plot_loss_curves

    written = []
    rows = _lazy_plot_rows(results)
    if rows:
        path = out_dir / "lazy.png"
        plot_lazy_measures(rows, path)
        written.append(path)
    nets, preds = _curve_groups(results)
    if nets and preds:
        path = out_dir / "loss_curves.png"
        plot_loss_curves(nets, preds, path)
        written.append(path)
    return written


def write_report(results: StudyResults, out_dir: Path | str) -> list[Path]:
    """Write the report files of a study into a folder.

    Parameters
    ----------
    results : StudyResults
        The study's results (complete or partial).
    out_dir : path
        An existing folder; files there with the same names are replaced.

    Returns
    -------
    list of Path
        ``report.md``, ``report.json``, ``boxplot.png`` and ``boxplot.svg``
        inside ``out_dir``, then ``lazy.png`` and ``loss_curves.png`` when
        the study has lazy measures and ``@`` predictors.

    Raises
    ------
    ValueError
        If ``out_dir`` is not an existing folder.
    """
    out = Path(out_dir)
    if not out.is_dir():
        raise ValueError(f"out_dir={str(out)!r} is not an existing folder")
    texts = {
        out / "report.md": render_report(results, "markdown"),
        out / "report.json": render_report(results, "json"),
    }
    for path, text in texts.items():
        _atomic_write(path, partial(_write_text, text=text))
    figures = [out / "boxplot.png", out / "boxplot.svg"]
    write_boxplot(results, figures)
    figures += write_equivalence_figures(results, out)
    logger.info("wrote report files into %s", out)
    return [*texts, *figures]
