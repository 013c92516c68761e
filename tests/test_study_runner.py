"""Trials, the results store, resume, executors and ``ntkeq run`` end to end."""

import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ntkeq.study.config import (
    ConfigError,
    StudyConfig,
    apply_overrides,
    config_from_dict,
)
from ntkeq.study.executors import LocalExecutor, ProcessExecutor, make_executor
from ntkeq.study.report import report_table
from ntkeq.study.runner import run_study
from ntkeq.study.store import (
    STORE_NAME,
    ResultsStore,
    StoreError,
    StoreLock,
    open_results,
)
from ntkeq.study.trial import model_seed, run_trial, trial_seed

TINY_TOML = """\
trials = 3
seed = 7
[data]
n_obs = 60
d_in = 3
[[models]]
name = "NN1"
width = 32
epochs = 20
[[models]]
name = "NTKB1"
[[models]]
name = "K1"
[[models]]
name = "GP2"
"""


def tiny(**changes: object) -> StudyConfig:
    import tomllib

    doc = tomllib.loads(TINY_TOML)
    doc.update(changes)
    return config_from_dict(doc)


def predictions(out: Path) -> dict[tuple[int, str], np.ndarray]:
    with ResultsStore(out / STORE_NAME, readonly=True) as store:
        cfg_models = open_results(out).models
        return {(t, m): a for m in cfg_models for t, a in store.predictions(m).items()}


def assert_same_predictions(a: Path, b: Path) -> None:
    pa, pb = predictions(a), predictions(b)
    assert pa.keys() == pb.keys()
    for key in pa:
        np.testing.assert_array_equal(pa[key], pb[key], err_msg=str(key))


# -- trials -------------------------------------------------------------------


def test_seeds_depend_on_trial_and_name_only() -> None:
    assert trial_seed(7, 1) == trial_seed(7, 1)
    assert len({trial_seed(7, i) for i in range(50)}) == 50
    assert model_seed(7, 0, "NN1") != model_seed(7, 0, "NN2")
    assert model_seed(7, 0, "NN1") != model_seed(7, 1, "NN1")


def test_trial_is_independent_of_order_and_model_subset() -> None:
    cfg = tiny()
    full = {o.model: o for o in run_trial(cfg, 1).outcomes}
    # adding a model (and a different selection) changes no other model
    bigger = apply_overrides(
        cfg, models="NTKA2,NN1,NTKB1,K1,GP2,NN2", width=32, epochs=20
    )
    again = {o.model: o for o in run_trial(bigger, 1, ["NN1", "K1", "NTKA2"]).outcomes}
    for name in ("NN1", "K1"):
        np.testing.assert_array_equal(full[name].predictions, again[name].predictions)
    ok = [o for o in full.values()]
    assert all(o.status == "ok" and o.rmse is not None for o in ok)
    # RMSE is the root mean squared error of the stored predictions
    result = run_trial(cfg, 1, ["NTKB1"])
    o = result.outcomes[0]
    assert o.predictions is not None
    expected = math.sqrt(float(np.mean((o.predictions - result.y_test) ** 2)))
    assert o.rmse == pytest.approx(expected, rel=1e-12)


def test_kernel_fit_interpolates_training_points() -> None:
    from ntkeq import data, kernels

    cfg = tiny()
    split = data.simulate(n_obs=60, d_in=3, seed=trial_seed(7, 0))
    K = kernels.kernel("NTKB1")(split.X)
    # ridgeless: predictions on the test set equal K_te K_tr^-1 y_tr
    Kx = K[np.ix_(split.test_index, split.train_index)]
    Kt = K[np.ix_(split.train_index, split.train_index)]
    expected = Kx @ np.linalg.solve(Kt, split.y_train)
    got = run_trial(cfg, 0, ["NTKB1"]).outcomes[0].predictions
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)


def test_failure_of_one_model_is_recorded_and_others_run() -> None:
    cfg = apply_overrides(tiny(), sets=["models.K1.params={nonsense=1}"])
    outcomes = {o.model: o for o in run_trial(cfg, 0).outcomes}
    assert outcomes["K1"].status == "failed" and outcomes["K1"].rmse is None
    assert "nonsense" in outcomes["K1"].reason
    assert outcomes["NTKB1"].status == "ok" and outcomes["NN1"].status == "ok"


def test_run_trial_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="index = 3"):
        run_trial(tiny(), 3)
    with pytest.raises(ConfigError, match="unknown model 'NN9'"):
        run_trial(tiny(), 0, ["NN9"])


# -- store and resume ---------------------------------------------------------


