"""Equivalence measurements inside the study: @ predictors, agreement, lazy."""

from __future__ import annotations

import json
import math
import sqlite3
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from ntkeq import kernels
from ntkeq.equivalence import LazyTracker, finite_time_ntk_prediction, ntk_subsample
from ntkeq.regression import kernel_gd_predict, solve_dual
from ntkeq.study import trial as trial_module
from ntkeq.study.config import (
    ConfigError,
    KernelModelConfig,
    NetworkModelConfig,
    PredictorModelConfig,
    StudyConfig,
    apply_overrides,
    config_from_dict,
    load_preset,
    select_models,
)
from ntkeq.study.report import agreement_rows, lazy_rows, render_report, write_report
from ntkeq.study.runner import plan_units, run_study
from ntkeq.study.store import STORE_NAME, ResultsStore, StoreError, open_results
from ntkeq.study.trial import (
    StabilityWarning,
    _make_split,
    build_network,
    matched_kernel,
    model_seed,
    run_trial,
    trial_seed,
)
from ntkeq.training import split_validation, train

# float64 end to end: the same arithmetic in the study and here
RTOL = 1e-10


def _doc(**net: Any) -> dict[str, Any]:
    network = {
        "name": "NN1",
        "width": 32,
        "parameterization": "ntkj",
        "learning_rate": 0.05,
        "epochs": 6,
        "batch_size": 8,
        "validation_split": 0.25,
        **net,
    }
    return {
        "trials": 2,
        "seed": 3,
        "device": "cpu",
        "dtype": "float64",
        "ntk_subsample": 10,
        "data": {"n_obs": 48, "d_in": 3, "test_fraction": 0.25},
        "models": [
            network,
            {"name": "NTKJ1"},
            {"name": "NTKJ1@NN1"},
            {"name": "NTKB1@NN1", "f0": False},
            {"name": "eNTK@NN1"},
        ],
    }


def _fixture(cfg: StudyConfig, index: int) -> SimpleNamespace:
    """Data, untrained network and its initial function, built independently."""
    seed = trial_seed(cfg.seed, index)
    split = _make_split(cfg, seed)
    X_train = np.asarray(split.X_train)
    X_all = np.concatenate([X_train, np.asarray(split.X_test)])
    model = cfg.model("NN1")
    assert isinstance(model, NetworkModelConfig)
    net, tc = build_network(cfg, model, model_seed(cfg.seed, index, "NN1"), 3)
    with torch.no_grad():
        f0 = net(torch.as_tensor(X_all, dtype=torch.float64)).numpy().reshape(-1)
    n_fit = split_validation(X_train.shape[0], model.validation_split)[0]
    return SimpleNamespace(
        seed=seed, split=split, X_all=X_all, net=net, tc=tc, f0=f0, n_fit=n_fit,
        n=X_train.shape[0], model=model,
    )  # fmt: skip


@pytest.fixture(scope="module")
def cfg() -> StudyConfig:
    return config_from_dict(_doc())


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory, cfg: StudyConfig) -> Path:
    out = tmp_path_factory.mktemp("eq") / "study"
    run_study(cfg, out)
    return out


def test_config_parses_predictors(cfg: StudyConfig) -> None:
    pred = cfg.model("NTKB1@NN1")
    assert isinstance(pred, PredictorModelConfig)
    assert (pred.kernel, pred.network, pred.f0) == ("NTKB1", "NN1", False)
    assert cfg.model("eNTK@NN1").kind == "predictor"
    assert [p.name for p in cfg.predictors_of("NN1")] == [
        "NTKJ1@NN1",
        "NTKB1@NN1",
        "eNTK@NN1",
    ]
    assert select_models(cfg, "networks,predictors").model_names == (
        "NN1",
        "NTKJ1@NN1",
        "NTKB1@NN1",
        "eNTK@NN1",
    )
    units = plan_units(cfg, {(0, "NN1"), (0, "NTKJ1")})
    assert [(u.trial, u.models) for u in units[:1]] == [
        (0, ("NTKJ1@NN1", "NTKB1@NN1", "eNTK@NN1"))
    ]


