"""Study configs: presets, validation messages, overrides and the TOML writer."""

import tomllib
from pathlib import Path

import pytest

from ntkeq.study.config import (
    PAPER_ORDER,
    ConfigError,
    KernelModelConfig,
    NetworkModelConfig,
    apply_overrides,
    config_diff,
    config_from_dict,
    config_hash,
    list_presets,
    load_config,
    load_preset,
    to_toml,
)


def test_presets_listed_with_one_line_each() -> None:
    presets = dict(list_presets())
    assert set(presets) == {"matched", "paper", "paper-as-published", "quick"}
    assert all(desc and "\n" not in desc for desc in presets.values())


def test_paper_preset_matches_the_published_study() -> None:
    cfg = load_preset("paper")
    assert cfg.trials == 50 and cfg.variant == "exact" and cfg.data_variant == "exact"
    assert cfg.model_names == tuple(PAPER_ORDER)
    assert (cfg.data.n_obs, cfg.data.d_in, cfg.data.low, cfg.data.high) == (
        1000,
        15,
        -5.0,
        7.0,
    )
    for name, epochs in (("NN1", 3000), ("NN2", 6000)):
        m = cfg.model(name)
        assert isinstance(m, NetworkModelConfig)
        assert (m.width, m.parameterization, m.learning_rate) == (10_000, "ntkj", 0.002)
        assert (m.batch_size, m.validation_split, m.epochs) == (8, 0.3, epochs)
    assert cfg.dtype == "float32"
    published = load_preset("paper-as-published")
    assert published.variant == "as-published"
    assert config_diff(cfg, published) == ["description", "preset", "variant"]


def test_quick_preset_states_what_it_scaled_down() -> None:
    quick, paper = load_preset("quick"), load_preset("paper")
    assert quick.model_names == paper.model_names
    assert quick.data == paper.data
    assert quick.notes and quick.scaled_down
    changed = set(config_diff(paper, quick)) - {"description", "notes", "preset"}
    assert changed - {"scaled_down"} == set(quick.scaled_down)


@pytest.mark.parametrize("name", ["paper", "paper-as-published", "quick"])
def test_toml_writer_round_trips(name: str) -> None:
    cfg = apply_overrides(load_preset(name), sets=["models.K1.params = {a = 1.5}"])
    text = to_toml(cfg)
    assert config_from_dict(tomllib.loads(text)) == cfg
    assert config_hash(cfg) == config_hash(config_from_dict(tomllib.loads(text)))


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ({"trails": 3, "models": [{"name": "K1"}]}, "did you mean 'trials'"),
        ({"models": [{"name": "NTKB1", "rigde": 0.1}]}, "did you mean 'ridge'"),
        ({"models": [{"name": "NTKX1"}]}, "unknown model 'NTKX1'"),
        ({"models": [{"name": "NTBK1"}]}, "did you mean"),
        ({"data": {"n_obs": 1}, "models": [{"name": "K1"}]}, "data.n_obs = 1"),
        ({"trials": 0, "models": [{"name": "K1"}]}, "trials = 0 is out of range"),
        ({"variant": "exakt", "models": [{"name": "K1"}]}, "did you mean 'exact'"),
        ({"models": [{"name": "NN1", "width": 0}]}, "model NN1.width = 0"),
        ({"models": [{"name": "NN1", "validation_split": 1.0}]}, "validation_split"),
        ({"models": [{"name": "K1"}, {"name": "K1"}]}, "appears twice"),
        ({"models": []}, "at least one [[models]]"),
        ({"device": "gpu", "models": [{"name": "K1"}]}, "device = 'gpu'"),
        ({"data": {"low": 3, "high": 1}, "models": [{"name": "K1"}]}, "data.low"),
    ],
)
def test_bad_configs_name_the_problem(doc: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        config_from_dict(doc)
    message = str(info.value)
    assert fragment in message and "\n" not in message


def test_unknown_preset_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="did you mean 'paper'"):
        load_preset("papr")


def test_malformed_toml_reports_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("trials = 3\n[data]\nn_obs = = 5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="line 3") as info:
        load_config(path)
    assert str(path) in str(info.value)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


def test_network_defaults_follow_the_name() -> None:
    cfg = config_from_dict({"models": [{"name": "NN2"}, {"name": "NTKB3"}]})
    nn2, ntkb3 = cfg.models
    assert isinstance(nn2, NetworkModelConfig) and (nn2.depth, nn2.epochs) == (2, 6000)
    assert isinstance(ntkb3, KernelModelConfig) and ntkb3.kernel == "NTKB3"
    shown = config_from_dict(
        {
            "models": [
                {"name": "NTKJ1@NN1", "kernel": "NTKJ1", "variant": "as-published"}
            ]
        }
    ).models[0]
    assert isinstance(shown, KernelModelConfig) and shown.kernel == "NTKJ1"


def test_overrides_apply_and_are_stored() -> None:
    base = load_preset("paper")
    cfg = apply_overrides(
        base,
        trials=4,
        models="networks,K1,NTKB3",
        width=64,
        epochs=7,
        device="cpu",
        seed=11,
        sets=[
            "data.n_obs=500",
            "models.NN2.learning_rate=0.01",
            "variant='as-published'",
        ],
    )
    assert cfg.model_names == ("NN1", "NN2", "K1", "NTKB3")
    assert [
        (m.width, m.epochs) for m in cfg.models if isinstance(m, NetworkModelConfig)
    ] == [
        (64, 7),
        (64, 7),
    ]
    nn2 = cfg.model("NN2")
    assert isinstance(nn2, NetworkModelConfig) and nn2.learning_rate == 0.01
    assert (cfg.trials, cfg.seed, cfg.device, cfg.data.n_obs) == (4, 11, "cpu", 500)
    assert cfg.variant == "as-published" and cfg.data_variant == "as-published"
    stored = tomllib.loads(to_toml(cfg))
    assert stored["data"]["n_obs"] == 500 and stored["trials"] == 4
    assert [m["name"] for m in stored["models"]] == ["NN1", "NN2", "K1", "NTKB3"]
    assert apply_overrides(base, models="kernels").model_names == tuple(PAPER_ORDER[2:])


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"models": "NN1,KK1"}, "--models: unknown model 'KK1'"),
        ({"models": ","}, "selects no model"),
        ({"sets": ["data.n_obs"]}, "expected KEY=VALUE"),
        ({"sets": ["data.nobs=3"]}, "did you mean 'n_obs'"),
        ({"sets": ["models.NX1.width=3"]}, "unknown model 'NX1'"),
        ({"sets": ["trails=3"]}, "did you mean 'trials'"),
        ({"width": 0}, "width = 0"),
    ],
)
def test_bad_overrides(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(load_preset("quick"), **kwargs)  # type: ignore[arg-type]
    assert fragment in str(info.value)
