"""Tests of ntkeq.training: SGD semantics, manual gradients, NTK dynamics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ntkeq.networks import MLP, PARAMETERIZATIONS, empirical_ntk
from ntkeq.training import (
    CostEstimate,
    TrainConfig,
    TrainResult,
    epoch_batches,
    estimate_cost,
    resolve_device,
    split_validation,
    train,
)


def _data(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = np.sin(2.0 * X[:, 0]) + 0.5 * X[:, 1]
    return X, y


def _cfg(**kw: object) -> TrainConfig:
    base: dict[str, object] = {
        "learning_rate": 0.01,
        "epochs": 3,
        "batch_size": 4,
        "device": "cpu",
        "dtype": "float64",
    }
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def _reference_sgd(
    model: MLP, X: np.ndarray, y: np.ndarray, cfg: TrainConfig
) -> np.ndarray:
    """Autograd SGD with the documented semantics; returns the final parameters."""
    n_fit, _ = split_validation(len(X), cfg.validation_split)
    Xt = torch.as_tensor(X[:n_fit], dtype=torch.float64)
    yt = torch.as_tensor(y[:n_fit], dtype=torch.float64)
    model = model.double()
    for epoch in range(cfg.epochs):
        for idx in epoch_batches(n_fit, cfg.batch_size, epoch, cfg.seed):
            i = torch.as_tensor(idx)
            loss = torch.mean((model(Xt[i]) - yt[i]) ** 2)
            grads = torch.autograd.grad(loss, list(model.parameters()))
            with torch.no_grad():
                for p, g in zip(model.parameters(), grads, strict=True):
                    p -= cfg.learning_rate * g
    return torch.cat([p.detach().flatten() for p in model.parameters()]).numpy()


# ---------------------------------------------------------------------------
# manual backward pass == autograd


@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_sgd_matches_autograd(parameterization: str, depth: int) -> None:
    # float64, so the only difference is summation order: rtol 1e-10
    X, y = _data(11, 3, seed=depth)
    cfg = _cfg(learning_rate=0.05, epochs=2, batch_size=4, validation_split=0.2)
    ours = MLP(3, depth, 7, parameterization, seed=5, dtype="float64")
    ref = MLP(3, depth, 7, parameterization, seed=5, dtype="float64")
    assert ours.has_biases == (parameterization != "ntka")
    result = train(ours, X, y, cfg)
    expected = _reference_sgd(ref, X, y, cfg)
    got = torch.cat([p.detach().flatten() for p in ours.parameters()]).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    # 9 fitting points in batches 4, 4, 1 for two epochs
    assert result.steps == 6 and result.epochs_run == 2


@pytest.mark.parametrize(
    ("parameterization", "depth", "threads"),
    [("ntkj", 2, 1), ("ntkj", 2, 2), ("ntka", 3, 3), ("ntkb", 3, 2)],
)
def test_big_layer_sharded_pass_matches_autograd(
    parameterization: str, depth: int, threads: int
) -> None:
    # width 2048 makes every hidden W_l (l >= 1) large enough to run as row
    # shards with the fused backward-and-update pass, on `threads` workers
    from ntkeq.training import _sharded

    X, y = _data(10, 3)
    cfg = _cfg(learning_rate=0.02, epochs=2, batch_size=4, threads=threads)
    ours = MLP(3, depth, 2048, parameterization, seed=1, dtype="float64")
    ref = MLP(3, depth, 2048, parameterization, seed=1, dtype="float64")
    weights = [w.data for w in ours.weights]
    hidden = range(1, depth)
    assert all(_sharded(i, weights, 4, torch.device("cpu")) for i in hidden)
    before = torch.get_num_threads()
    first = train(ours, X, y, cfg, X_eval=X)
    assert torch.get_num_threads() == before
    expected = _reference_sgd(ref, X, y, cfg)
    got = torch.cat([p.detach().flatten() for p in ours.parameters()]).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    # the same shards give bit-identical results whichever worker ran them
    again = MLP(3, depth, 2048, parameterization, seed=1, dtype="float64")
    second = train(again, X, y, cfg, X_eval=X)
    assert first.predictions is not None and second.predictions is not None
    np.testing.assert_array_equal(first.predictions, second.predictions)


# ---------------------------------------------------------------------------
# dynamics


def test_one_full_batch_step_follows_empirical_ntk() -> None:
    # f_{t+1}(x) - f_t(x) = -lr (2/B) Theta(x, X) (f_t(X) - y) + O(lr^2)
    X, y = _data(12, 4, seed=3)
    X_eval, _ = _data(5, 4, seed=4)
    net = MLP(4, 2, 512, "ntkb", seed=2, dtype="float64")
    lr = 1e-4
    with torch.no_grad():
        f0_train = net(torch.as_tensor(X)).numpy()
        f0_eval = net(torch.as_tensor(X_eval)).numpy()
    theta = empirical_ntk(net, X_eval, X)
    predicted = -lr * (2.0 / len(X)) * theta @ (f0_train - y)
    res = train(net, X, y, _cfg(learning_rate=lr, epochs=1, batch_size=None), X_eval)
    assert res.predictions is not None
    moved = res.predictions - f0_eval
    # the O(lr^2) curvature term is ~1e-4 of the first-order move here
    np.testing.assert_allclose(moved, predicted, rtol=2e-3, atol=1e-9)


def test_easy_target_loss_drops_by_orders_of_magnitude() -> None:
    X, _ = _data(40, 3)
    y = X @ np.array([1.0, -0.5, 0.25])
    net = MLP(3, 1, 256, "ntkj", seed=0)
    cfg = TrainConfig(
        learning_rate=0.1, epochs=300, batch_size=8, device="cpu", dtype="float32"
    )
    res = train(net, X, y, cfg)
    assert res.status == "ok"
    assert res.train_loss < 1e-3 * res.loss_curve[0, 1]
    assert res.loss_curve.shape == (300, 2)
    assert res.loss_curve[-1, 0] == 300.0


def test_loss_curve_subsampled_and_callback() -> None:
    X, y = _data(12, 2)
    seen: list[tuple[int, int, float]] = []
    res = train(
        MLP(2, 1, 16, "ntkj", seed=0),
        X,
        y,
        _cfg(epochs=25, loss_curve_points=7),
        callback=lambda e, n, loss: seen.append((e, n, loss)),
    )
    assert [s[0] for s in seen] == list(range(1, 26))
    assert all(s[1] == 25 for s in seen)
    assert res.loss_curve.shape == (7, 2)
    assert res.loss_curve[0, 0] == 1.0 and res.loss_curve[-1, 0] == 25.0
    assert res.loss_curve[-1, 1] == pytest.approx(seen[-1][2], rel=1e-12)


# ---------------------------------------------------------------------------
# validation split, batches, shuffling


def test_split_validation_keras_last_rows() -> None:
    assert split_validation(670, 0.3) == (469, 201)
    assert split_validation(10, 0.0) == (10, 0)
    assert split_validation(10, 0.25) == (8, 2)  # round(2.5) = 2, banker's
    with pytest.raises(ValueError, match="validation_split"):
        split_validation(1, 0.9)


def test_held_out_rows_are_the_last_ones_and_unused() -> None:
    X, y = _data(20, 3)
    n_fit, n_val = split_validation(20, 0.3)
    assert (n_fit, n_val) == (14, 6)
    cfg = _cfg(validation_split=0.3, epochs=4)
    a = train(MLP(3, 1, 32, "ntkb", seed=3), X, y, cfg, X_eval=X)
    # the same fit on the first 14 rows alone, no split
    b = train(MLP(3, 1, 32, "ntkb", seed=3), X[:n_fit], y[:n_fit], _cfg(epochs=4), X)
    assert a.predictions is not None and b.predictions is not None
    np.testing.assert_array_equal(a.predictions, b.predictions)
    assert a.val_loss == pytest.approx(
        np.mean((a.predictions[n_fit:] - y[n_fit:]) ** 2)
    )
    assert a.train_loss == pytest.approx(
        np.mean((a.predictions[:n_fit] - y[:n_fit]) ** 2)
    )
    assert b.val_loss is None


def test_epoch_batches_sizes_and_permutations() -> None:
    batches = epoch_batches(469, 8, epoch=0, seed=0)
    assert len(batches) == 59
    assert [len(b) for b in batches] == [8] * 58 + [5]
    order0 = np.concatenate(batches)
    assert sorted(order0.tolist()) == list(range(469))
    order1 = np.concatenate(epoch_batches(469, 8, epoch=1, seed=0))
    assert not np.array_equal(order0, order1)
    again = np.concatenate(epoch_batches(469, 8, epoch=0, seed=0))
    np.testing.assert_array_equal(order0, again)
    other_seed = np.concatenate(epoch_batches(469, 8, epoch=0, seed=1))
    assert not np.array_equal(order0, other_seed)
    assert [len(b) for b in epoch_batches(5, None, 0, 0)] == [5]


def test_steps_count_last_partial_batch() -> None:
    X, y = _data(10, 2)
    res = train(MLP(2, 1, 8, "ntkj"), X, y, _cfg(epochs=3, batch_size=4))
    assert res.steps == 9  # 4 + 4 + 2 per epoch
    res = train(MLP(2, 1, 8, "ntkj"), X, y, _cfg(epochs=3, batch_size=None))
    assert res.steps == 3


# ---------------------------------------------------------------------------
# divergence, reproducibility, devices


def test_divergence_reported_without_exception() -> None:
    X, y = _data(16, 3)
    y = 1e3 * y
    res = train(
        MLP(3, 2, 64, "standard", seed=0),
        X,
        y,
        TrainConfig(learning_rate=50.0, epochs=50, batch_size=4, device="cpu"),
        X_eval=X,
    )
    assert isinstance(res, TrainResult)
    assert res.status == "diverged"
    assert res.reason is not None and res.reason.startswith("non-finite loss at epoch")
    assert res.predictions is None
    assert math.isnan(res.train_loss)
    assert res.epochs_run < 50


def test_seeded_runs_reproducible() -> None:
    X, y = _data(30, 3)
    cfg = TrainConfig(learning_rate=0.05, epochs=5, batch_size=8, device="cpu", seed=4)
    runs = [train(MLP(3, 2, 64, "ntkj", seed=1), X, y, cfg, X) for _ in range(2)]
    assert runs[0].predictions is not None and runs[1].predictions is not None
    np.testing.assert_array_equal(runs[0].predictions, runs[1].predictions)
    other = train(
        MLP(3, 2, 64, "ntkj", seed=1), X, y, TrainConfig(0.05, 5, 8, device="cpu"), X
    )
    assert other.predictions is not None
    assert not np.array_equal(other.predictions, runs[0].predictions)


def test_torch_inputs_and_column_targets() -> None:
    X, y = _data(12, 2)
    a = train(MLP(2, 1, 8, "ntkj"), X, y, _cfg(), X)
    b = train(
        MLP(2, 1, 8, "ntkj"), torch.as_tensor(X), torch.as_tensor(y[:, None]), _cfg(), X
    )
    assert a.predictions is not None and b.predictions is not None
    np.testing.assert_array_equal(a.predictions, b.predictions)
    assert a.dtype == "float64" and a.device == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu() -> None:  # pragma: no cover - run on GPU machines
    X, y = _data(30, 3)
    cpu = train(MLP(3, 2, 64, "ntkj", seed=1), X, y, _cfg(epochs=4), X)
    gpu = train(MLP(3, 2, 64, "ntkj", seed=1), X, y, _cfg(epochs=4, device="cuda"), X)
    assert gpu.device.startswith("cuda") and gpu.status == "ok"
    assert cpu.predictions is not None and gpu.predictions is not None
    np.testing.assert_allclose(gpu.predictions, cpu.predictions, rtol=1e-9, atol=1e-12)


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda")
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda:0")


def test_estimate_cost() -> None:
    spec = {"d_in": 3, "depth": 2, "width": 32, "parameterization": "ntkj"}
    cfg = TrainConfig(0.002, 10, 8, validation_split=0.3, device="cpu")
    est = estimate_cost(spec, 100, cfg, warmup_steps=10)
    assert isinstance(est, CostEstimate)
    assert est.steps == 10 * 9  # 70 fitting points, batches of 8
    assert est.seconds == pytest.approx(est.steps * est.seconds_per_step)
    assert est.description.startswith("NN2 width 32: 90 steps x")
    net = MLP(3, 1, 16, "ntkb")
    before = [p.detach().clone() for p in net.parameters()]
    estimate_cost(net, 20, cfg, warmup_steps=4)
    for p, q in zip(net.parameters(), before, strict=True):
        assert torch.equal(p, q)  # the model itself is not trained


# ---------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"learning_rate": math.inf}, "learning_rate"),
        ({"learning_rate": math.nan}, "learning_rate"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"validation_split": 1.0}, "validation_split"),
        ({"validation_split": -0.1}, "validation_split"),
        ({"dtype": "float16"}, "dtype"),
        ({"device": "gpu"}, "device"),
        ({"loss_curve_points": 0}, "loss_curve_points"),
        ({"threads": 0}, "threads"),
    ],
)
def test_bad_config(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _cfg(**kwargs)


def test_bad_config_types() -> None:
    with pytest.raises(TypeError, match="epochs"):
        _cfg(epochs=2.5)
    with pytest.raises(TypeError, match="learning_rate"):
        _cfg(learning_rate="0.1")


def test_bad_data() -> None:
    X, y = _data(10, 3)
    net = MLP(3, 1, 8, "ntkj")
    with pytest.raises(ValueError, match="X_train"):
        train(net, X[:, :2], y, _cfg())
    with pytest.raises(ValueError, match="X_train"):
        train(net, X[0], y, _cfg())
    with pytest.raises(ValueError, match="y_train"):
        train(net, X, y[:9], _cfg())
    with pytest.raises(ValueError, match="y_train"):
        train(net, X, np.stack([y, y], axis=1), _cfg())
    bad = X.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="X_train contains non-finite"):
        train(net, bad, y, _cfg())
    with pytest.raises(ValueError, match="y_train contains non-finite"):
        train(net, X, np.where(np.arange(10) == 3, np.inf, y), _cfg())
    with pytest.raises(ValueError, match="batch_size"):
        train(net, X, y, _cfg(batch_size=8, validation_split=0.5))
    with pytest.raises(ValueError, match="X_eval"):
        train(net, X, y, _cfg(), X_eval=X[:, :2])
    with pytest.raises(TypeError, match="config"):
        train(net, X, y, {"learning_rate": 0.1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="model"):
        train(torch.nn.Linear(3, 1), X, y, _cfg())
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            train(net, X, y, _cfg(device="cuda"))


def test_epoch_batches_bad_input() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        epoch_batches(5, 6, 0, 0)
    with pytest.raises(ValueError, match="n_fit"):
        epoch_batches(0, 1, 0, 0)
    with pytest.raises(ValueError, match="epoch"):
        epoch_batches(5, 2, -1, 0)