def test_run_stores_every_pair_and_resumes_without_duplicates(tmp_path: Path) -> None:
    cfg = tiny()
    part = run_study(apply_overrides(cfg, trials=1), tmp_path / "a")
    assert len(part.results) == 4
    full = run_study(cfg, tmp_path / "a")
    assert len(full.results) == 3 * 4 and full.n_trials == 3
    again = run_study(cfg, tmp_path / "a")
    assert sorted(again.results, key=str) == sorted(full.results, key=str)
    with sqlite3.connect(tmp_path / "a" / STORE_NAME) as conn:
        assert conn.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 12
        assert conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == 3
    run_study(cfg, tmp_path / "b")
    assert_same_predictions(tmp_path / "a", tmp_path / "b")

    loaded = open_results(tmp_path / "a")
    assert loaded.models == cfg.model_names and loaded.preset == "custom"
    assert loaded.variant == "exact" and loaded.seed == 7 and loaded.finished
    assert "n_obs = 60" in loaded.config_toml
    rows = {r["model"]: r for r in report_table(loaded)}
    assert rows["NTKB1"]["trials"] == 3


def test_store_keeps_arrays_and_curves(tmp_path: Path) -> None:
    cfg = tiny()
    run_study(apply_overrides(cfg, trials=1), tmp_path)
    result = run_trial(cfg, 0)
    with ResultsStore(tmp_path / STORE_NAME, readonly=True) as store:
        np.testing.assert_array_equal(store.y_test(0), result.y_test)
        curve = store.loss_curve(0, "NN1")
        assert curve is not None and curve.shape[1] == 2 and curve.shape[0] >= 1
        stored = store.predictions("NTKB1")[0]
    np.testing.assert_array_equal(stored, result.outcomes[1].predictions)


def test_different_config_refused_then_force_new(tmp_path: Path) -> None:
    run_study(apply_overrides(tiny(), trials=1), tmp_path)
    other = apply_overrides(tiny(), trials=1, sets=["data.n_obs=50", "seed=3"])
    with pytest.raises(StoreError, match=r"differs in: data\.n_obs, seed"):
        run_study(other, tmp_path)
    results = run_study(other, tmp_path, force_new=True)
    assert results.seed == 3 and len(results.results) == 4
    assert len(list(tmp_path.glob(f"{STORE_NAME}.bak-*"))) == 1


def test_second_run_on_a_locked_folder_is_refused(tmp_path: Path) -> None:
    with StoreLock(tmp_path), pytest.raises(StoreError, match="in use by another"):
        run_study(tiny(), tmp_path)
    assert not (tmp_path / STORE_NAME).exists()


def test_incompatible_or_foreign_store_refused(tmp_path: Path) -> None:
    run_study(apply_overrides(tiny(), trials=1), tmp_path)
    with sqlite3.connect(tmp_path / STORE_NAME) as conn:
        conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="schema version 999"):
        open_results(tmp_path)
    with pytest.raises(StoreError, match="schema version 999"):
        run_study(apply_overrides(tiny(), trials=1), tmp_path)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / STORE_NAME).write_text("not a database", encoding="utf-8")
    with pytest.raises(StoreError, match="not an ntkeq results store"):
        open_results(tmp_path / "x")
    with pytest.raises(StoreError, match="no results store"):
        open_results(tmp_path / "missing")


def test_unwritable_out_refused_before_anything_is_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(StoreError, match="not a folder"):
        run_study(tiny(), blocker)


@pytest.mark.skipif(
    not Path("/proc/self").is_dir(), reason="needs Linux's /proc (no mkdir there)"
)
def test_out_under_a_folder_even_root_cannot_write_is_refused() -> None:
    # permission bits say /proc is writable for root; only a real attempt tells
    with pytest.raises(StoreError, match="cannot be created: /proc is not writable"):
        run_study(tiny(), "/proc/ntkeq-results")


def test_kernel_only_study_ignores_the_device(tmp_path: Path) -> None:
    cfg = apply_overrides(tiny(), trials=1, models="kernels", device="cuda:7")
    assert len(run_study(cfg, tmp_path).results) == 3


# -- executors ----------------------------------------------------------------


def test_process_pool_gives_the_same_numbers(tmp_path: Path) -> None:
    cfg = tiny()
    run_study(cfg, tmp_path / "local", executor=LocalExecutor())
    run_study(cfg, tmp_path / "jobs", executor=ProcessExecutor(2))
    assert_same_predictions(tmp_path / "local", tmp_path / "jobs")