def test_predictors_use_the_exact_kernel_unless_told() -> None:
    # an as-published study: data and kernel rows follow the published
    # formulas, a network's predictor (and stability bound) its exact kernel
    doc = _doc()
    doc["variant"] = "as-published"
    doc["models"].append({**doc["models"][0], "name": "NNJ1", "depth": 1})
    doc["models"].append({"name": "NTKJ1@NNJ1", "variant": "as-published"})
    cfg = config_from_dict(doc)
    pred, told = cfg.model("NTKJ1@NN1"), cfg.model("NTKJ1@NNJ1")
    kern = cfg.model("NTKJ1")
    assert isinstance(pred, PredictorModelConfig)
    assert isinstance(told, PredictorModelConfig)
    assert isinstance(kern, KernelModelConfig)
    assert cfg.model_variant(pred) == "exact"
    assert cfg.model_variant(told) == "as-published"
    assert cfg.model_variant(kern) == "as-published"
    assert cfg.data_variant == "as-published"
    net = cfg.model("NN1")
    assert isinstance(net, NetworkModelConfig)
    assert matched_kernel(cfg, net) == ("NTKJ1", "exact", {})
    bare = config_from_dict({**doc, "models": [doc["models"][0]]})
    assert matched_kernel(bare, net) == ("NTKJ1", "exact", {})


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"models": [{"name": "NTKJ1@NN2"}]}, "names network 'NN2'"),
        ({"models": [{"name": "NN1"}, {"name": "NTKX1@NN1"}]}, "unknown kernel"),
        ({"models": [{"name": "NN1"}, {"name": "eNKT@NN1"}]}, "did you mean 'eNTK'"),
        ({"ntk_subsample": 0}, "ntk_subsample = 0 is out of range"),
        ({"models": [{"name": "NN1", "width": 0}]}, "width = 0 is out of range"),
        ({"models": [{"name": "NN1", "epochs": -1}]}, "epochs = -1 is out of range"),
        ({"models": [{"name": "NN1", "batch_size": "all"}]}, "batch_size"),
        ({"models": [{"name": "NN1"}, {"name": "K1@NN1", "f0": 1}]}, "f0 must be"),
    ],
)
def test_bad_input(change: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        config_from_dict({"trials": 1, "models": [{"name": "NN1"}], **change})
    assert needle in str(info.value)


def test_bad_overrides(cfg: StudyConfig) -> None:
    with pytest.raises(ConfigError, match="--width"):
        apply_overrides(cfg, width=0)
    with pytest.raises(ConfigError, match="select it too"):
        select_models(cfg, "kernels,NTKJ1@NN1")


def test_predictor_rows_equal_independent_kernel_gd(cfg: StudyConfig) -> None:
    result = run_trial(cfg, 1)
    got = {o.model: o for o in result.outcomes}
    assert all(o.status == "ok" for o in got.values()), got
    fx = _fixture(cfg, 1)
    cases = (("NTKJ1@NN1", "NTKJ1", True), ("NTKB1@NN1", "NTKB1", False))
    for name, kernel, with_f0 in cases:
        K = kernels.kernel(kernel, variant="exact")(fx.X_all)
        f0_tr, f0_te = (fx.f0[: fx.n], fx.f0[fx.n :]) if with_f0 else (None, None)
        expected = kernel_gd_predict(
            K[: fx.n, : fx.n],
            K[fx.n :, : fx.n],
            fx.split.y_train,
            learning_rate=0.05,
            epochs=6,
            batch_size=8,
            n_train_fit=fx.n_fit,
            f0_train=f0_tr,
            f0_test=f0_te,
        )
        np.testing.assert_allclose(got[name].predictions, expected.test[-1], rtol=RTOL)
        assert got[name].rmse == pytest.approx(
            math.sqrt(np.mean((expected.test[-1] - fx.split.y_test) ** 2)), rel=RTOL
        )
        # the predictor's loss curve sits at the network's recorded epochs
        curve = got[name].loss_curve
        assert curve is not None and got["NN1"].loss_curve is not None
        np.testing.assert_array_equal(curve[:, 0], got["NN1"].loss_curve[:, 0])


def test_entk_predictor_tracks_a_wide_network_trained_full_batch() -> None:
    doc = _doc(width=4096, batch_size="full", learning_rate=0.05, epochs=30)
    doc["models"] = [doc["models"][0], {"name": "eNTK@NN1"}]
    doc["trials"] = 1
    cfg = config_from_dict(doc)
    got = {o.model: o for o in run_trial(cfg, 0).outcomes}
    fx = _fixture(cfg, 0)
    net_pred = got["NN1"].predictions
    moved = np.linalg.norm(net_pred - fx.f0[fx.n :])
    gap = np.linalg.norm(net_pred - got["eNTK@NN1"].predictions)
    # linearization error at width 4096: a few percent of how far f moved
    assert moved > 0.1 * np.linalg.norm(fx.f0[fx.n :])
    assert gap < 0.05 * moved, (gap, moved)


def test_huge_epochs_give_ridgeless_regression() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 3))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    K = kernels.kernel("NTKJ1", variant="exact")(X)
    y = rng.normal(size=9)
    n_fit = 7
    bound = trial_module.stability_bound(K[:n_fit, :n_fit])
    schedule = SimpleNamespace(learning_rate=bound / 2, epochs=10**9, batch_size=None)
    out = finite_time_ntk_prediction(K[:9, :9], K[9:, :9], y, schedule, n_fit=n_fit)
    alpha, _ = solve_dual(K[:n_fit, :n_fit], y[:n_fit])
    np.testing.assert_allclose(out.predictions, K[9:, :n_fit] @ alpha, rtol=1e-8)


