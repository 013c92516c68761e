"""Tests for ntkeq.study.report: the paper's table, Section 4.2 and Figure 1.

Statistics are checked against numpy computed independently (ddof 0 and 1),
to a relative tolerance of 1e-12 (both sides are float64 sums of a handful of
terms). The layer-change check uses the published Figure 3 means and the
paper's rounded percentages, so its tolerance is half a unit in the last
digit the paper prints.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from ntkeq.study.report import (
    FORMATS,
    PAPER_ORDER,
    PUBLISHED_FIGURE3,
    TABLE_BUILDERS,
    Column,
    ModelResult,
    ReportTable,
    StudyResults,
    compare_published,
    layer_change,
    layer_change_from_means,
    model_label,
    ordered_models,
    render_report,
    report_table,
    status_counts,
    write_report,
)

RTOL = 1e-12
ROW_KEYS = {"model", "trials", "mean_rmse", "se", "se_sample"}
TOP_KEYS = {"preset", "variant", "version", "seed", "rows"}


def _study(
    values: dict[str, list[float | None]],
    *,
    n_trials: int | None = None,
    models: tuple[str, ...] | None = None,
    statuses: dict[tuple[str, int], str] | None = None,
) -> StudyResults:
    """A StudyResults with the given RMSEs per model (None = not ok)."""
    statuses = statuses or {}
    results = []
    for model, rmses in values.items():
        for trial, rmse in enumerate(rmses):
            status = statuses.get(
                (model, trial), "ok" if rmse is not None else "failed"
            )
            results.append(ModelResult(trial, model, rmse, status, 0.5))
    planned = n_trials if n_trials is not None else max(map(len, values.values()))
    return StudyResults(
        preset="quick",
        variant="as-published",
        version="9.8.7",
        seed=1234,
        n_trials=planned,
        models=models if models is not None else tuple(values),
        config_toml="[study]\n",
        results=tuple(results),
        host="testhost",
    )


@pytest.fixture
def random_study() -> StudyResults:
    rng = np.random.default_rng(42)
    values: dict[str, list[float | None]] = {
        m: list(mu + 0.01 * rng.standard_normal(6))
        for m, (mu, _) in PUBLISHED_FIGURE3.items()
    }
    # Config order differs from the paper's, and one extra model is configured.
    models = ("K1", "NTKB3", *reversed(PAPER_ORDER[:-1]))
    values["NTKB3"] = list(0.07 + 0.01 * rng.standard_normal(6))
    values["NN2"][2] = None  # a failed trial
    return _study(values, models=models, statuses={("NN2", 2): "failed"})


def test_statistics_match_numpy(random_study: StudyResults) -> None:
    by_model: dict[str, list[float | None]] = {
        r.model: [] for r in random_study.results
    }
    for r in random_study.results:
        if r.status == "ok":
            by_model[r.model].append(r.rmse)
    for row in report_table(random_study):
        x = np.array(by_model[row["model"]])
        assert set(row) == ROW_KEYS
        assert row["trials"] == x.size
        assert row["mean_rmse"] == pytest.approx(x.mean(), rel=RTOL)
        assert row["se"] == pytest.approx(x.std(ddof=0) / math.sqrt(x.size), rel=RTOL)
        se1 = x.std(ddof=1) / math.sqrt(x.size)
        assert row["se_sample"] == pytest.approx(se1, rel=RTOL)


def test_hand_computed_values() -> None:
    # RMSEs 1, 2, 4: mean 7/3, squared deviations sum 14/3.
    table = report_table(_study({"GP1": [1.0, 2.0, 4.0]}))
    (row,) = table
    assert row["mean_rmse"] == pytest.approx(7 / 3, rel=RTOL)
    assert row["se"] == pytest.approx(math.sqrt(14 / 9) / math.sqrt(3), rel=RTOL)
    assert row["se_sample"] == pytest.approx(math.sqrt(7 / 3) / math.sqrt(3), rel=RTOL)


def test_single_and_empty_model() -> None:
    table = report_table(
        _study({"NN1": [0.3], "NN2": [None, None]}, models=("NN1", "NN2"))
    )
    assert table[0] == {
        "model": "NN1",
        "trials": 1,
        "mean_rmse": 0.3,
        "se": 0.0,
        "se_sample": None,
    }
    assert table[1] == {
        "model": "NN2",
        "trials": 0,
        "mean_rmse": None,
        "se": None,
        "se_sample": None,
    }


def test_only_ok_results_count() -> None:
    study = _study(
        {"NTKA1": [1.0, 100.0, 3.0, float("nan")]},
        statuses={("NTKA1", 1): "diverged"},
    )
    (row,) = report_table(study)
    assert row["trials"] == 2
    assert row["mean_rmse"] == pytest.approx(2.0, rel=RTOL)
    counts = status_counts(study)["NTKA1"]
    assert counts == {"ok": 2, "failed": 0, "diverged": 1, "invalid": 1}


def test_row_order_paper_then_config(random_study: StudyResults) -> None:
    order = [row["model"] for row in report_table(random_study)]
    assert order == [*PAPER_ORDER, "NTKB3"]
    assert ordered_models(random_study) == order


def test_labels() -> None:
    assert model_label("NN1") == "NN (1 layer)"
    assert model_label("NN2") == "NN (2 layers)"
    assert model_label("GP2") == "GP (2 layers)"
    assert model_label("K1") == "Laplacian (K1)"
    assert model_label("NTKJ1@NN1") == "NTKJ1@NN1"


def test_layer_change_reproduces_paper() -> None:
    means = {m: mean for m, (mean, _) in PUBLISHED_FIGURE3.items()}
    rows = {r["family"]: r["percent_change"] for r in layer_change_from_means(means)}
    # The paper's Section 4.2: NN -7.35%, NTKJ -0.098%, NTKB +0.013%,
    # NTKA +3.43%, each to half a unit in its last printed digit.
    assert rows["NN"] == pytest.approx(-7.35, abs=0.005)
    assert rows["NTKJ"] == pytest.approx(-0.098, abs=0.0005)
    assert rows["NTKB"] == pytest.approx(0.013, abs=0.0005)
    assert rows["NTKA"] == pytest.approx(3.43, abs=0.005)
    assert list(rows) == ["NN", "NTKA", "NTKB", "NTKJ", "GP"]


def test_layer_change_needs_both_depths() -> None:
    study = _study({"NN1": [1.0, 1.0], "NTKB2": [2.0, 2.0], "NTKB3": [3.0, 3.0]})
    rows = layer_change(study)
    assert [(r["family"], r["depth_from"], r["depth_to"]) for r in rows] == [
        ("NTKB", 2, 3)
    ]
    assert rows[0]["percent_change"] == pytest.approx(50.0, rel=RTOL)


def test_compare_published() -> None:
    # Two trials per model at mean + 1 and mean - 1 published SE: the mean is
    # the published one and the ddof-0 SE equals published SE / sqrt(2).
    values: dict[str, list[float | None]] = {
        m: [mu + se, mu - se] for m, (mu, se) in PUBLISHED_FIGURE3.items()
    }
    rows = compare_published(_study(values))
    assert [r["model"] for r in rows] == list(PAPER_ORDER)
    for r in rows:
        mu, se = PUBLISHED_FIGURE3[r["model"]]
        assert r["published_mean"] == mu and r["published_se"] == se
        assert r["difference"] == pytest.approx(0.0, abs=1e-15)
        assert r["combined_se"] == pytest.approx(se * math.sqrt(1.5), rel=1e-9)

    shifted = {"K1": [0.2, 0.2]}
    (row,) = compare_published(_study(shifted))
    mu, se = PUBLISHED_FIGURE3["K1"]
    assert row["z"] == pytest.approx((0.2 - mu) / se, rel=RTOL)


def test_json_exact_keys(random_study: StudyResults) -> None:
    doc = json.loads(render_report(random_study, "json"))
    assert TOP_KEYS <= set(doc)
    assert doc["preset"] == "quick" and doc["variant"] == "as-published"
    assert doc["version"] == "9.8.7" and doc["seed"] == 1234
    assert all(set(row) == ROW_KEYS for row in doc["rows"])
    assert doc["rows"] == report_table(random_study)
    assert doc["failed"]["NN2"] == {"failed": 1, "diverged": 0}
    assert [r["family"] for r in doc["layer_change"]][:1] == ["NN"]


def test_csv_parses(random_study: StudyResults) -> None:
    text = render_report(random_study, "csv")
    comments = [line for line in text.splitlines() if line.startswith("#")]
    joined = "\n".join(comments)
    for needle in ("preset: quick", "variant: as-published", "seed: 1234", "9.8.7"):
        assert needle in joined
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    rows = list(csv.DictReader(io.StringIO(body)))
    table = report_table(random_study)
    assert [r["model"] for r in rows] == [r["model"] for r in table]
    for parsed, row in zip(rows, table, strict=True):
        assert int(parsed["trials"]) == row["trials"]
        assert float(parsed["mean_rmse"]) == row["mean_rmse"]  # repr round-trips
        assert float(parsed["se"]) == row["se"]
    assert next(r for r in rows if r["model"] == "NN2")["failed"] == "1"


def test_markdown_and_latex_identity(random_study: StudyResults) -> None:
    md = render_report(random_study, "markdown")
    header = md.splitlines()[2]
    for needle in ("quick", "as-published", "6 trials", "seed 1234", "9.8.7"):
        assert needle in header
    assert "| NN (1 layer) | NN1 |" in md
    assert "ddof 0" in md and "ddof 1" in md
    assert "-" in md.split("## Change with an added layer")[1]

    tex = render_report(random_study, "latex")
    assert tex.startswith("% ntkeq study report")
    assert "% seed: 1234" in tex and r"\caption{" in tex
    assert tex.count(r"\begin{table}") == tex.count(r"\end{table}") == 2
    assert "as-published, 6 trials, seed 1234, ntkeq 9.8.7" in tex


def test_partial_results_say_k_of_n() -> None:
    study = _study({"NN1": [0.2, 0.21, 0.22], "K1": [0.1, 0.1, 0.1]}, n_trials=10)
    for fmt in ("markdown", "csv", "latex"):
        assert "3 of 10" in render_report(study, fmt)
    doc = json.loads(render_report(study, "json"))
    assert doc["n_trials_planned"] == 10 and doc["n_trials_completed"] == 3
    assert report_table(study)[0]["trials"] == 3


def test_bad_format() -> None:
    with pytest.raises(ValueError, match=r"fmt='html'.*markdown, csv, json, latex"):
        render_report(_study({"NN1": [1.0]}), "html")
    assert FORMATS == ("markdown", "csv", "json", "latex")


def test_extra_table_builder(monkeypatch: pytest.MonkeyPatch) -> None:
    def agreement(results: StudyResults) -> ReportTable:
        rows = ({"pair": "NTKJ1@NN1", "distance": 0.125},)
        cols = (Column("pair", "Pair"), Column("distance", "Distance", "float"))
        return ReportTable("agreement", "Network vs kernel", cols, rows)

    monkeypatch.setattr(
        "ntkeq.study.report.TABLE_BUILDERS", [*TABLE_BUILDERS, agreement]
    )
    study = _study({"NN1": [1.0, 2.0]})
    assert "## Network vs kernel" in render_report(study, "markdown")
    doc = json.loads(render_report(study, "json"))
    assert doc["agreement"] == [{"pair": "NTKJ1@NN1", "distance": 0.125}]
    assert set(doc["rows"][0]) == ROW_KEYS


def test_write_report(tmp_path: Path, random_study: StudyResults) -> None:
    paths = write_report(random_study, tmp_path)
    assert [p.name for p in paths] == [
        "report.md",
        "report.json",
        "boxplot.png",
        "boxplot.svg",
    ]
    assert all(p.stat().st_size > 0 for p in paths)
    assert (tmp_path / "boxplot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = (tmp_path / "boxplot.svg").read_text()
    assert "<svg" in svg
    assert json.loads((tmp_path / "report.json").read_text())["seed"] == 1234
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)


def test_write_report_no_results(tmp_path: Path) -> None:
    study = _study({"NN1": [None]}, n_trials=5)
    paths = write_report(study, tmp_path)
    assert all(p.stat().st_size > 0 for p in paths)


def test_write_report_bad_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"out_dir=.*not an existing folder"):
        write_report(_study({"NN1": [1.0]}), tmp_path / "missing")