def test_executor_flags_validated() -> None:
    assert make_executor(jobs=1).name == "local"
    with pytest.raises(ConfigError, match="--jobs 0"):
        make_executor(jobs=0)
    with pytest.raises(ConfigError, match="exclude each other"):
        make_executor(scheduler="tcp://h:1", dask_workers=2)
    with pytest.raises(ConfigError, match="not an address"):
        make_executor(scheduler="localhost")


def test_dask_without_the_extra_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a None entry in sys.modules makes `import distributed` raise ImportError
    monkeypatch.setitem(sys.modules, "distributed", None)
    for kwargs in ({"dask_workers": 2}, {"scheduler": "tcp://127.0.0.1:1"}):
        with pytest.raises(ConfigError, match=r"pip install ntkeq\[distributed\]"):
            make_executor(**kwargs)


def test_dask_local_cluster_gives_the_same_numbers(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    from ntkeq.study.executors import DaskExecutor

    cfg = apply_overrides(tiny(), trials=2, models="kernels")
    run_study(cfg, tmp_path / "local")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        executor = DaskExecutor(scheduler=cluster.scheduler_address)
        results = run_study(cfg, tmp_path / "dask", executor=executor)
    assert len(results.results) == 2 * 3
    assert_same_predictions(tmp_path / "local", tmp_path / "dask")


# -- the command line ---------------------------------------------------------


def ntkeq(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ntkeq", "run", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_cli_end_to_end_and_errors(tmp_path: Path) -> None:
    (tmp_path / "tiny.toml").write_text(TINY_TOML, encoding="utf-8")
    done = ntkeq("--config", "tiny.toml", "--out", "out", "--trials", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "NTKB1" in done.stdout and "estimated" in done.stderr
    for name in (STORE_NAME, "report.md", "report.json", "boxplot.png"):
        assert (tmp_path / "out" / name).exists()
    assert len(open_results(tmp_path / "out").results) == 8

    other = ntkeq("--config", "tiny.toml", "--out", "out", "--seed", "1", cwd=tmp_path)
    assert other.returncode == 2 and "differs in: seed" in other.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--preset", "papr"], "did you mean 'paper'"),
        (["--config", "tiny.toml", "--models", "NN1,KK1"], "unknown model 'KK1'"),
        (["--config", "tiny.toml", "--set", "data.nobs=3"], "did you mean 'n_obs'"),
        (["--config", "tiny.toml", "--jobs", "0"], "--jobs 0"),
        (["--config", "tiny.toml", "--preset", "quick"], "exclude each other"),
        (["--config", "missing.toml"], "does not exist"),
        pytest.param(
            ["--config", "tiny.toml", "--device", "cuda"],
            "torch sees no CUDA GPU",
            marks=pytest.mark.skipif(
                __import__("torch").cuda.is_available(),
                reason="this machine has a CUDA GPU",
            ),
        ),
        (["--config", "tiny.toml", "--device", "mps"], "use auto, cpu, cuda"),
    ],
)
def test_cli_usage_errors_write_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    fragment: str,
) -> None:
    from ntkeq.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.toml").write_text(TINY_TOML, encoding="utf-8")
    assert main(["run", *args, "--out", "bad"]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.strip().count("\n") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.toml"]


@pytest.mark.parametrize(
    ("sig", "status"), [(signal.SIGKILL, -signal.SIGKILL), (signal.SIGINT, 130)]
)
def test_killed_run_resumes_to_the_uninterrupted_result(
    tmp_path: Path, sig: signal.Signals, status: int
) -> None:
    toml = TINY_TOML.replace("trials = 3", "trials = 8").replace(
        "epochs = 20", "epochs = 300"
    )
    (tmp_path / "slow.toml").write_text(toml, encoding="utf-8")
    args = [sys.executable, "-m", "ntkeq", "run", "--config", "slow.toml", "--quiet"]
    proc = subprocess.Popen(
        [*args, "--out", "killed"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    store = tmp_path / "killed" / STORE_NAME
    deadline = time.monotonic() + 120
    count = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if store.exists():
            try:
                with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as conn:
                    count = conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
            except sqlite3.OperationalError:
                count = 0
            if count >= 5:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, sig)
    assert proc.wait(timeout=120) == status
    assert 5 <= len(open_results(tmp_path / "killed").results) < 32

    resumed = subprocess.run([*args, "--out", "killed"], cwd=tmp_path, check=False)
    assert resumed.returncode == 0
    run_study(config_from_dict(__import__("tomllib").loads(toml)), tmp_path / "whole")
    assert len(open_results(tmp_path / "killed").results) == 32
    assert_same_predictions(tmp_path / "killed", tmp_path / "whole")
