"""End-to-end tests of the ``ntkeq`` command line, through a subprocess.

Every bad input must exit with status 2, print exactly one line on stderr
that starts with ``ntkeq: error:``, and leave the output folder as it was.
Gram matrices written by ``ntkeq kernel`` are compared with the library's
result: bit for bit through ``.npy``, and to a relative 1e-15 through
``.csv`` (17 significant digits round-trip float64 exactly, so the
tolerance only absorbs the parser).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ntkeq import cli
from ntkeq.study.report import ModelResult, StudyResults

ROOT = Path(__file__).resolve().parents[1]


def ntkeq(
    *args: str | Path, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ntkeq ARGS`` and capture its output."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", "ntkeq", *map(str, args)],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


def assert_usage_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit 2, one stderr line starting 'ntkeq: error:', containing needles."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("ntkeq: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert proc.stdout == ""


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    x1 = rng.uniform(-5, 7, size=(6, 4))
    x1 /= np.linalg.norm(x1, axis=1, keepdims=True)
    x2 = rng.uniform(-5, 7, size=(3, 4))
    x2 /= np.linalg.norm(x2, axis=1, keepdims=True)
    p1, p2 = tmp_path / "x1.npy", tmp_path / "x2.csv"
    np.save(p1, x1)
    np.savetxt(p2, x2, delimiter=",", fmt="%.17g")
    return p1, p2, x1, x2


# ---------------------------------------------------------------------------
# General behaviour
# ---------------------------------------------------------------------------


def test_version_and_help() -> None:
    from ntkeq import __version__

    proc = ntkeq("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"ntkeq {__version__}"


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("run", "report", "kernel", "presets", "Exit status"):
        assert command in out


def test_presets() -> None:
    pytest.importorskip("ntkeq.study.config", reason="the study config is missing")
    from ntkeq.study.config import list_presets

    proc = ntkeq("presets")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    presets = list_presets()
    assert len(lines) == len(presets)
    for line, (name, _) in zip(lines, presets, strict=True):
        assert line.split()[0] == name


def test_parse_param() -> None:
    assert cli.parse_param("depth=2") == ("depth", 2)
    assert cli.parse_param("ridge=1e-3") == ("ridge", 1e-3)
    assert cli.parse_param("sigma_w=1,1.5, 2") == ("sigma_w", [1.0, 1.5, 2.0])
    for bad in ("depth", "=2", "depth=", "depth=two", "sigma_w=1,,2", "2x=1"):
        with pytest.raises(cli.CLIError, match="--param"):
            cli.parse_param(bad)


# ---------------------------------------------------------------------------
# ntkeq kernel
# ---------------------------------------------------------------------------


def test_kernel_plumbing_in_process(
    inputs: tuple[Path, Path, np.ndarray, np.ndarray],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Parameters, file formats and shapes, with a stand-in linear kernel."""
    seen: dict[str, Any] = {}

    def linear(name: str, variant: str = "exact", **params: Any) -> Any:
        seen.update(name=name, variant=variant, params=params)

        def k(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
            b = a if b is None else b
            return float(params.get("scale", 1.0)) * (a @ b.T)

        return k

    monkeypatch.setattr("ntkeq.kernels.kernel", linear)
    p1, p2, x1, x2 = inputs
    out = tmp_path / "k.csv"
    status = cli.main(
        [
            "kernel",
            "lin",
            str(p1),
            str(p2),
            "-o",
            str(out),
            "--variant",
            "as-published",
            "--param",
            "scale=2",
            "--param",
            "sigma_w=1,1.5",
        ]
    )
    assert status == 0, capsys.readouterr().err
    assert seen == {
        "name": "lin",
        "variant": "as-published",
        "params": {"scale": 2, "sigma_w": [1.0, 1.5]},
    }
    k = np.loadtxt(out, delimiter=",", ndmin=2)
    np.testing.assert_allclose(k, 2.0 * x1 @ x2.T, rtol=1e-15, atol=0)

    status = cli.main(["-q", "kernel", "lin", str(p1), "-o", str(tmp_path / "k.npy")])
    assert status == 0
    np.testing.assert_array_equal(np.load(tmp_path / "k.npy"), x1 @ x1.T)


def test_kernel_matches_library(
    inputs: tuple[Path, Path, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    from ntkeq.kernels import kernel

    p1, p2, x1, x2 = inputs
    flags = ["--param", "depth=2", "--param", "sigma_w=1,1.5,2"]
    flags += ["--param", "sigma_b=0.5"]
    params: dict[str, Any] = {"depth": 2, "sigma_w": [1.0, 1.5, 2.0], "sigma_b": 0.5}

    proc = ntkeq("kernel", "ntkb", p1, p2, "-o", tmp_path / "k.npy", *flags)
    assert proc.returncode == 0, proc.stderr
    expected = kernel("ntkb", **params)(x1, x2)
    assert expected.shape == (6, 3)
    np.testing.assert_array_equal(np.load(tmp_path / "k.npy"), expected)

    out = tmp_path / "k.csv"
    proc = ntkeq("kernel", "NTKJ2", p2, "-o", out, "--variant", "as-published")
    assert proc.returncode == 0, proc.stderr
    got = np.loadtxt(out, delimiter=",", ndmin=2)
    expected = kernel("NTKJ2", variant="as-published")(x2)
    np.testing.assert_allclose(got, expected, rtol=1e-15, atol=0)


K = ["kernel", "ntkb", "x1.npy", "-o", "k.npy"]
BAD_INPUT_CASES: dict[str, tuple[list[str], str]] = {
    "unknown kernel": (["kernel", "nktb", "x1.npy", "-o", "k.npy"], "'ntkb'"),
    "unknown param": ([*K, "--param", "bogus=1"], "sigma_w"),
    "missing input": (["kernel", "ntkb", "nope.npy", "-o", "k.npy"], "does not exist"),
    "input suffix": (["kernel", "ntkb", "x.txt", "-o", "k.npy"], ".npy or .csv"),
    "1-D input": (["kernel", "ntkb", "flat.npy", "-o", "k.npy"], "shape (5,)"),
    "dimension mismatch": ([*K[:3], "x3.npy", *K[3:]], "columns"),
    "not numbers": (["kernel", "ntkb", "junk.csv", "-o", "k.npy"], "numeric array"),
    "nan input": (["kernel", "ntkb", "nan.npy", "-o", "k.npy"], "NaN"),
    "output folder": ([*K[:4], "no/k.npy"], "does not exist"),
    "output suffix": ([*K[:4], "k.txt"], ".npy or .csv"),
    "output is folder": ([*K[:4], "sub.npy"], "folder"),
    "bad param": ([*K, "--param", "depth"], "key=value"),
    "param value": ([*K, "--param", "d=x"], "comma list"),
    "param twice": ([*K, "--param", "d=1", "--param", "d=2"], "twice"),
    "bad variant": ([*K, "--variant", "x"], "as-published"),
    "no output": (K[:3], "-o"),
    "no command": ([], "run, sweep, report, kernel, presets"),
    "unknown option": (["presets", "--bogus"], "--bogus"),
    "report format": (["report", ".", "--format", "html"], "latex"),
    "report folder": (["report", "missing"], "does not exist"),
    "negative param": ([*K, "--param", "sigma_w=-1"], "sigma_w must be"),
}
if Path("/proc/self").is_dir():
    # permission bits let root write to /proc; only a real attempt fails there
    BAD_INPUT_CASES["output unwritable"] = ([*K[:4], "/proc/k.npy"], "not writable")
# These also run through a real subprocess; the rest call cli.main in-process.
SUBPROCESS_CASES = {
    "missing input",
    "dimension mismatch",
    "no command",
    "report folder",
}


def _bad_input_folder(folder: Path) -> list[str]:
    np.save(folder / "x1.npy", np.ones((4, 3)))
    np.save(folder / "x3.npy", np.ones((4, 2)))
    np.save(folder / "flat.npy", np.ones(5))
    np.save(folder / "nan.npy", np.array([[1.0, np.nan]]))
    (folder / "junk.csv").write_text("a,b\nc,d\n")
    (folder / "sub.npy").mkdir()
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("case", list(BAD_INPUT_CASES))
def test_bad_input_exits_2(
    case: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args, needle = BAD_INPUT_CASES[case]
    before = _bad_input_folder(tmp_path)
    monkeypatch.chdir(tmp_path)

    status = cli.main(args)

    captured = capsys.readouterr()
    proc = subprocess.CompletedProcess(args, status, captured.out, captured.err)
    assert_usage_error(proc, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_bad_parameter_value_gets_no_name_suggestion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _bad_input_folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert cli.main([*K, "--param", "sigma_w=-1"]) == 2
    assert "did you mean" not in capsys.readouterr().err


@pytest.mark.parametrize("case", sorted(SUBPROCESS_CASES))
def test_bad_input_exits_2_subprocess(case: str, tmp_path: Path) -> None:
    args, needle = BAD_INPUT_CASES[case]
    before = _bad_input_folder(tmp_path)

    proc = ntkeq(*args, cwd=tmp_path)

    assert_usage_error(proc, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# ---------------------------------------------------------------------------
# ntkeq report
# ---------------------------------------------------------------------------


def _fake_study() -> StudyResults:
    rows = []
    for trial in range(4):
        for j, model in enumerate(("K1", "NN1", "NTKB1")):
            rows.append(
                ModelResult(trial, model, 0.1 * (j + 1) + 0.01 * trial, "ok", 1)
            )
    return StudyResults(
        "quick", "exact", "0.1.0", 5, 4, ("K1", "NN1", "NTKB1"), "", tuple(rows)
    )


def test_report_in_process(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`ntkeq report` with the store replaced by a fixed StudyResults."""
    import ntkeq.study.store as store

    study = _fake_study()
    monkeypatch.setattr(store, "open_results", lambda out_dir: study)

    assert cli.main(["report", str(tmp_path), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in doc["rows"]] == ["NN1", "NTKB1", "K1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "boxplot.png",
        "boxplot.svg",
        "report.json",
        "report.md",
    ]

    other = tmp_path / "other"
    other.mkdir()
    assert cli.main(["report", str(other), "--no-figures", "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("# ntkeq study report")
    assert list(other.iterdir()) == []


def _build_store(folder: Path) -> dict[str, list[float]]:
    """A results store with 3 of 5 trials written through the store API."""
    store_mod = pytest.importorskip("ntkeq.study.store")
    trial_mod = pytest.importorskip("ntkeq.study.trial")
    models = ("K1", "NN1", "NTKB1")
    rmses: dict[str, list[float]] = {m: [] for m in models}
    with store_mod.ResultsStore(folder / "results.sqlite") as store:
        store.set_meta(
            config_toml="[study]\n",
            preset="quick",
            variant="exact",
            seed=11,
            n_trials=5,
            models=json.dumps(models),
            ntkeq_version="0.1.0",
        )
        for t in range(3):
            outcomes = []
            for j, model in enumerate(models):
                diverged = model == "NN1" and t == 1
                rmse = None if diverged else 0.1 * (j + 1) + 0.01 * t**2
                if rmse is not None:
                    rmses[model].append(rmse)
                status = "diverged" if diverged else "ok"
                outcomes.append(
                    trial_mod.ModelOutcome(model, status, rmse, np.zeros(2), 0.1)
                )
            trial = trial_mod.TrialResult(t, 100 + t, np.zeros(2), tuple(outcomes))
            for outcome in outcomes:
                store.add(trial, outcome)
    return rmses


def test_report_on_store(tmp_path: Path) -> None:
    rmses = _build_store(tmp_path)

    proc = ntkeq("report", tmp_path, "--format", "json")

    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert (doc["preset"], doc["variant"], doc["seed"]) == ("quick", "exact", 11)
    assert doc["n_trials_planned"] == 5 and doc["n_trials_completed"] == 3
    assert doc["failed"]["NN1"] == {"failed": 0, "diverged": 1}
    assert [r["model"] for r in doc["rows"]] == ["NN1", "NTKB1", "K1"]
    for row in doc["rows"]:
        x = np.array(rmses[row["model"]])
        assert row["trials"] == x.size
        assert row["mean_rmse"] == pytest.approx(x.mean(), rel=1e-12)
        assert row["se"] == pytest.approx(x.std() / np.sqrt(x.size), rel=1e-12)
    written = {p.name: p.stat().st_size for p in tmp_path.iterdir()}
    for name in ("report.md", "report.json", "boxplot.png", "boxplot.svg"):
        assert written.get(name, 0) > 0, name
    md = (tmp_path / "report.md").read_text()
    assert "3 of 5 trials" in md.splitlines()[2]


def test_report_without_store(tmp_path: Path) -> None:
    proc = ntkeq("report", tmp_path)
    assert_usage_error(proc, "results")
    assert list(tmp_path.iterdir()) == []


def test_interrupt_and_internal_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    def broken(args: object) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "_cmd_presets", interrupted)
    assert cli.main(["presets"]) == 130
    assert capsys.readouterr().err == "ntkeq: error: interrupted\n"

    monkeypatch.setattr(cli, "_cmd_presets", broken)
    assert cli.main(["presets"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RuntimeError: boom" in err and "-v" in err
    assert cli.main(["-v", "presets"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_progress_bar_weighs_results_by_predicted_cost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    from rich.console import Console

    from ntkeq.study import cli_run
    from ntkeq.study.runner import Progress

    clock = [1000.0]
    monkeypatch.setattr(cli_run.time, "monotonic", lambda: clock[0])
    console = Console(file=io.StringIO(), width=120)
    # two trials of a 100 s network and of a kernel predicted at 0.1 s
    pending = {"NN1": 2, "K1": 2}
    bar = cli_run._Bar(console, pending, {"NN1": 100.0, "K1": 0.1})
    with bar:
        assert bar.eta() == "-:--:--"
        bar(Progress(0, 4, current="trial 0: kernels"))
        clock[0] += 0.1
        bar(Progress(1, 4, last="K1", status="ok"))
        bar(Progress(2, 4, last="K1", status="ok"))
        # the kernels are done: 200 s of predicted network work is left
        assert bar.eta() == "0:03:20"
        clock[0] += 30.0
        assert bar.eta() == "0:02:50"  # the running network has taken 30 s
        clock[0] += 120.0  # the first network took 150 s, not 100
        bar(Progress(3, 4, last="NN1", status="ok"))
        # calibrated: 100.2 s predicted took 150.1 s, so 100 s left -> ~150 s
        assert bar.eta() == "0:02:30"
        # a retrained network that is not stored again does not advance
        bar(Progress(3, 4, last="NN1", status="ok"))
        assert bar.eta() == "0:02:30"
        clock[0] += 150.0
        bar(Progress(4, 4, last="NN1", status="ok"))
        assert bar.eta() == "0:00:00"
    out = console.file.getvalue()
    assert "4/4" in out


def test_progress_bar_without_predictions_counts_results(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    from rich.console import Console

    from ntkeq.study import cli_run
    from ntkeq.study.runner import Progress

    clock = [0.0]
    monkeypatch.setattr(cli_run.time, "monotonic", lambda: clock[0])
    bar = cli_run._Bar(Console(file=io.StringIO()))
    with bar:
        bar(Progress(2, 6))  # two results stored earlier: four to go
        clock[0] += 10.0
        bar(Progress(3, 6, last="K1", status="ok"))
        # one result took 10 s: three more take about 30 s
        assert bar.eta() == "0:00:30"
