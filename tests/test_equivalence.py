"""Tests of ntkeq.equivalence: lazy-training measures, agreement, power laws,
the finite-time kernel predictor, and a wide-network equivalence check."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ntkeq.equivalence import (
    FiniteTimePrediction,
    LazyTracker,
    PowerLawFit,
    _generic_empirical_ntk,
    agreement_table,
    finite_time_ntk_prediction,
    fit_power_law,
    lazy_training_measures,
    ntk_subsample,
    plot_lazy_measures,
    plot_loss_curves,
    plot_width_sweep,
    prediction_distance,
    relative_ntk_change,
    relative_parameter_change,
    relative_parameter_change_by_layer,
    snapshot_parameters,
)
from ntkeq.networks import MLP, empirical_ntk
from ntkeq.training import TrainConfig, train

# Float64 sums of a few hundred terms: agreement to this relative tolerance.
RTOL = 1e-12


def _unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    X = rng.normal(size=(n, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


# --------------------------------------------------------------------------
# parameter change


def test_snapshot_is_detached_and_independent() -> None:
    net = MLP(3, depth=1, width=8, parameterization="ntkb", seed=0)
    snap = snapshot_parameters(net)
    assert all(not t.requires_grad for t in snap)
    before = snap[0].clone()
    with torch.no_grad():
        net.weights[0].add_(1.0)
    assert torch.equal(snap[0], before)


def test_parameter_change_is_zero_before_training() -> None:
    net = MLP(4, depth=2, width=16, parameterization="ntkj", seed=1)
    snap = snapshot_parameters(net)
    assert relative_parameter_change(snap, net) == 0.0
    assert relative_parameter_change_by_layer(snap, net) == [0.0, 0.0, 0.0]


def test_parameter_change_matches_hand_computation() -> None:
    net = MLP(3, depth=1, width=5, parameterization="ntkb", seed=2, dtype="float64")
    snap = snapshot_parameters(net)
    with torch.no_grad():
        net.weights[1][0, 2] += 0.5
        net.biases[0][1] -= 0.25
        net.biases[1][0] += 2.0

    theta0 = [t.numpy() for t in snap]
    total = math.sqrt(sum(float(np.sum(t**2)) for t in theta0))
    expected = math.sqrt(0.5**2 + 0.25**2 + 2.0**2) / total
    assert relative_parameter_change(snap, net) == pytest.approx(expected, rel=RTOL)

    # MLP layer l = (W_l, b_l); layer 0 moved 0.25, layer 1 moved (0.5, 2).
    layer0 = math.sqrt(np.sum(theta0[0] ** 2) + np.sum(theta0[2] ** 2))
    layer1 = math.sqrt(np.sum(theta0[1] ** 2) + np.sum(theta0[3] ** 2))
    by_layer = relative_parameter_change_by_layer(snap, net)
    assert by_layer == pytest.approx(
        [0.25 / layer0, math.sqrt(0.5**2 + 2.0**2) / layer1], rel=RTOL
    )


def test_parameter_change_on_plain_modules_and_tensor_lists() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(2, 3, dtype=torch.float64),
        torch.nn.ReLU(),
        torch.nn.Linear(3, 1, dtype=torch.float64),
    )
    snap = snapshot_parameters(net)
    with torch.no_grad():
        net[2].bias.add_(1.0)
    norm_last = math.sqrt(sum(float(torch.sum(p**2)) for p in snap[2:]))
    assert relative_parameter_change_by_layer(snap, net) == pytest.approx(
        [0.0, 1.0 / norm_last], rel=RTOL
    )
    theta0 = [torch.tensor([3.0, 0.0]), torch.tensor([4.0])]
    moved = [torch.tensor([3.0, 1.0]), torch.tensor([4.0])]
    assert relative_parameter_change(theta0, moved) == pytest.approx(0.2, rel=RTOL)
    assert relative_parameter_change_by_layer(theta0, moved) == pytest.approx(
        [1.0 / 3.0, 0.0], rel=RTOL
    )


def test_parameter_change_bad_input() -> None:
    net = MLP(3, depth=1, width=4, seed=0)
    other = MLP(3, depth=2, width=4, seed=0)
    with pytest.raises(ValueError, match="initial has"):
        relative_parameter_change(snapshot_parameters(other), net)
    wrong = snapshot_parameters(MLP(3, depth=1, width=5, seed=0))
    with pytest.raises(ValueError, match="shape"):
        relative_parameter_change(wrong, net)
    with pytest.raises(ValueError, match="all zero"):
        relative_parameter_change([torch.zeros(2)], [torch.ones(2)])
    with pytest.raises(TypeError, match="model must be"):
        relative_parameter_change([torch.ones(2)], "net")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        snapshot_parameters([torch.ones(2)])  # type: ignore[arg-type]
    with pytest.warns(UserWarning, match="all-zero"):
        by_layer = relative_parameter_change_by_layer(
            [torch.ones(2), torch.zeros(1)], [torch.ones(2), torch.ones(1)]
        )
    assert by_layer[0] == 0.0 and math.isnan(by_layer[1])


# --------------------------------------------------------------------------
# NTK change


def test_ntk_subsample() -> None:
    X = np.zeros((50, 2))
    a = ntk_subsample(X, 10, seed=3)
    assert a.dtype == np.int64 and a.shape == (10,)
    assert np.array_equal(a, ntk_subsample(X, 10, seed=3))
    assert not np.array_equal(a, ntk_subsample(X, 10, seed=4))
    assert np.all(np.diff(a) > 0) and a.min() >= 0 and a.max() < 50
    assert np.array_equal(ntk_subsample(X, 80, seed=0), np.arange(50))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="size"):
            ntk_subsample(X, bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one row"):
        ntk_subsample(np.zeros((0, 2)), 3)


def test_relative_ntk_change_identities() -> None:
    rng = np.random.default_rng(0)
    A = rng.normal(size=(6, 4))
    K = A @ A.T
    assert relative_ntk_change(K, K) == 0.0
    for c in (0.5, 1.0, 3.0):
        assert relative_ntk_change(K, c * K) == pytest.approx(abs(c - 1.0), rel=RTOL)
    K2 = K + rng.normal(size=K.shape)
    assert relative_ntk_change(7.0 * K, 7.0 * K2) == pytest.approx(
        relative_ntk_change(K, K2), rel=RTOL
    )
    assert relative_ntk_change(K, K2) == pytest.approx(
        np.sqrt(np.sum((K2 - K) ** 2) / np.sum(K**2)), rel=RTOL
    )
    with pytest.raises(ValueError, match="one shape"):
        relative_ntk_change(K, K[:3])
    with pytest.raises(ValueError, match="zero matrix"):
        relative_ntk_change(np.zeros((2, 2)), K[:2, :2])


def test_generic_ntk_of_linear_model_is_closed_form() -> None:
    # f(x) = w.x + b has gradient (x, 1), so Theta(x, x') = <x, x'> + 1.
    lin = torch.nn.Sequential(
        torch.nn.Linear(3, 1, dtype=torch.float64), torch.nn.Flatten(0)
    )
    X = np.random.default_rng(1).normal(size=(5, 3))
    K = _generic_empirical_ntk(lin, X)
    np.testing.assert_allclose(K, X @ X.T + 1.0, rtol=RTOL, atol=1e-14)


def test_generic_ntk_matches_networks_empirical_ntk() -> None:
    net = MLP(3, depth=2, width=12, parameterization="ntkb", seed=4, dtype="float64")
    X = _unit_rows(np.random.default_rng(2), 6, 3)
    np.testing.assert_allclose(
        _generic_empirical_ntk(net, X), empirical_ntk(net, X), rtol=1e-10, atol=1e-12
    )


def test_lazy_tracker_on_trained_mlp() -> None:
    rng = np.random.default_rng(5)
    X = _unit_rows(rng, 24, 4)
    y = X[:, 0] - X[:, 1] ** 2
    net = MLP(4, depth=2, width=64, parameterization="ntkj", seed=5, dtype="float64")
    X_sub = X[ntk_subsample(X, 8, seed=0)]
    before = empirical_ntk(net, X_sub)
    tracker = LazyTracker(net, X_sub)
    assert tracker.measure(net)["ntk_change"] == 0.0

    cfg = TrainConfig(learning_rate=0.1, epochs=5, batch_size=8, dtype="float64")
    train(net, X, y, cfg)
    m = tracker.measure(net)

    # Each entry equals the independent computation of the same quantity.
    assert set(m) == {"parameter_change", "parameter_change_by_layer", "ntk_change"}
    assert m["parameter_change"] == pytest.approx(
        relative_parameter_change(tracker.initial_parameters, net), rel=RTOL
    )
    assert len(m["parameter_change_by_layer"]) == 3
    assert 0.0 < m["parameter_change"] < 1.0
    after = empirical_ntk(net, X_sub)
    expected = np.linalg.norm(after - before) / np.linalg.norm(before)
    assert m["ntk_change"] == pytest.approx(expected, rel=1e-10)
    assert m["ntk_change"] > 0.0

    # Recomputing Theta_0 from the snapshot gives the same answer.
    again = lazy_training_measures(tracker.initial_parameters, net, X_sub)
    assert again["ntk_change"] == pytest.approx(m["ntk_change"], rel=1e-10)
    generic = lazy_training_measures(
        tracker.initial_parameters, net, X_sub, ntk_fn=_generic_empirical_ntk
    )
    assert generic["ntk_change"] == pytest.approx(m["ntk_change"], rel=1e-8)


# --------------------------------------------------------------------------
# agreement


def test_prediction_distance() -> None:
    assert prediction_distance([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 0.0
    assert prediction_distance([0.0, 0.0], np.array([[3.0], [4.0]])) == pytest.approx(
        math.sqrt(12.5), rel=RTOL
    )
    with pytest.raises(ValueError, match="one shape"):
        prediction_distance([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="pred_a must have shape"):
        prediction_distance(np.ones((2, 2)), np.ones((2, 2)))


def test_agreement_table_against_hand_computation() -> None:
    rng = np.random.default_rng(6)
    trials = [
        {name: rng.normal(size=7) for name in ("NN1", "NN2", "GP1", "NTKB1")}
        for _ in range(4)
    ]
    del trials[2]["GP1"]  # a kernel missing from one trial

    rows = agreement_table(trials)
    assert [(r["network"], r["kernel"]) for r in rows] == [
        ("NN1", "GP1"),
        ("NN1", "NTKB1"),
        ("NN2", "GP1"),
        ("NN2", "NTKB1"),
    ]
    for row in rows:
        d = np.array(
            [
                np.sqrt(np.mean((t[row["network"]] - t[row["kernel"]]) ** 2))
                for t in trials
                if row["kernel"] in t
            ]
        )
        k = d.size
        assert row["trials"] == k == (3 if row["kernel"] == "GP1" else 4)
        assert row["mean_distance"] == pytest.approx(d.mean(), rel=RTOL)
        pop = math.sqrt(np.sum((d - d.mean()) ** 2) / k)
        sample = math.sqrt(np.sum((d - d.mean()) ** 2) / (k - 1))
        assert row["se"] == pytest.approx(pop / math.sqrt(k), rel=RTOL)
        assert row["se_sample"] == pytest.approx(sample / math.sqrt(k), rel=RTOL)

    chosen = agreement_table(trials, networks=["NTKB1"], kernels=["GP1"])
    assert [(r["network"], r["kernel"]) for r in chosen] == [("NTKB1", "GP1")]


def test_agreement_table_edge_cases() -> None:
    one = agreement_table([{"NN1": [0.0], "K1": [2.0]}])
    assert one[0]["se"] == 0.0 and math.isnan(one[0]["se_sample"])
    with pytest.warns(UserWarning, match="non-finite"):
        rows = agreement_table(
            [{"NN1": [np.nan], "K1": [0.0]}, {"NN1": [1.0], "K1": [0.0]}]
        )
    assert rows[0]["trials"] == 1 and rows[0]["mean_distance"] == 1.0
    with pytest.raises(TypeError, match="one mapping per trial"):
        agreement_table({"NN1": [0.0]})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"predictions\[0\]"):
        agreement_table([[0.0]])  # type: ignore[list-item]


# --------------------------------------------------------------------------
# power laws


def test_power_law_recovers_noiseless_slope() -> None:
    widths = np.array([64, 256, 1024, 4096])
    values = 3.0 * widths**-0.5
    fit = fit_power_law(widths, values)
    assert isinstance(fit, PowerLawFit)
    assert fit.slope == pytest.approx(-0.5, abs=1e-12)
    assert fit.intercept == pytest.approx(math.log(3.0), abs=1e-12)
    assert fit.slope_se == pytest.approx(0.0, abs=1e-12)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(fit.predict(widths), values, rtol=1e-12)
    weighted = fit_power_law(widths, values, 0.1 * values)
    assert weighted.slope == pytest.approx(-0.5, abs=1e-12)
    # Noiseless points with stated errors: the SE comes from the errors alone,
    # sqrt((A^T W A)^-1)_11 with W = 1 / 0.1^2.
    logw = np.log(widths)
    expected_se = 0.1 / math.sqrt(np.sum((logw - logw.mean()) ** 2))
    assert weighted.slope_se == pytest.approx(expected_se, rel=1e-10)
    assert math.isnan(fit_power_law([10, 20], [1.0, 0.5]).slope_se)


def test_power_law_standard_error_is_calibrated() -> None:
    # Over 400 seeded replicates of noisy data, the reported SE must match the
    # spread of the fitted slopes, and slope +- 2 SE must cover the truth about
    # 95% of the time (binomial SD ~1.1%, so the bounds below are ~4 SD wide).
    rng = np.random.default_rng(7)
    widths = np.geomspace(100, 10_000, 6)
    truth = 2.0 * widths**-0.5
    slopes, ses, covered_w = [], [], 0
    for _ in range(400):
        noise = 0.05 * rng.standard_normal(widths.size)
        values = truth * np.exp(noise)
        fit = fit_power_law(widths, values)
        slopes.append(fit.slope)
        ses.append(fit.slope_se)
        wfit = fit_power_law(widths, values, 0.05 * values)
        covered_w += abs(wfit.slope + 0.5) < 2 * wfit.slope_se
    spread = float(np.std(slopes, ddof=1))
    logw = np.log(widths)
    theory = 0.05 / math.sqrt(np.sum((logw - logw.mean()) ** 2))
    assert float(np.mean(slopes)) == pytest.approx(-0.5, abs=3 * theory / 20)
    assert spread == pytest.approx(theory, rel=0.15)
    assert float(np.sqrt(np.mean(np.square(ses)))) == pytest.approx(theory, rel=0.15)
    assert 0.91 <= covered_w / 400 <= 0.995


def test_power_law_bad_input() -> None:
    with pytest.raises(ValueError, match="values must be finite and positive"):
        fit_power_law([1, 2], [1.0, 0.0])
    with pytest.raises(ValueError, match="widths must be finite and positive"):
        fit_power_law([0, 2], [1.0, 1.0])
    with pytest.raises(ValueError, match="two distinct"):
        fit_power_law([5, 5], [1.0, 2.0])
    with pytest.raises(ValueError, match="one length"):
        fit_power_law([1, 2, 3], [1.0, 2.0])
    with pytest.raises(ValueError, match="values_se"):
        fit_power_law([1, 2], [1.0, 2.0], [0.1, -0.1])


# --------------------------------------------------------------------------
# finite-time kernel predictor


def _rbf_problem(n: int = 12, m: int = 5) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(8)
    Z = rng.normal(size=(n + m, 3))
    sq = np.sum((Z[:, None] - Z[None]) ** 2, axis=-1)
    G = np.exp(-sq / 4.0) + 0.5
    return G[:n, :n], G[n:, :n], rng.normal(size=n), rng.normal(size=n + m)


def test_finite_time_at_infinite_time_is_ridgeless_regression() -> None:
    K, K_star, y, f0 = _rbf_problem()
    forever = SimpleNamespace(learning_rate=0.01, epochs=math.inf, batch_size=4)
    out = finite_time_ntk_prediction(K, K_star, y, forever)
    assert isinstance(out, FiniteTimePrediction)
    np.testing.assert_allclose(
        out.predictions, K_star @ np.linalg.solve(K, y), rtol=1e-7, atol=1e-9
    )
    np.testing.assert_allclose(out.train_predictions, y, atol=1e-8)
    with_f0 = finite_time_ntk_prediction(
        K, K_star, y, forever, f0_train=f0[:12], f0_test=f0[12:]
    )
    np.testing.assert_allclose(
        with_f0.predictions,
        f0[12:] + K_star @ np.linalg.solve(K, y - f0[:12]),
        rtol=1e-7,
        atol=1e-9,
    )


def test_finite_time_matches_direct_gradient_descent() -> None:
    # Independent computation: iterate the linearized SGD mean step
    # f <- f - (2 lr / n) Theta (f - y) for epochs * ceil(n / B) steps.
    K, K_star, y, f0 = _rbf_problem()
    n = y.size
    cfg = TrainConfig(learning_rate=0.05, epochs=30, batch_size=5, dtype="float64")
    steps = cfg.epochs * math.ceil(n / 5)
    f_tr, f_te = f0[:n].copy(), f0[n:].copy()
    losses = {0: float(np.mean((f_tr - y) ** 2))}
    for s in range(1, steps + 1):
        r = f_tr - y
        f_tr = f_tr - 2 * cfg.learning_rate / n * (K @ r)
        f_te = f_te - 2 * cfg.learning_rate / n * (K_star @ r)
        if s % math.ceil(n / 5) == 0:
            losses[s // math.ceil(n / 5)] = float(np.mean((f_tr - y) ** 2))
    out = finite_time_ntk_prediction(
        K, K_star, y, cfg, f0_train=f0[:n], f0_test=f0[n:], loss_epochs=[0, 10, 30]
    )
    np.testing.assert_allclose(out.predictions, f_te, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out.train_predictions, f_tr, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        out.loss_curve, [[0, losses[0]], [10, losses[10]], [30, losses[30]]], rtol=1e-10
    )
    assert out.steps == steps and out.eta == pytest.approx(2 * 0.05 / n, rel=RTOL)

    # Gradient flow agrees to first order in the small step (eta lam_max ~ 0.07).
    flow = finite_time_ntk_prediction(
        K, K_star, y, cfg, f0_train=f0[:n], f0_test=f0[n:], dynamics="flow"
    )
    assert prediction_distance(flow.predictions, f_te) < 0.05 * prediction_distance(
        f_te, f0[n:]
    )


def test_finite_time_n_fit_and_bad_input() -> None:
    K, K_star, y, _ = _rbf_problem()
    cfg = SimpleNamespace(learning_rate=0.05, epochs=7, batch_size=None)
    tail = finite_time_ntk_prediction(K, K_star, y, cfg, n_fit=8)
    head = finite_time_ntk_prediction(K[:8, :8], K_star[:, :8], y[:8], cfg)
    np.testing.assert_allclose(tail.predictions, head.predictions, rtol=RTOL)
    with pytest.raises(ValueError, match="both f0_train and f0_test"):
        finite_time_ntk_prediction(K, K_star, y, cfg, f0_train=y)
    with pytest.raises(ValueError, match="dynamics"):
        finite_time_ntk_prediction(K, K_star, y, cfg, dynamics="euler")
    with pytest.raises(ValueError, match="loss_epochs"):
        finite_time_ntk_prediction(K, K_star, y, cfg, loss_epochs=[1.5])
    with pytest.raises(ValueError, match="epochs"):
        bad = SimpleNamespace(learning_rate=0.05, epochs=-1, batch_size=None)
        finite_time_ntk_prediction(K, K_star, y, bad)


# --------------------------------------------------------------------------
# figures


def test_plots_write_files(tmp_path: Path) -> None:
    rows = [
        {
            "network": net,
            "parameter_change": 0.01 * (i + 1),
            "ntk_change": 0.002 * (i + 1),
        }
        for net in ("NN1", "NN2")
        for i in range(3)
    ]
    curve = np.column_stack([np.arange(1.0, 11.0), np.geomspace(1.0, 0.01, 10)])
    widths = np.array([256, 1024, 4096])
    means = 0.5 * widths**-0.5
    fit = fit_power_law(widths, means)
    paths = [
        plot_lazy_measures(rows, tmp_path / "lazy.png"),
        plot_loss_curves(
            {"NN1": [curve, curve * [1.0, 1.1]]},
            {"NTKJ1": [curve * [1.0, 0.9], curve]},
            tmp_path / "sub" / "loss.png",
        ),
        plot_width_sweep(
            widths,
            {"NN1": (means, 0.1 * means)},
            {"NN1": fit},
            tmp_path / "width.png",
        ),
    ]
    for path in paths:
        assert path.stat().st_size > 1000
    with pytest.raises(ValueError, match="share their epochs"):
        plot_loss_curves({"NN1": [curve, curve[:5]]}, {}, tmp_path / "x.png")


# --------------------------------------------------------------------------
# the equivalence itself, on a wide network


def _relu_moments(
    k12: np.ndarray, k11: np.ndarray, k22: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Arc-cosine moments E[relu relu] and E[relu' relu'] (Cho and Saul 2009)."""
    s = np.sqrt(k11 * k22)
    cos = np.clip(k12 / s, -1.0, 1.0)
    delta = np.arccos(cos)
    e = s / (2 * np.pi) * (np.sqrt(1.0 - cos**2) + (np.pi - delta) * cos)
    return e, (np.pi - delta) / (2 * np.pi)


