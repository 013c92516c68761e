"""Study configuration: schema, validation, presets and command-line overrides.

A study is described by a TOML document with a ``[data]`` table, an array of
``[[models]]`` tables and a few top-level keys (``trials``, ``seed``,
``variant``, ``device``, ``dtype``). :func:`load_config` and
:func:`load_preset` parse and validate it into a frozen :class:`StudyConfig`
before anything runs; :func:`apply_overrides` applies the one-run overrides
of ``ntkeq run``; :func:`to_toml` writes the effective configuration back as
TOML text, which the results store keeps together with :func:`config_hash`.

Notation
--------
trials
    number of independent trials T (the paper: 50), indexed 0..T-1.
seed
    base seed s; trial i draws from ``SeedSequence([s, i])``.
variant
    ``exact`` (the paper's equations) or ``as-published`` (the published
    script's formulas), see ``docs/theory.md``.
model name
    the paper's names: NN1 NN2 GP1 GP2 NTKA1 NTKA2 NTKJ1 NTKJ2 NTKB1 NTKB2 K1;
    a trailing digit is the depth L.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "MODEL_GROUPS",
    "PAPER_ORDER",
    "ConfigError",
    "DataConfig",
    "KernelModelConfig",
    "NetworkModelConfig",
    "PredictorModelConfig",
    "StudyConfig",
    "apply_overrides",
    "config_diff",
    "config_from_dict",
    "config_hash",
    "list_presets",
    "load_config",
    "load_preset",
    "select_models",
    "to_dict",
    "to_toml",
]

#: The paper's row order (Figures 2 and 3).
PAPER_ORDER = "NN1 NN2 GP1 GP2 NTKA1 NTKA2 NTKJ1 NTKJ2 NTKB1 NTKB2 K1".split()
#: Group names accepted by ``--models`` besides model names.
MODEL_GROUPS = ("kernels", "networks", "predictors")

VARIANTS = ("exact", "as-published")
SOURCES = ("simulated", "diabetes")
DTYPES = ("float32", "float64")
PARAMETERIZATIONS = ("ntkb", "ntkj", "ntka", "standard")
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
KERNEL_NAME = re.compile(r"^(NTKB|NTKJ|NTKA|GP)([1-9]\d*)$|^K1$")
NETWORK_NAME = re.compile(r"^NN([1-9]\d*)$")
# A display name may carry a suffix after "@" (e.g. "NTKJ1@NN1") naming what
# the model is compared with; the part before "@" is the kernel or network.
DISPLAY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(@[A-Za-z0-9_]+)?$")
#: The empirical-NTK predictor's kernel name (``eNTK@NN1``).
EMPIRICAL_KERNEL = "eNTK"
#: Parameterizations with a closed-form kernel family of their own.
PARAMETERIZATION_KERNELS = {"ntkb": "NTKB", "ntkj": "NTKJ", "ntka": "NTKA"}


class ConfigError(ValueError):
    """A study configuration is invalid; the message is one user-facing line."""


# --------------------------------------------------------------------------
# Schema


@dataclass(frozen=True)
class DataConfig:
    """The ``[data]`` table: where each trial's observations come from.

    ``source = "simulated"`` is the paper's Section 4.1 design: ``n_obs``
    rows of ``d_in`` uniform[low, high] draws scaled to unit norm, responses
    drawn from N(0, K) with K the Gram matrix of ``kernel`` (``variant``
    defaults to the study's), split with ``test_fraction`` of the points held
    out. ``source = "diabetes"`` uses scikit-learn's bundled diabetes data
    (442 x 10) with the same split rule; the generator keys are then unused.
    """

    source: str = "simulated"
    kernel: str = "NTKB1"
    variant: str | None = None
    n_obs: int = 1000
    d_in: int = 15
    low: float = -5.0
    high: float = 7.0
    test_fraction: float = 0.33


@dataclass(frozen=True)
class KernelModelConfig:
    """A kernel regression model: ``name`` is the display name (table row).

    ``kernel`` is the :func:`ntkeq.kernels.kernel` name (defaults to the
    part of ``name`` before any ``@``), ``variant`` defaults to the study's,
    ``params`` are passed to the kernel as keyword arguments and ``ridge`` to
    the dual solve (0 is the paper's ridgeless interpolant).
    """

    name: str
    kernel: str
    variant: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    ridge: float = 0.0

    kind = "kernel"


@dataclass(frozen=True)
class NetworkModelConfig:
    """A fully connected ReLU network trained by SGD (:mod:`ntkeq.training`).

    Defaults are the published script's NN1: Jacot et al.'s parameterization,
    width 10,000, learning rate 0.002, batch 8, 30% validation hold-out,
    3000 epochs. ``batch_size`` ``None`` (``"full"`` in TOML) is full-batch
    gradient descent. ``dtype`` defaults to the study's; ``params`` go to
    :class:`ntkeq.networks.MLP` (e.g. ``beta``, ``sigma_w``).
    """

    name: str
    depth: int
    width: int = 10_000
    parameterization: str = "ntkj"
    learning_rate: float = 0.002
    epochs: int = 3000
    batch_size: int | None = 8
    validation_split: float = 0.3
    dtype: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    kind = "network"


@dataclass(frozen=True)
class PredictorModelConfig:
    """Kernel gradient descent after the training a network received.

    The model ``<KERNEL>@<NETWORK>`` predicts with kernel gradient descent
    (:func:`ntkeq.equivalence.finite_time_ntk_prediction`, discrete steps)
    using the closed-form ``kernel`` (or ``"eNTK"``, the network's own
    empirical NTK at initialization on all points), run on the network's
    fitting points with its learning rate, batch size and epochs. With
    ``f0`` the network's initial function f_0 is added (the prediction for
    that one network); without, its expectation 0 is used. ``variant`` and
    ``params`` apply to a closed-form kernel; ``variant`` defaults to
    ``"exact"`` whatever the study's variant, because the ``as-published``
    formulas are not the tangent kernel of any network.
    """

    name: str
    kernel: str
    network: str
    variant: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    f0: bool = True

    kind = "predictor"


ModelConfig = KernelModelConfig | NetworkModelConfig | PredictorModelConfig


@dataclass(frozen=True)
class StudyConfig:
    """A validated study: data, models, and how many trials of them to run.

    ``preset`` names where the configuration came from (a preset name, or
    ``"custom"`` for a user file); ``notes`` says in words what a scaled-down
    preset changed with respect to ``paper``.
    """

    data: DataConfig
    models: tuple[ModelConfig, ...]
    trials: int = 50
    seed: int = 0
    variant: str = "exact"
    device: str = "auto"
    dtype: str = "float32"
    ntk_subsample: int = 100
    preset: str = "custom"
    description: str = ""
    notes: str = ""
    scaled_down: tuple[str, ...] = ()

    @property
    def model_names(self) -> tuple[str, ...]:
        """Model names in the configured order."""
        return tuple(m.name for m in self.models)

    @property
    def data_variant(self) -> str:
        """Variant of the data-generating kernel (the study's unless set)."""
        return self.data.variant or self.variant

    def model(self, name: str) -> ModelConfig:
        """The model called ``name``; raises :class:`ConfigError` if absent."""
        for m in self.models:
            if m.name == name:
                return m
        raise ConfigError(_unknown("model", name, self.model_names))

    def predictors_of(self, network: str) -> tuple[PredictorModelConfig, ...]:
        """The ``@`` predictor models of the network called ``network``."""
        return tuple(
            m
            for m in self.models
            if isinstance(m, PredictorModelConfig) and m.network == network
        )

    def model_variant(self, model: KernelModelConfig | PredictorModelConfig) -> str:
        """Variant a kernel model uses: its own, else the study's for a kernel
        model and ``"exact"`` for an ``@`` predictor (a network's own kernel)."""
        if model.variant is not None:
            return model.variant
        return "exact" if isinstance(model, PredictorModelConfig) else self.variant

    def model_dtype(self, model: NetworkModelConfig) -> str:
        """Dtype a network model trains in (its own, else the study's)."""
        return model.dtype or self.dtype


# --------------------------------------------------------------------------
# Validation helpers


def _suggest(name: str, allowed: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(allowed), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown(what: str, name: str, allowed: Sequence[str]) -> str:
    return (
        f"unknown {what} {name!r}{_suggest(name, allowed)}; "
        f"allowed: {', '.join(allowed)}"
    )


def _check_keys(table: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(
                f"unknown key {key!r} in {where}{_suggest(key, allowed)}; "
                f"allowed: {', '.join(allowed)}"
            )


def _int(value: Any, key: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ConfigError(f"{key} = {value} is out of range; must be {bound}")
    return value


def _float(
    value: Any,
    key: str,
    low: float,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key} must be a number, got {value!r}")
    v = float(value)
    bad = (
        not math.isfinite(v)
        or (v <= low if low_open else v < low)
        or (v >= high if high_open else v > high)
    )
    if bad:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ConfigError(
            f"{key} = {value} is out of range; must be in {lo}{low}, {high}{hi}"
        )
    return v


def _choice(value: Any, key: str, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        hint = _suggest(value, allowed) if isinstance(value, str) else ""
        raise ConfigError(
            f"{key} = {value!r} is not allowed{hint}; allowed: {', '.join(allowed)}"
        )
    return value


def _str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string, got {value!r}")
    return value


def _params(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be a table of keyword arguments, got {value!r}")
    for k, v in value.items():
        ok = isinstance(v, int | float | str) or (
            isinstance(v, list) and all(isinstance(x, int | float) for x in v)
        )
        if not ok:
            raise ConfigError(
                f"{key}.{k} = {v!r}: parameters must be numbers, strings or "
                "lists of numbers"
            )
    return dict(value)


def _kernel_name_ok(name: str) -> bool:
    return KERNEL_NAME.match(name) is not None


def _base_name(name: str) -> str:
    return name.split("@", 1)[0]


def _default_names() -> list[str]:
    return [*PAPER_ORDER, "NTKB3", "NN3"]


# --------------------------------------------------------------------------
# dict -> config


_DATA_KEYS = [
    "source",
    "kernel",
    "variant",
    "n_obs",
    "d_in",
    "low",
    "high",
    "test_fraction",
]
_KERNEL_KEYS = ["name", "kernel", "variant", "params", "ridge"]
_NETWORK_KEYS = [
    "name",
    "depth",
    "width",
    "parameterization",
    "learning_rate",
    "epochs",
    "batch_size",
    "validation_split",
    "dtype",
    "params",
]
_TOP_KEYS = [
    "preset",
    "description",
    "notes",
    "scaled_down",
    "trials",
    "seed",
    "variant",
    "device",
    "dtype",
    "ntk_subsample",
    "data",
    "models",
]
_PREDICTOR_KEYS = ["name", "variant", "params", "f0"]


def _data_from_dict(table: Mapping[str, Any]) -> DataConfig:
    _check_keys(table, _DATA_KEYS, "[data]")
    d = DataConfig()
    source = _choice(table.get("source", d.source), "data.source", SOURCES)
    kernel = _str(table.get("kernel", d.kernel), "data.kernel")
    if not _kernel_name_ok(kernel):
        raise ConfigError(
            f"data.kernel = {kernel!r} is not a kernel name"
            f"{_suggest(kernel, PAPER_ORDER)}; use NTKB<L>, NTKJ<L>, NTKA<L>, "
            "GP<L> or K1"
        )
    variant = table.get("variant")
    if variant is not None:
        variant = _choice(variant, "data.variant", VARIANTS)
    n_obs = _int(table.get("n_obs", d.n_obs), "data.n_obs", 4, 1_000_000)
    d_in = _int(table.get("d_in", d.d_in), "data.d_in", 1, 100_000)
    low = _float(table.get("low", d.low), "data.low", -math.inf)
    high = _float(table.get("high", d.high), "data.high", -math.inf)
    if not low < high:
        raise ConfigError(f"data.low = {low} must be smaller than data.high = {high}")
    test_fraction = _float(
        table.get("test_fraction", d.test_fraction),
        "data.test_fraction",
        0.0,
        1.0,
        low_open=True,
        high_open=True,
    )
    try:
        from ntkeq.data import split_sizes

        split_sizes(n_obs, test_fraction)
    except ImportError:  # pragma: no cover - ntkeq.data is part of the package
        pass
    except ValueError as exc:
        raise ConfigError(f"data.test_fraction: {exc}") from None
    return DataConfig(source, kernel, variant, n_obs, d_in, low, high, test_fraction)


def _model_from_dict(table: Mapping[str, Any], index: int) -> ModelConfig:
    where = f"[[models]] #{index + 1}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table, got {table!r}")
    if "name" not in table:
        raise ConfigError(f'{where} has no \'name\' (e.g. name = "NTKB1" or "NN1")')
    name = _str(table["name"], f"{where}.name")
    if DISPLAY_NAME.match(name) is None:
        raise ConfigError(
            f"model name {name!r} is not allowed; use letters, digits and _, "
            "optionally with an @suffix"
        )
    where = f"model {name}"
    base = _base_name(name)
    if "@" in name and "kernel" not in table and "depth" not in table:
        return _predictor_from_dict(table, name, where)
    is_network = NETWORK_NAME.match(base) is not None or "depth" in table
    if is_network:
        return _network_from_dict(table, name, base, where)
    kernel = _str(table.get("kernel", base), f"{where}.kernel")
    if not _kernel_name_ok(kernel):
        raise ConfigError(
            f"unknown model {name!r}{_suggest(kernel, _default_names())}; a model "
            "name is NN<L> (a network) or a kernel NTKB<L>, NTKJ<L>, NTKA<L>, "
            "GP<L>, K1 (or set kernel = ... for another display name)"
        )
    _check_keys(table, _KERNEL_KEYS, where)
    variant = table.get("variant")
    if variant is not None:
        variant = _choice(variant, f"{where}.variant", VARIANTS)
    params = _params(table.get("params", {}), f"{where}.params")
    ridge = _float(table.get("ridge", 0.0), f"{where}.ridge", 0.0)
    return KernelModelConfig(name, kernel, variant, params, ridge)


def _predictor_from_dict(
    table: Mapping[str, Any], name: str, where: str
) -> PredictorModelConfig:
    _check_keys(table, _PREDICTOR_KEYS, where)
    kernel, network = name.split("@", 1)
    if kernel != EMPIRICAL_KERNEL and not _kernel_name_ok(kernel):
        allowed = [EMPIRICAL_KERNEL, *_default_names()]
        raise ConfigError(
            f"unknown kernel {kernel!r} in predictor {name!r}"
            f"{_suggest(kernel, [a for a in allowed if not a.startswith('NN')])}; "
            "a predictor is <KERNEL>@<NETWORK> with KERNEL one of NTKB<L>, "
            "NTKJ<L>, NTKA<L>, GP<L>, K1 or eNTK (or set kernel = ... for a plain "
            "kernel model with this display name)"
        )
    variant = table.get("variant")
    if variant is not None:
        variant = _choice(variant, f"{where}.variant", VARIANTS)
    params = _params(table.get("params", {}), f"{where}.params")
    if kernel == EMPIRICAL_KERNEL and (variant is not None or params):
        raise ConfigError(
            f"{where}: variant and params apply to closed-form kernels only; the "
            "eNTK predictor uses the network itself"
        )
    f0 = table.get("f0", True)
    if not isinstance(f0, bool):
        raise ConfigError(f"{where}.f0 must be true or false, got {f0!r}")
    return PredictorModelConfig(name, kernel, network, variant, params, f0)


def _check_predictors(models: Sequence[ModelConfig]) -> None:
    networks = [m.name for m in models if isinstance(m, NetworkModelConfig)]
    for m in models:
        if isinstance(m, PredictorModelConfig) and m.network not in networks:
            raise ConfigError(
                f"predictor {m.name!r} names network {m.network!r}, which is not a "
                f"network model of this config{_suggest(m.network, networks)}; "
                f"networks: {', '.join(networks) or 'none'}"
            )


def _network_from_dict(
    table: Mapping[str, Any], name: str, base: str, where: str
) -> NetworkModelConfig:
    _check_keys(table, _NETWORK_KEYS, where)
    d = NetworkModelConfig(name="NN1", depth=1)
    match = NETWORK_NAME.match(base)
    default_depth = int(match.group(1)) if match else None
    if "depth" not in table and default_depth is None:
        raise ConfigError(f"{where} needs depth = <number of hidden layers>")
    depth = _int(table.get("depth", default_depth), f"{where}.depth", 1, 64)
    width = _int(table.get("width", d.width), f"{where}.width", 1, 10_000_000)
    param = _choice(
        table.get("parameterization", d.parameterization),
        f"{where}.parameterization",
        PARAMETERIZATIONS,
    )
    lr = _float(
        table.get("learning_rate", d.learning_rate),
        f"{where}.learning_rate",
        0.0,
        low_open=True,
    )
    default_epochs = d.epochs * depth
    epochs = _int(table.get("epochs", default_epochs), f"{where}.epochs", 1)
    raw_batch = table.get("batch_size", d.batch_size)
    batch = (
        None
        if raw_batch == "full"
        else _int(raw_batch, f'{where}.batch_size (or "full")', 1)
    )
    vsplit = _float(
        table.get("validation_split", d.validation_split),
        f"{where}.validation_split",
        0.0,
        1.0,
        high_open=True,
    )
    dtype = table.get("dtype")
    if dtype is not None:
        dtype = _choice(dtype, f"{where}.dtype", DTYPES)
    params = _params(table.get("params", {}), f"{where}.params")
    return NetworkModelConfig(
        name, depth, width, param, lr, epochs, batch, vsplit, dtype, params
    )


def config_from_dict(
    doc: Mapping[str, Any], *, preset: str | None = None
) -> StudyConfig:
    """Validate a parsed TOML document into a :class:`StudyConfig`.

    Parameters
    ----------
    doc : mapping
        The document, as :func:`tomllib.loads` returns it.
    preset : str, optional
        Preset name to record; defaults to the document's ``preset`` key,
        else ``"custom"``.

    Raises
    ------
    ConfigError
        On the first unknown key, unknown model or out-of-range value, with
        the closest valid name suggested.

    Examples
    --------
    >>> cfg = config_from_dict({"trials": 2, "models": [{"name": "NTKB1"}]})
    >>> cfg.trials, cfg.model_names, cfg.data.n_obs
    (2, ('NTKB1',), 1000)
    """
    _check_keys(doc, _TOP_KEYS, "the study config")
    base = StudyConfig(data=DataConfig(), models=())
    trials = _int(doc.get("trials", base.trials), "trials", 1, 1_000_000)
    seed = _int(doc.get("seed", base.seed), "seed", 0, 2**63 - 1)
    variant = _choice(doc.get("variant", base.variant), "variant", VARIANTS)
    device = _str(doc.get("device", base.device), "device")
    if DEVICE_PATTERN.match(device) is None:
        raise ConfigError(
            f"device = {device!r} is not allowed; use auto, cpu, cuda or cuda:N"
        )
    dtype = _choice(doc.get("dtype", base.dtype), "dtype", DTYPES)
    ntk_sub = _int(
        doc.get("ntk_subsample", base.ntk_subsample), "ntk_subsample", 1, 1_000_000
    )
    name = preset if preset is not None else _str(doc.get("preset", "custom"), "preset")
    description = _str(doc.get("description", ""), "description")
    notes = _str(doc.get("notes", ""), "notes")
    scaled = doc.get("scaled_down", [])
    if not isinstance(scaled, list) or not all(isinstance(s, str) for s in scaled):
        raise ConfigError(f"scaled_down must be a list of strings, got {scaled!r}")

    data_table = doc.get("data", {})
    if not isinstance(data_table, dict):
        raise ConfigError("data must be a table ([data])")
    data = _data_from_dict(data_table)

    model_list = doc.get("models")
    if not isinstance(model_list, list) or not model_list:
        raise ConfigError("the config needs at least one [[models]] table")
    models = tuple(_model_from_dict(t, i) for i, t in enumerate(model_list))
    seen: set[str] = set()
    for m in models:
        if m.name in seen:
            raise ConfigError(
                f"model {m.name!r} appears twice; model names must be unique"
            )
        seen.add(m.name)
    _check_predictors(models)
    return StudyConfig(
        data=data,
        models=models,
        trials=trials,
        seed=seed,
        variant=variant,
        device=device,
        dtype=dtype,
        ntk_subsample=ntk_sub,
        preset=name,
        description=description,
        notes=notes,
        scaled_down=tuple(scaled),
    )


# --------------------------------------------------------------------------
# Loading


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message carries "(at line L, column C)".
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None


def _preset_files() -> dict[str, Any]:
    folder = resources.files("ntkeq.study").joinpath("presets")
    out: dict[str, Any] = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".toml"):
            out[entry.name[: -len(".toml")]] = entry
    return dict(sorted(out.items()))


def list_presets() -> list[tuple[str, str]]:
    """Presets shipped with ntkeq, as ``(name, one-line description)``.

    Examples
    --------
    >>> [name for name, _ in list_presets()]
    ['matched', 'paper', 'paper-as-published', 'quick']
    """
    out = []
    for name, entry in _preset_files().items():
        doc = _parse_toml(entry.read_text(encoding="utf-8"), f"preset {name}")
        out.append((name, str(doc.get("description", "")).strip().splitlines()[0]))
    return out


def load_preset(name: str) -> StudyConfig:
    """Load and validate the preset called ``name`` (see :func:`list_presets`).

    Examples
    --------
    >>> cfg = load_preset("paper")
    >>> cfg.trials, cfg.variant, len(cfg.models)
    (50, 'exact', 11)
    """
    files = _preset_files()
    if name not in files:
        raise ConfigError(_unknown("preset", name, list(files)))
    text = files[name].read_text(encoding="utf-8")
    return config_from_dict(_parse_toml(text, f"preset {name}"), preset=name)


def load_config(path: Path | str) -> StudyConfig:
    """Load and validate a study TOML file (preset ``"custom"`` unless set)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(p)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {str(p)!r}: {exc}") from None
    return config_from_dict(_parse_toml(text, str(p)))


# --------------------------------------------------------------------------
# config -> dict / TOML


def to_dict(config: StudyConfig) -> dict[str, Any]:
    """The configuration as a plain TOML-able dict.

    Defaults are spelled out, except a model's or the data's ``variant`` and
    a network's ``dtype``, which are written only when set (unset, they follow
    the study's ``variant`` and ``dtype``).
    """
    doc: dict[str, Any] = {
        "preset": config.preset,
        "description": config.description,
        "notes": config.notes,
        "scaled_down": list(config.scaled_down),
        "trials": config.trials,
        "seed": config.seed,
        "variant": config.variant,
        "device": config.device,
        "dtype": config.dtype,
        "ntk_subsample": config.ntk_subsample,
    }
    d = config.data
    data: dict[str, Any] = {
        "source": d.source,
        "kernel": d.kernel,
        "n_obs": d.n_obs,
        "d_in": d.d_in,
        "low": d.low,
        "high": d.high,
        "test_fraction": d.test_fraction,
    }
    if d.variant is not None:
        data["variant"] = d.variant
    doc["data"] = data
    models: list[dict[str, Any]] = []
    for m in config.models:
        if isinstance(m, KernelModelConfig):
            entry: dict[str, Any] = {
                "name": m.name,
                "kernel": m.kernel,
                "ridge": m.ridge,
            }
            if m.variant is not None:
                entry["variant"] = m.variant
        elif isinstance(m, PredictorModelConfig):
            entry = {"name": m.name, "f0": m.f0}
            if m.variant is not None:
                entry["variant"] = m.variant
        else:
            entry = {
                "name": m.name,
                "depth": m.depth,
                "width": m.width,
                "parameterization": m.parameterization,
                "learning_rate": m.learning_rate,
                "epochs": m.epochs,
                "batch_size": "full" if m.batch_size is None else m.batch_size,
                "validation_split": m.validation_split,
            }
            if m.dtype is not None:
                entry["dtype"] = m.dtype
        if m.params:
            entry["params"] = dict(m.params)
        models.append(entry)
    doc["models"] = models
    return doc


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write non-finite float {value!r} to TOML")
        return repr(value)
    if isinstance(value, str):
        # JSON string escaping is a subset of TOML basic-string escaping.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} value {value!r} to TOML")


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_table(table: Mapping[str, Any]) -> list[str]:
    return [
        f"{_toml_key(k)} = {_toml_value(v)}"
        for k, v in table.items()
        if not isinstance(v, dict)
    ]


def to_toml(config: StudyConfig) -> str:
    """Write the effective configuration as TOML text that reloads to it.

    Only the schema's shapes are written (scalars, lists of scalars, the
    ``[data]`` table, ``[[models]]`` with an optional ``params`` sub-table).

    Examples
    --------
    >>> cfg = load_preset("quick")
    >>> config_from_dict(tomllib.loads(to_toml(cfg))) == cfg
    True
    """
    doc = to_dict(config)
    lines = _toml_table({k: v for k, v in doc.items() if k not in ("data", "models")})
    lines += ["", "[data]", *_toml_table(doc["data"])]
    for model in doc["models"]:
        lines += ["", "[[models]]", *_toml_table(model)]
        if "params" in model:
            lines += ["[models.params]", *_toml_table(model["params"])]
    return "\n".join(lines) + "\n"


def config_hash(config: StudyConfig) -> str:
    """SHA-256 (hex) of :func:`to_toml`: equal configs hash equal."""
    return hashlib.sha256(to_toml(config).encode("utf-8")).hexdigest()


def _flatten(doc: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key == "models" and not prefix:
            for m in value:
                for k, v in _flatten(m, f"models.{m['name']}.").items():
                    out[k] = v
            out["models"] = [m["name"] for m in value]
        elif isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def config_diff(a: StudyConfig, b: StudyConfig) -> list[str]:
    """Dotted keys whose values differ between two configurations.

    Examples
    --------
    >>> a = load_preset("quick")
    >>> config_diff(a, apply_overrides(a, trials=3, sets=["data.n_obs=500"]))
    ['data.n_obs', 'trials']
    """
    fa, fb = _flatten(to_dict(a)), _flatten(to_dict(b))
    return sorted(k for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k))


# --------------------------------------------------------------------------
# Overrides


def _default_model(name: str) -> dict[str, Any]:
    return {"name": name}


def select_models(config: StudyConfig, spec: str) -> StudyConfig:
    """Keep the models named by ``spec``, a comma list of names and groups.

    ``kernels``, ``networks`` and ``predictors`` select every configured
    model of that kind; a predictor needs its network selected too.
    A well-formed model name that is not configured (e.g. ``NTKB3``) is added
    with its defaults; anything else raises :class:`ConfigError`.

    Examples
    --------
    >>> cfg = load_preset("paper")
    >>> select_models(cfg, "networks,K1").model_names
    ('NN1', 'NN2', 'K1')
    """
    wanted: list[str] = []
    for token in (t.strip() for t in spec.split(",")):
        if not token:
            continue
        if token in MODEL_GROUPS:
            kind = token.removesuffix("s")
            wanted += [m.name for m in config.models if m.kind == kind]
        elif (
            token in config.model_names
            or _kernel_name_ok(token)
            or NETWORK_NAME.match(token)
        ):
            wanted.append(token)
        else:
            allowed = [*MODEL_GROUPS, *config.model_names]
            raise ConfigError(
                f"--models: unknown model {token!r}"
                f"{_suggest(token, [*allowed, *_default_names()])}; allowed: "
                f"{', '.join(allowed)} or any NN<L>, NTKB<L>, NTKJ<L>, NTKA<L>, GP<L>"
            )
    if not wanted:
        raise ConfigError(f"--models {spec!r} selects no model")
    chosen = []
    for name in dict.fromkeys(wanted):
        if name in config.model_names:
            chosen.append(config.model(name))
        else:
            chosen.append(_model_from_dict(_default_model(name), len(chosen)))
    # Keep the configured order, then the added models in the order given.
    order = {n: i for i, n in enumerate(config.model_names)}
    chosen.sort(key=lambda m: order.get(m.name, len(order)))
    try:
        _check_predictors(chosen)
    except ConfigError as exc:
        raise ConfigError(f"--models {spec!r}: {exc}; select it too") from None
    return replace(config, models=tuple(chosen))


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _set_key(doc: dict[str, Any], assignment: str) -> None:
    if "=" not in assignment:
        raise ConfigError(
            f"--set {assignment!r}: expected KEY=VALUE, e.g. data.n_obs=500"
        )
    key, raw = (s.strip() for s in assignment.split("=", 1))
    value = _parse_value(raw)
    parts = key.split(".")
    if parts[0] == "models":
        if len(parts) != 3:
            raise ConfigError(
                f"--set {key!r}: model keys are models.NAME.KEY or models.*.KEY"
            )
        _, name, sub = parts
        names = [m["name"] for m in doc["models"]]
        if name != "*" and name not in names:
            raise ConfigError(f"--set {key!r}: " + _unknown("model", name, names))
        for m in doc["models"]:
            if name in ("*", m["name"]):
                if (
                    name == "*"
                    and sub not in m
                    and sub not in _NETWORK_KEYS + _KERNEL_KEYS + _PREDICTOR_KEYS
                ):
                    raise ConfigError(f"--set {key!r}: unknown model key {sub!r}")
                if name == "*" and sub not in m:
                    continue
                m[sub] = value
        return
    if parts[0] == "data":
        if len(parts) != 2:
            raise ConfigError(f"--set {key!r}: data keys are data.KEY")
        doc["data"][parts[1]] = value
        return
    if len(parts) != 1 or parts[0] in ("data", "models"):
        raise ConfigError(
            f"--set {key!r}: unknown key{_suggest(key, _TOP_KEYS)}; use a top-level "
            "key, data.KEY, models.NAME.KEY or models.*.KEY"
        )
    doc[parts[0]] = value


def apply_overrides(
    config: StudyConfig,
    *,
    trials: int | None = None,
    models: str | None = None,
    width: int | None = None,
    epochs: int | None = None,
    device: str | None = None,
    seed: int | None = None,
    sets: Sequence[str] = (),
) -> StudyConfig:
    """Apply ``ntkeq run``'s one-run overrides and revalidate.

    ``width`` and ``epochs`` apply to every network model; ``sets`` are
    ``KEY=VALUE`` strings (``data.n_obs=500``, ``trials=3``,
    ``models.NN1.epochs=10``, ``models.*.width=64``) whose values are read
    as TOML values. ``models`` is applied first (see :func:`select_models`).

    Examples
    --------
    >>> cfg = apply_overrides(load_preset("paper"), models="networks", width=32)
    >>> [(m.name, m.width) for m in cfg.models]
    [('NN1', 32), ('NN2', 32)]
    """
    if models is not None:
        config = select_models(config, models)
    doc = to_dict(config)
    for key, value in (("trials", trials), ("device", device), ("seed", seed)):
        if value is not None:
            doc[key] = value
    for key, value in (("width", width), ("epochs", epochs)):
        if value is not None:
            _int(value, f"--{key}", 1)
            for m in doc["models"]:
                if "depth" in m:
                    m[key] = value
    for assignment in sets:
        _set_key(doc, assignment)
    return config_from_dict(doc, preset=config.preset)