def test_agreement_equals_hand_computation(study: Path) -> None:
    results = open_results(study)
    with ResultsStore(study / STORE_NAME, readonly=True) as store:
        nn = store.predictions("NN1")
        ker = store.predictions("NTKJ1@NN1")
    d = np.array([math.sqrt(np.mean((nn[t] - ker[t]) ** 2)) for t in (0, 1)])
    row = next(
        r
        for r in agreement_rows(results)
        if (r["network"], r["kernel"]) == ("NN1", "NTKJ1@NN1")
    )
    assert row["trials"] == 2
    assert row["mean_distance"] == pytest.approx(d.mean(), rel=1e-12)
    assert row["se"] == pytest.approx(d.std(ddof=0) / math.sqrt(2), rel=1e-12)
    assert row["se_sample"] == pytest.approx(d.std(ddof=1) / math.sqrt(2), rel=1e-12)
    kernels_seen = {r["kernel"] for r in agreement_rows(results)}
    assert kernels_seen == {"NTKJ1", "NTKJ1@NN1", "NTKB1@NN1", "eNTK@NN1"}
    doc = json.loads(render_report(results, "json"))
    assert doc["agreement"][0]["network"] == "NN1"
    assert {"rows", "preset", "variant", "version", "seed", "lazy"} <= set(doc)


def test_lazy_measures_equal_independent_computation(
    study: Path, cfg: StudyConfig
) -> None:
    results = open_results(study)
    stored = results.metrics[(0, "NN1")]
    fx = _fixture(cfg, 0)
    X_fit = np.asarray(fx.split.X_train)[: fx.n_fit]
    sub = ntk_subsample(X_fit, 10, seed=fx.seed)
    tracker = LazyTracker(fx.net, X_fit[sub])
    train(fx.net, fx.split.X_train, fx.split.y_train, fx.tc)
    m = tracker.measure(fx.net)
    assert stored["ntk_subsample"] == 10
    assert stored["parameter_change"] == pytest.approx(m["parameter_change"], rel=RTOL)
    assert stored["ntk_change"] == pytest.approx(m["ntk_change"], rel=RTOL)
    np.testing.assert_allclose(
        stored["parameter_change_by_layer"], m["parameter_change_by_layer"], rtol=RTOL
    )
    (row,) = lazy_rows(results)
    values = [results.metrics[(t, "NN1")]["ntk_change"] for t in (0, 1)]
    assert row["ntk_change"] == pytest.approx(np.mean(values), rel=1e-12)
    assert row["ntk_change_se"] == pytest.approx(
        np.std(values) / math.sqrt(2), rel=1e-12
    )


def test_report_shows_new_tables_and_figures(study: Path, tmp_path: Path) -> None:
    results = open_results(study)
    md = render_report(results, "markdown")
    assert "## Agreement: network vs kernel" in md
    assert "## Lazy training" in md
    for fmt in ("csv", "latex"):
        assert render_report(results, fmt)
    names = [p.name for p in write_report(results, tmp_path)]
    assert names[-2:] == ["lazy.png", "loss_curves.png"]
    rows = [r["model"] for r in json.loads(render_report(results, "json"))["rows"]]
    assert rows == ["NN1", "NTKJ1", "NTKJ1@NN1", "NTKB1@NN1", "eNTK@NN1"]