def _ntkj1(X1: np.ndarray, X2: np.ndarray) -> np.ndarray:
    """NTKJ of one hidden layer, beta = 1 (docs/theory.md), written out here."""
    d = X1.shape[1]
    s12 = X1 @ X2.T / d + 1.0
    s11 = np.sum(X1**2, axis=1)[:, None] / d + 1.0
    s22 = np.sum(X2**2, axis=1)[None, :] / d + 1.0
    e, e_dot = _relu_moments(s12, s11, s22)
    return s12 * e_dot + e + 1.0


def test_wide_network_trains_lazily_and_follows_its_kernel() -> None:
    # NTKJ networks, one hidden layer, float64, full-batch GD with a small step
    # (2 lr lam_max / n ~ 0.3): the regime of the NTK theorem.
    rng = np.random.default_rng(0)
    X = _unit_rows(rng, 30, 5)
    y = np.sin(2 * X[:, 0]) + X[:, 1]
    X_train, y_train, X_test = X[:20], y[:20], X[20:]
    cfg = TrainConfig(
        learning_rate=0.1, epochs=400, batch_size=None, dtype="float64", device="cpu"
    )
    K, K_star = _ntkj1(X_train, X_train), _ntkj1(X_test, X_train)

    change, to_ntk, to_zero, to_no_f0 = {}, {}, {}, {}
    no_f0 = finite_time_ntk_prediction(K, K_star, y_train, cfg)
    for width in (1024, 4096):
        net = MLP(
            5, depth=1, width=width, parameterization="ntkj", seed=3, dtype="float64"
        )
        with torch.no_grad():
            f0_train = net(torch.as_tensor(X_train)).numpy()
            f0_test = net(torch.as_tensor(X_test)).numpy()
        tracker = LazyTracker(net, X_train[:10])
        result = train(net, X_train, y_train, cfg, X_eval=X_test)
        change[width] = tracker.measure(net)
        assert result.status == "ok" and result.predictions is not None
        ntk = finite_time_ntk_prediction(
            K, K_star, y_train, cfg, f0_train=f0_train, f0_test=f0_test
        )
        to_ntk[width] = prediction_distance(result.predictions, ntk.predictions)
        to_zero[width] = prediction_distance(result.predictions, 0 * f0_test)
        to_no_f0[width] = prediction_distance(result.predictions, no_f0.predictions)

    # Lazy training: at width 4096 the parameters move ~2%, the NTK ~0.4%, and
    # both shrink with width (theory: width^-1/2, i.e. a factor 2 per 4x).
    assert change[4096]["parameter_change"] < 0.05
    assert change[4096]["ntk_change"] < 0.02
    ratio = change[4096]["parameter_change"] / change[1024]["parameter_change"]
    assert 0.35 < ratio < 0.75

    # Agreement: the trained network is within 10% (of its distance from the
    # zero function) of the NTK's prediction after the same 400 steps from the
    # same f0, and closer to it than to the kernel predictor without f0. The
    # distance shrinks with width (theory: a factor about 2 per 4x; at most
    # 0.75 is asked for).
    assert to_ntk[4096] < 0.1 * to_zero[4096]
    assert to_ntk[4096] < 0.5 * to_no_f0[4096]
    assert to_ntk[4096] < 0.75 * to_ntk[1024], to_ntk


def test_finite_time_prediction_passes_eigh_through() -> None:
    from ntkeq.regression import symmetric_eigh

    A = np.random.default_rng(4).normal(size=(12, 14))
    K = A @ A.T / 12
    y = np.random.default_rng(5).normal(size=9)
    schedule = SimpleNamespace(learning_rate=0.2, epochs=30, batch_size=3)
    args = (K[:9, :9], K[9:, :9], y, schedule)
    plain = finite_time_ntk_prediction(*args, n_fit=6, loss_epochs=[0, 10])
    given = finite_time_ntk_prediction(
        *args, n_fit=6, loss_epochs=[0, 10], eigh=symmetric_eigh(K[:6, :6])
    )
    # the same decomposition either way (rtol 1e-12)
    np.testing.assert_allclose(given.predictions, plain.predictions, rtol=1e-12)
    np.testing.assert_allclose(given.loss_curve, plain.loss_curve, rtol=1e-12)
    with pytest.raises(ValueError, match="eigenvalues"):
        finite_time_ntk_prediction(*args, eigh=symmetric_eigh(K[:6, :6]))
