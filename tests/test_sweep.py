"""Tests of ``ntkeq sweep`` (ntkeq.study.sweep): folders, seeds, resume, reports."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ntkeq.study.config import ConfigError, NetworkModelConfig, config_from_dict
from ntkeq.study.store import STORE_NAME, ResultsStore, StoreError
from ntkeq.study.sweep import (
    SWEEP_FILE,
    SweepResults,
    WidthRow,
    _fits,
    load_sweep,
    parse_widths,
    predictor_name,
    run_sweep,
    sweep_base_config,
    sweep_report,
    width_dir,
    write_sweep_report,
)

WIDTHS = (16, 64)


def tiny_config(epochs: int = 15) -> dict[str, object]:
    return {
        "trials": 2,
        "seed": 3,
        "device": "cpu",
        "data": {"n_obs": 60, "d_in": 5},
        "models": [
            {"name": "NN1", "width": 8, "epochs": epochs, "batch_size": 8},
            {"name": "NTKB1"},
        ],
    }


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SweepResults]:
    out = tmp_path_factory.mktemp("sweep")
    results = run_sweep(config_from_dict(tiny_config()), WIDTHS, out)
    return out, results


def test_per_width_folders_and_rows(swept: tuple[Path, SweepResults]) -> None:
    out, results = swept
    assert (out / SWEEP_FILE).is_file()
    for w in WIDTHS:
        assert (width_dir(out, w) / STORE_NAME).is_file()
    # kernels are dropped: only networks (and their predictors) are swept
    assert "NTKB1" not in results.base_config.model_names
    rows = {(r.width, r.network): r for r in results.rows}
    assert set(rows) == {(16, "NN1"), (64, "NN1")}
    for r in rows.values():
        assert r.trials == 2
        assert r.rmse_mean is not None and r.rmse_mean > 0
        if results.predictors:
            assert r.predictor == "NTKJ1@NN1"
            assert r.distance_mean is not None and r.distance_mean > 0


def test_same_data_across_widths_different_networks(
    swept: tuple[Path, SweepResults],
) -> None:
    out, _ = swept
    stores = [
        ResultsStore(width_dir(out, w) / STORE_NAME, readonly=True) for w in WIDTHS
    ]
    try:
        for t in range(2):
            y = [s.y_test(t) for s in stores]
            assert y[0] is not None and y[1] is not None
            np.testing.assert_array_equal(y[0], y[1])
        p16, p64 = (s.predictions("NN1")[0] for s in stores)
        assert p16.shape == p64.shape and not np.array_equal(p16, p64)
    finally:
        for s in stores:
            s.close()


def test_rerun_resumes_without_new_work(swept: tuple[Path, SweepResults]) -> None:
    out, results = swept
    events: list[tuple[int, object]] = []
    again = run_sweep(
        config_from_dict(tiny_config()),
        WIDTHS,
        out,
        progress=lambda w, e: events.append((w, e)),
    )
    assert not [e for _, e in events if getattr(e, "last", "")]
    assert {(r.width, r.network, r.rmse_mean) for r in again.rows} == {
        (r.width, r.network, r.rmse_mean) for r in results.rows
    }


def test_different_sweep_refused_and_nothing_written(
    swept: tuple[Path, SweepResults],
) -> None:
    out, _ = swept
    before = (out / SWEEP_FILE).read_text()
    with pytest.raises(StoreError, match=r"differs in: widths"):
        run_sweep(config_from_dict(tiny_config()), (16, 32), out)
    with pytest.raises(StoreError, match=r"models\.NN1\.epochs"):
        run_sweep(config_from_dict(tiny_config(epochs=16)), WIDTHS, out)
    assert not width_dir(out, 32).exists()
    assert (out / SWEEP_FILE).read_text() == before


def test_report_files_and_fits(swept: tuple[Path, SweepResults]) -> None:
    out, results = swept
    paths = write_sweep_report(load_sweep(out), out)
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["widths"] == list(WIDTHS) and doc["theory_slope"] == -0.5
    assert len(doc["rows"]) == 2
    assert (out / "sweep.md") in paths
    if results.predictors:
        assert "NN1 distance" in doc["fits"]
        assert (out / "sweep.png").is_file()


def test_fitted_slope_of_an_exact_power_law() -> None:
    # distance = 0.3 w^-1/2 exactly: the fit must return slope -1/2
    base = config_from_dict(tiny_config())
    rows = tuple(
        WidthRow(w, "NN1", 2, 0.5, 0.01, "NTKJ1@NN1", 0.3 * w**-0.5, 0.01 * w**-0.5)
        for w in (16, 64, 256)
    )
    results = SweepResults(base, (16, 64, 256), Path("."), rows, True)
    fits = _fits(results)
    assert math.isclose(fits["NN1 distance"].slope, -0.5, abs_tol=1e-12)
    # equal relative errors 1/30: var(slope) = (1/30)^2 / sum((log w - mean)^2)
    expected_se = (1 / 30) / math.sqrt(2 * math.log(4) ** 2)
    assert math.isclose(fits["NN1 distance"].slope_se, expected_se, rel_tol=1e-9)
    results = SweepResults(base, (16, 64, 256), Path("."), rows, True, fits)
    text = sweep_report(results, "markdown")
    assert f"| NN1 distance | -0.500 ± {expected_se:.3f} |" in text
    assert "width^-0.5" in text
    doc = json.loads(sweep_report(results, "json"))
    assert math.isclose(doc["fits"]["NN1 distance"]["slope"], -0.5, abs_tol=1e-12)
    with pytest.raises(ValueError, match="fmt"):
        sweep_report(results, "html")


def test_parse_widths() -> None:
    assert parse_widths("256, 1024") == (256, 1024)
    assert parse_widths([4, 2]) == (4, 2)
    for bad, pattern in [
        ("", "comma list"),
        ("16,,64", "comma list"),
        ("1.5", "not an integer"),
        ("0,16", "positive"),
        ([], "empty"),
        ([16, 16], "more than once"),
        ([True], "positive"),
    ]:
        with pytest.raises(ConfigError, match=pattern):
            parse_widths(bad)  # type: ignore[arg-type]


def test_predictor_names_and_base_config() -> None:
    assert predictor_name(NetworkModelConfig("NN1", 1, parameterization="ntkj")) == (
        "NTKJ1@NN1"
    )
    assert predictor_name(NetworkModelConfig("NN3", 3, parameterization="ntka")) == (
        "NTKA3@NN3"
    )
    assert predictor_name(
        NetworkModelConfig("NN1", 1, parameterization="standard")
    ) is (None)
    doc = tiny_config()
    doc["models"] = [{"name": "NTKB1"}]
    with pytest.raises(ConfigError, match="no network"):
        sweep_base_config(config_from_dict(doc))


@pytest.mark.parametrize("widths", ["0", "16,16", "", "a,16", "-4"])
def test_cli_bad_widths_exit_2_one_line(tmp_path: Path, widths: str) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ntkeq",
            "sweep",
            "--preset",
            "quick",
            f"--widths={widths}",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "width" in proc.stderr
    assert not out.exists()