def _rows(path: Path) -> dict[tuple[int, str], tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return {
            (t, m): (s, r, p)
            for t, m, s, r, p in conn.execute(
                "SELECT trial, model, status, rmse, predictions FROM results"
            )
        }


def test_resume_with_predictors_stores_exactly_the_missing_rows(
    study: Path, cfg: StudyConfig, tmp_path: Path
) -> None:
    full = _rows(study / STORE_NAME)
    assert len(full) == 2 * 5
    out = tmp_path / "partial"
    run_study(cfg, out)
    with sqlite3.connect(out / STORE_NAME) as conn:
        conn.execute("DELETE FROM results WHERE trial = 1 AND model = 'eNTK@NN1'")
        conn.execute("DELETE FROM results WHERE trial = 0 AND model = 'NN1'")
    assert len(_rows(out / STORE_NAME)) == 8
    run_study(cfg, out)
    assert _rows(out / STORE_NAME) == full


def test_old_schema_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / STORE_NAME
    with sqlite3.connect(path) as conn:
        conn.executescript(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "CREATE TABLE trials (trial INTEGER PRIMARY KEY, seed INTEGER,"
            " y_test BLOB);"
            "CREATE TABLE results (trial INTEGER, model TEXT, status TEXT, rmse REAL,"
            " fit_time REAL, reason TEXT, predictions BLOB, loss_curve BLOB,"
            " finished TEXT);"
            "INSERT INTO meta VALUES ('schema_version', '1');"
        )
    for readonly in (False, True):
        with pytest.raises(StoreError) as info:
            ResultsStore(path, readonly=readonly)
        assert "schema version 1" in str(info.value) and "\n" not in str(info.value)


def test_store_is_wal(study: Path) -> None:
    with sqlite3.connect(study / STORE_NAME) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_matched_preset_loads_and_is_inside_the_bound() -> None:
    cfg = load_preset("matched")
    networks = [m for m in cfg.models if isinstance(m, NetworkModelConfig)]
    assert len(networks) == 6
    assert {(m.parameterization, m.depth) for m in networks} == {
        (p, d) for p in ("ntkb", "ntkj", "ntka") for d in (1, 2)
    }
    for m in networks:
        assert m.batch_size is None and m.validation_split == 0.0
        (closed,) = [
            p for p in cfg.predictors_of(m.name) if p.kernel != "eNTK"
        ]  # fmt: skip
        assert closed.kernel.startswith(m.parameterization.upper())
        assert trial_module.matched_kernel(cfg, m) == (closed.kernel, "exact", {})
    small = apply_overrides(cfg, trials=1, sets=["data.n_obs=60"])
    assert small.trials == 1


def test_stability_warning_fires() -> None:
    doc = _doc(batch_size="full", learning_rate=50.0, epochs=1)
    doc["models"] = [doc["models"][0]]
    cfg = config_from_dict(doc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.warns(StabilityWarning, match=r"stability bound .*= \d"):
            (out,) = run_trial(cfg, 0).outcomes
    assert "learning_rate = 50 exceeds" in out.reason
    ok = config_from_dict(_doc(batch_size="full", learning_rate=0.01, epochs=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error", StabilityWarning)
        run_trial(ok, 0, ["NN1"])


def test_gram_cache_reused_across_widths(cfg: StudyConfig) -> None:
    trial_module.clear_gram_cache()
    run_trial(cfg, 0, ["NN1", "NTKJ1@NN1", "NTKJ1"])
    cached = dict(trial_module._GRAM_CACHE)
    wider = apply_overrides(cfg, width=48)
    run_trial(wider, 0, ["NN1", "NTKJ1@NN1", "NTKJ1"])
    assert trial_module._GRAM_CACHE.keys() == cached.keys()
    for key, K in cached.items():
        assert trial_module._GRAM_CACHE[key] is K


def test_matched_preset_round_trips_through_toml() -> None:
    import tomllib

    from ntkeq.study.config import to_toml

    cfg = load_preset("matched")
    assert config_from_dict(tomllib.loads(to_toml(cfg))) == cfg
    assert config_from_dict(tomllib.loads(to_toml(config_from_dict(_doc())))) == (
        config_from_dict(_doc())
    )
