"""Study specs: ``studies/<name>.toml`` loaded with :mod:`tomllib`, a profile merged over the base,
and every value checked with a :class:`~mgmt_audit.errors.ConfigError` naming the file and key.

A spec file holds::

    description = "..."            # which experiment of the MGMT paper it reproduces
    n_trials = 40                  # target number of COMPLETE trials (nulls included)
    null_trials = 10               # how many of them train on permuted labels
    [data]                         # dataset, modalities, view (+ view_params), preprocess (PreprocessSpec)
    [model]                        # family + params (fixed model parameters)
    [train]                        # fixed TrainConfig values: optimizer, lr, epochs, batch_size, ...
    [search.<key>]                 # type = float | log-float | int | categorical; low/high/step or choices
    [pretrain]                     # SSL pretraining of the encoder before finetuning (see below)
    [seeds]                        # count (+ start) or values; policy = each | best
    [sampler] / [pruner]           # name + settings passed to the Optuna class
    [objective]                    # metric = "val_auc", direction = "maximize"
    [analysis]                     # margin = 0.65: the smallest AUC of interest for the verdicts
    [profiles.paper] / [profiles.smoke]   # any of the above, merged over the base

Search keys name a training-config field (``lr``), a field inside one of its tables
(``model_params.depth``, ``view_params.n_slices``, ``augment.flip_prob``) or a preprocessing parameter
(``preprocess.size``: each value gets its own cache; :attr:`ParamSpec.preprocess_field`). A categorical
``modalities`` choice is a string; ``"FLAIR+T1wCE"`` means both (:func:`modalities_of`).

A ``[pretrain]`` table (2D families whose weights load into one module, :func:`pretrainable`) makes
every trial start its encoder from a self-supervised pretraining (``method``, one of
:data:`mgmt_audit.models.ssl.METHODS`) on unlabelled slices of the trial's training patients (see
:mod:`mgmt_audit.study.pretrain`); its keys and defaults are :data:`PRETRAIN_DEFAULTS` plus
``slices`` (the central slices taken of every volume; all of them when absent).

The search key ``init`` makes the initialisation a search dimension; its choices are ``"scratch"``,
``"file"`` (the family's local weights file in ``[model.weights]``, ``family = "path"``; nothing is
downloaded) and SSL methods (the ``[pretrain]`` settings with that method; ``[pretrain]`` then names
no method of its own). Without it a spec with ``[pretrain]`` pretrains every trial, others start
from scratch (:meth:`StudySpec.init_of`).

Specs are looked up in ``./studies``, then ``$MGMT_AUDIT_STUDIES``, then the ``studies`` folder of the
source tree this package is installed from (the editable install).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mgmt_audit.data.manifest import MODALITIES
from mgmt_audit.errors import ConfigError

STUDIES_ENV = "MGMT_AUDIT_STUDIES"
PARAM_TYPES = ("float", "log-float", "int", "categorical")
SEED_POLICIES = ("each", "best")
OBJECTIVES = {"val_auc": "maximize"}
SAMPLERS = {"tpe": "TPESampler", "random": "RandomSampler", "grid": "GridSampler"}
PRUNERS = {
    "none": "NopPruner",
    "median": "MedianPruner",
    "percentile": "PercentilePruner",
    "hyperband": "HyperbandPruner",
    "successive_halving": "SuccessiveHalvingPruner",
}
TOP_KEYS = {
    "name", "description", "n_trials", "null_trials", "data", "model", "train", "search", "seeds",
    "sampler", "pruner", "objective", "profiles", "pretrain", "analysis",
}
ANALYSIS_KEYS = {"margin"}
DATA_KEYS = {"dataset", "modalities", "view", "view_params", "preprocess", "phantom"}
PHANTOM_KEYS = {"patients", "matrix", "seed"}
MODEL_KEYS = {"family", "params", "preset", "weights"}
MODEL_PRESETS = ("paper", "smoke")
TABLE_FIELDS = ("model_params", "view_params", "scheduler_params", "augment")
PREPROCESS_PREFIX = "preprocess"  # search keys ``preprocess.<field>`` set a preprocessing parameter
MODALITIES_KEY = "modalities"  # the search key whose choices are ``+``-joined modality names
PRETRAIN_DEFAULTS: dict[str, Any] = {
    "method": "simclr", "epochs": 10, "batch_size": 64, "lr": 1e-3, "temperature": 0.5, "projection_dim": 128,
    "momentum": 0.99, "modalities": list(MODALITIES),
}
GRAPH_VIEW = "mesh"  # the view graph families read, and only they
INIT_KEY = "init"  # the search key whose choices are initialisations (see the module docstring)
INIT_SCRATCH, INIT_FILE = "scratch", "file"
PRETRAIN_KEYS = {*PRETRAIN_DEFAULTS, "slices"}


def modalities_of(choice: Any) -> tuple[str, ...]:
    """The modalities a ``modalities`` search choice names: ``"FLAIR+T1wCE"`` -> ``("FLAIR", "T1wCE")``."""
    return tuple(str(choice).split("+"))


@dataclass(frozen=True)
class ParamSpec:
    """One search dimension; ``key`` is where the value goes (see the module docstring)."""

    key: str
    type: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] = ()

    @property
    def preprocess_field(self) -> str | None:
        """The preprocessing parameter this dimension sets (``"size"`` for ``preprocess.size``), or
        None for a training-config key."""
        head, _, field_name = self.key.partition(".")
        return field_name if head == PREPROCESS_PREFIX else None

    @property
    def modality_choices(self) -> tuple[tuple[str, ...], ...]:
        """For the ``modalities`` dimension, each choice as the modalities it names
        (``"FLAIR+T1wCE"`` -> ``("FLAIR", "T1wCE")``); empty for any other dimension."""
        if self.key != MODALITIES_KEY:
            return ()
        return tuple(modalities_of(choice) for choice in self.choices)

    def distribution(self) -> Any:
        """The Optuna distribution of this dimension."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.type == "categorical":
            return CategoricalDistribution(list(self.choices))
        if self.type == "int":
            return IntDistribution(int(self.low), int(self.high), step=int(self.step or 1))
        return FloatDistribution(
            float(self.low), float(self.high), log=self.type == "log-float", step=self.step
        )

    def grid_values(self) -> list[Any]:
        """Every value of a categorical or int dimension (for the grid sampler)."""
        if self.type == "categorical":
            return list(self.choices)
        if self.type == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        raise ConfigError(f"search.{self.key}: the grid sampler needs categorical or int dimensions")

    def example(self) -> Any:
        """A value inside the dimension, used to validate the spec before any trial runs."""
        if self.type == "categorical":
            return self.choices[0]
        return int(self.low) if self.type == "int" else float(self.low)


@dataclass(frozen=True)
class StudySpec:
    """A study spec with one profile resolved; ``resolved`` is the merged table it was built from."""

    name: str
    path: Path
    profile: str
    profiles: tuple[str, ...]
    description: str
    n_trials: int
    null_trials: int
    data: dict[str, Any]
    model: dict[str, Any]
    train: dict[str, Any]
    search: tuple[ParamSpec, ...]
    seeds: tuple[int, ...]
    seed_policy: str
    sampler: str
    sampler_settings: dict[str, Any]
    pruner: str
    pruner_settings: dict[str, Any]
    metric: str
    direction: str
    resolved: dict[str, Any] = field(repr=False)
    pretrain: dict[str, Any] = field(default_factory=dict)  # empty: no pretraining
    margin: float = 0.65  # [analysis] margin: the smallest AUC of interest

    @property
    def spec_hash(self) -> str:
        """sha256 (16 hex) of everything that defines the trials; the target ``n_trials`` and the
        description are left out so a study can be extended to more trials."""
        identity = {k: v for k, v in self.resolved.items() if k not in ("n_trials", "description")}
        identity["profile"] = self.profile
        blob = json.dumps(identity, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @property
    def preprocess(self) -> dict[str, Any]:
        """The ``[data.preprocess]`` table (the preprocessing of trials that search none of it)."""
        return dict(self.data.get("preprocess", {}))

    @property
    def preprocess_search(self) -> tuple[ParamSpec, ...]:
        """The search dimensions that set a preprocessing parameter (each value gets its own cache)."""
        return tuple(p for p in self.search if p.preprocess_field is not None)

    @property
    def modalities_read(self) -> tuple[str, ...]:
        """Every modality a trial may read: ``data.modalities`` then those of a ``modalities`` search."""
        names = list(self.data["modalities"])
        for param in self.search:
            for choice in param.modality_choices:
                names.extend(m for m in choice if m not in names)
        return tuple(names)

    def distributions(self) -> dict[str, Any]:
        """Search key -> Optuna distribution."""
        return {p.key: p.distribution() for p in self.search}

    def train_dict(self, params: dict[str, Any]) -> dict[str, Any]:
        """The ``TrainConfig.from_dict`` input for one point of the search space."""
        from mgmt_audit.models.registry import default_params

        family = params.get("model", self.model["family"])
        config: dict[str, Any] = {
            "model": family,
            "model_params": {
                **default_params(family, self.model.get("preset", "paper")),
                **self.model.get("params", {}),
            },
            "view": self.data["view"],
            "view_params": dict(self.data.get("view_params", {})),
            "modalities": list(self.data["modalities"]),
            **{k: (dict(v) if isinstance(v, dict) else v) for k, v in self.train.items()},
        }
        preprocessing = {p.key for p in self.preprocess_search}
        for key, value in params.items():
            if key in preprocessing or key == INIT_KEY:
                continue
            if key == MODALITIES_KEY:
                config["modalities"] = list(modalities_of(value))
            elif "." in key:
                table, sub = key.split(".", 1)
                config.setdefault(table, {})[sub] = value
            else:
                config[key] = value
        defaults = default_params(family)
        for key, value in config["model_params"].items():
            if isinstance(defaults.get(key), tuple) and isinstance(value, (int, str)):
                config["model_params"][key] = _as_tuple(value, len(defaults[key]))
        return config

    def preprocess_dict(self, params: dict[str, Any]) -> dict[str, Any]:
        """The preprocessing parameters for one point of the search space."""
        values = self.preprocess
        values.update({p.preprocess_field: params[p.key] for p in self.preprocess_search if p.key in params})
        return values

    def init_of(self, params: dict[str, Any]) -> str:
        """The initialisation of one point of the search space: ``"scratch"``, ``"file"`` or an SSL method."""
        if INIT_KEY in params:
            return str(params[INIT_KEY])
        return str(self.pretrain["method"]) if self.pretrain else INIT_SCRATCH

    def pretrain_settings(self, params: dict[str, Any]) -> dict[str, Any]:
        """The ``[pretrain]`` settings of a point whose initialisation is an SSL method."""
        return {**self.pretrain, "method": self.init_of(params)}

    def weights_file(self, family: str) -> str:
        """The local weights file ``[model.weights]`` gives ``family`` (ConfigError when none)."""
        weights = self.model.get("weights", {})
        if family not in weights:
            raise ConfigError(f"{self.path}: init = \"file\" needs model.weights.{family} (a local weights file)")
        return str(weights[family])

    def missing_weights(self) -> list[str]:
        """The ``[model.weights]`` files that do not exist when ``init`` may choose ``"file"`` (paths
        relative to the working directory)."""
        if not any(p.key == INIT_KEY and INIT_FILE in p.choices for p in self.search):
            return []
        return [str(path) for path in self.model.get("weights", {}).values() if not Path(path).is_file()]

    def example_params(self) -> dict[str, Any]:
        return {p.key: p.example() for p in self.search}

    def to_toml(self) -> str:
        """The resolved spec as TOML-like text (for ``study show``)."""
        lines = [f"# {self.path}", f'# profile = "{self.profile}"  (of {", ".join(self.profiles)})', ""]
        _emit_toml(lines, {k: v for k, v in self.resolved.items() if k != "profiles"}, [])
        return "\n".join(lines).rstrip() + "\n"


def _as_tuple(value: int | str, length: int) -> tuple[int, ...]:
    """A searched tuple parameter: ``16`` means (16,) * length and ``"16x16x8"`` means (16, 16, 8)."""
    if isinstance(value, int):
        return (value,) * length
    try:
        return tuple(int(v) for v in value.split("x"))
    except ValueError as exc:
        raise ConfigError(f"{value!r} is not a size like 16x16x8") from exc


def study_dirs() -> list[tuple[Path, str]]:
    """Folders searched for ``<name>.toml``, in order, each with where it came from."""
    dirs = [(Path.cwd() / "studies", "./studies")]
    if os.environ.get(STUDIES_ENV):
        dirs.append((Path(os.environ[STUDIES_ENV]), f"${STUDIES_ENV}"))
    dirs.append((Path(__file__).resolve().parents[2] / "studies", "package source tree"))
    return dirs


def list_studies() -> list[tuple[str, Path, str]]:
    """Every findable spec as (name, path, origin); a name found twice keeps its first folder."""
    found: dict[str, tuple[str, Path, str]] = {}
    for folder, origin in study_dirs():
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                found.setdefault(path.stem, (path.stem, path, origin))
    return sorted(found.values())


def find_study(name: str) -> Path:
    """The spec file for a study name (or a path to a .toml file)."""
    candidate = Path(name)
    if candidate.suffix == ".toml":
        if candidate.is_file():
            return candidate
        raise ConfigError(f"study file {candidate} does not exist")
    for folder, _ in study_dirs():
        if (folder / f"{name}.toml").is_file():
            return folder / f"{name}.toml"
    searched = ", ".join(str(d) for d, _ in study_dirs())
    known = ", ".join(n for n, _, _ in list_studies()) or "none"
    raise ConfigError(f"no study named {name!r} in {searched}; known studies: {known}")


def study_name(argument: str) -> str:
    """The study a command-line study argument names: a spec path (``*.toml``) names the study of that
    file (its file name, which the spec's ``name`` must equal); anything else is the name itself.
    Raises ConfigError when a spec path does not exist."""
    if Path(argument).suffix == ".toml":
        return find_study(argument).stem
    return argument


def load_study(name: str, profile: str | None = None, overrides: dict[str, Any] | None = None) -> StudySpec:
    """Load, merge ``profile`` (default: ``paper``) over the base, then ``overrides`` (tables of the
    same keys, e.g. ``{"train": {"test_fraction": 0.4}}``, recorded in the spec and its hash), and
    validate a study spec."""
    path = find_study(name)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    return parse_study(raw, path, profile, overrides)


def parse_study(raw: dict[str, Any], path: Path, profile: str | None = None,
                overrides: dict[str, Any] | None = None) -> StudySpec:
    """Build a :class:`StudySpec` from a parsed TOML table (see :func:`load_study`)."""
    where = str(path)
    _check_keys(where, "", raw, TOP_KEYS)
    name = raw.get("name", path.stem)
    if name != path.stem:
        raise ConfigError(f"{where}: name = {name!r} must match the file name {path.stem!r}")
    profiles = raw.get("profiles", {})
    _require_table(where, "profiles", profiles)
    for required in ("paper", "smoke"):
        if required not in profiles:
            raise ConfigError(f"{where}: [profiles.{required}] is missing; every study needs paper and smoke")
    profile = profile or "paper"
    if profile not in profiles:
        raise ConfigError(f"{where}: no profile {profile!r}; choose one of {sorted(profiles)}")
    for pname, table in profiles.items():
        _require_table(where, f"profiles.{pname}", table)
        _check_keys(where, f"profiles.{pname}.", table, TOP_KEYS - {"profiles", "name"})
    merged = _merge({k: v for k, v in raw.items() if k != "profiles"}, profiles[profile])
    if overrides:
        _check_keys(where, "overrides.", overrides, TOP_KEYS - {"profiles", "name"})
        merged = _merge(merged, overrides)
    merged["name"] = name
    return _build(where, path, name, profile, tuple(profiles), merged)


def _build(
    where: str, path: Path, name: str, profile: str, profiles: tuple[str, ...], merged: dict[str, Any]
) -> StudySpec:
    key = f"(profile {profile}) "
    description = merged.get("description", "")
    if not isinstance(description, str) or not description.strip():
        raise ConfigError(f"{where}: description must name the experiment of the MGMT paper it reproduces")
    n_trials = _int(where, key + "n_trials", merged.get("n_trials"), minimum=1)
    null_trials = _int(where, key + "null_trials", merged.get("null_trials", 0), minimum=0)
    if null_trials >= n_trials:
        raise ConfigError(f"{where}: {key}null_trials ({null_trials}) must be below n_trials ({n_trials})")

    data = merged.get("data")
    _require_table(where, "data", data)
    _check_keys(where, "data.", data, DATA_KEYS)
    for required in ("dataset", "modalities", "view"):
        if required not in data:
            raise ConfigError(f"{where}: data.{required} is required")
    if not isinstance(data["modalities"], list) or not data["modalities"]:
        raise ConfigError(f"{where}: data.modalities must be a non-empty list, e.g. [\"FLAIR\"]")
    phantom = data.get("phantom", {})
    _require_table(where, "data.phantom", phantom)
    _check_keys(where, "data.phantom.", phantom, PHANTOM_KEYS)
    for pkey, value in phantom.items():
        _int(where, f"data.phantom.{pkey}", value, minimum=0 if pkey == "seed" else 1)
    model = merged.get("model")
    _require_table(where, "model", model)
    _check_keys(where, "model.", model, MODEL_KEYS)
    if not isinstance(model.get("family"), str):
        raise ConfigError(f"{where}: model.family must be a model name, e.g. \"resnet10_3d\"")
    if model.get("preset", "paper") not in MODEL_PRESETS:
        raise ConfigError(f"{where}: model.preset must be one of {list(MODEL_PRESETS)}, got {model['preset']!r}")
    train = merged.get("train", {})
    _require_table(where, "train", train)

    search = tuple(_param(where, k, v) for k, v in merged.get("search", {}).items())
    seeds, policy = _seeds(where, merged.get("seeds", {}))
    sampler, sampler_settings = _named(where, "sampler", merged.get("sampler", {"name": "tpe"}), SAMPLERS)
    pruner, pruner_settings = _named(where, "pruner", merged.get("pruner", {"name": "none"}), PRUNERS)
    if sampler == "grid":
        for param in search:
            try:
                param.grid_values()
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from exc
    objective = merged.get("objective", {})
    _require_table(where, "objective", objective)
    _check_keys(where, "objective.", objective, {"metric", "direction"})
    metric = objective.get("metric", "val_auc")
    if metric not in OBJECTIVES:
        raise ConfigError(f"{where}: objective.metric must be one of {sorted(OBJECTIVES)}, got {metric!r}")
    direction = objective.get("direction", OBJECTIVES[metric])
    if direction != OBJECTIVES[metric]:
        raise ConfigError(f"{where}: objective.direction for {metric} must be {OBJECTIVES[metric]!r}")

    pretrain = _pretrain(where, merged.get("pretrain"), model, search)
    _init(where, model, search, pretrain)
    margin = _margin(where, merged.get("analysis", {}))
    spec = StudySpec(
        name=name, path=path, profile=profile, profiles=profiles, description=description.strip(),
        n_trials=n_trials, null_trials=null_trials, data=data, model=model, train=train,
        search=search, seeds=seeds, seed_policy=policy, sampler=sampler,
        sampler_settings=sampler_settings, pruner=pruner, pruner_settings=pruner_settings,
        metric=metric, direction=direction, resolved=merged, pretrain=pretrain, margin=margin,
    )
    if null_trials > n_trials - null_trials:
        raise ConfigError(
            f"{where}: {key}null_trials ({null_trials}) must be at most n_trials - null_trials "
            f"({n_trials - null_trials}): each null trial is the permuted-label twin of a real trial"
        )
    if not search and n_trials - null_trials > len(seeds):
        raise ConfigError(
            f"{where}: {key}with no [search] there is one configuration, so n_trials - null_trials "
            f"({n_trials - null_trials}) must be at most the number of seeds ({len(seeds)})"
        )
    if policy == "best" and n_trials - null_trials < len(seeds):
        raise ConfigError(
            f"{where}: {key}seeds.policy = 'best' needs n_trials - null_trials >= {len(seeds)} (the seeds)"
        )
    _validate_point(where, key, spec)
    return spec


def _validate_point(where: str, key: str, spec: StudySpec) -> None:
    """Build the training and preprocessing configs of one search point so errors show at load."""
    from mgmt_audit.data.preprocess import PreprocessSpec
    from mgmt_audit.models.registry import family
    from mgmt_audit.train.config import TrainConfig

    params = spec.example_params()
    try:
        families = {spec.model["family"]}
        families |= {c for p in spec.search if p.key == "model" for c in p.choices}
        for name in sorted(families):
            unknown = sorted(set(spec.model.get("params", {})) - set(family(name).defaults))
            if unknown:
                raise ConfigError(f"model.params: {name} has no parameter(s) {unknown}")
            if family(name).graph != (spec.data["view"] == GRAPH_VIEW):
                raise ConfigError(f"data.view: {name} {'needs' if family(name).graph else 'cannot read'} "
                                  f"the {GRAPH_VIEW!r} view (its samples are graphs), got {spec.data['view']!r}")
        TrainConfig.from_dict(spec.train_dict(params))
        PreprocessSpec(**_preprocess_kwargs(spec.preprocess_dict(params)))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {key}{exc}") from exc
    except TypeError as exc:
        raise ConfigError(f"{where}: {key}data.preprocess: {exc}") from exc


def _preprocess_kwargs(values: dict[str, Any]) -> dict[str, Any]:
    """TOML gives ``size`` as an int or [H, W]; PreprocessSpec wants a pair."""
    values = dict(values)
    if isinstance(values.get("size"), int):
        values["size"] = (values["size"], values["size"])
    return values


def preprocess_spec(values: dict[str, Any]) -> Any:
    """A :class:`~mgmt_audit.data.preprocess.PreprocessSpec` from a spec's preprocessing table."""
    from mgmt_audit.data.preprocess import PreprocessSpec

    try:
        return PreprocessSpec(**_preprocess_kwargs(values))
    except TypeError as exc:
        raise ConfigError(f"data.preprocess: {exc}") from exc


def _margin(where: str, table: Any) -> float:
    """``[analysis] margin``: the smallest AUC of interest, in (0.5, 1]."""
    from mgmt_audit.analysis.verdict import DEFAULT_MARGIN

    _require_table(where, "analysis", table)
    _check_keys(where, "analysis.", table, ANALYSIS_KEYS)
    margin = table.get("margin", DEFAULT_MARGIN)
    if not isinstance(margin, (int, float)) or isinstance(margin, bool) or not 0.5 < margin <= 1:
        raise ConfigError(f"{where}: analysis.margin must be an AUC in (0.5, 1], got {margin!r}")
    return float(margin)


def _pretrain(where: str, table: Any, model: dict[str, Any], search: tuple[ParamSpec, ...]) -> dict[str, Any]:
    """The ``[pretrain]`` table with defaults filled in; ``{}`` when the spec has none."""
    from mgmt_audit.models.ssl import METHODS

    if table is None:
        return {}
    _require_table(where, "pretrain", table)
    _check_keys(where, "pretrain.", table, PRETRAIN_KEYS)
    families = {model["family"]} | {c for p in search if p.key == "model" for c in p.choices}
    refused = sorted(f for f in families if not pretrainable(f))
    if refused:
        raise ConfigError(
            f"{where}: [pretrain] trains a 2D encoder that loads into one module, which {refused} "
            f"lack(s); pretrainable families: {[f for f in _families() if pretrainable(f)]}"
        )
    if "encoder_state" in model.get("params", {}):
        raise ConfigError(
            f"{where}: model.params.encoder_state and [pretrain] both set the encoder: keep one of them"
        )
    if "method" in table and any(p.key == INIT_KEY for p in search):
        raise ConfigError(f"{where}: pretrain.method and search.{INIT_KEY} both choose the method: keep one")
    settings = {**PRETRAIN_DEFAULTS, **table}
    if settings["method"] not in METHODS:
        raise ConfigError(f"{where}: pretrain.method must be one of {list(METHODS)}, got {settings['method']!r}")
    momentum = settings["momentum"]
    if not isinstance(momentum, (int, float)) or isinstance(momentum, bool) or not 0 <= momentum < 1:
        raise ConfigError(f"{where}: pretrain.momentum must be a number in [0, 1), got {momentum!r}")
    for key in ("epochs", "projection_dim", *(("slices",) if "slices" in settings else ())):
        _int(where, f"pretrain.{key}", settings[key], minimum=1)
    _int(where, "pretrain.batch_size", settings["batch_size"], minimum=2)
    for key in ("lr", "temperature"):
        value = settings[key]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{where}: pretrain.{key} must be a number > 0, got {value!r}")
    modalities = settings["modalities"]
    if (
        not isinstance(modalities, list) or not modalities or len(set(modalities)) != len(modalities)
        or any(m not in MODALITIES for m in modalities)
    ):
        raise ConfigError(
            f"{where}: pretrain.modalities must be distinct names from {list(MODALITIES)}, got {modalities!r}"
        )
    return settings


def pretrainable(family_name: str) -> bool:
    """Whether a family can start from the project's SSL pretraining: 2D, weights into one module."""
    from mgmt_audit.models.registry import family

    spec = family(family_name)
    return spec.dims == 2 and len(spec.init_into) == 1 and not spec.graph


def _families() -> list[str]:
    from mgmt_audit.models.registry import available

    return available()


def _init(where: str, model: dict[str, Any], search: tuple[ParamSpec, ...], pretrain: dict[str, Any]) -> None:
    """Check a ``search.init`` dimension and ``[model.weights]`` against each other and ``[pretrain]``."""
    from mgmt_audit.models.ssl import METHODS

    weights = model.get("weights", {})
    _require_table(where, "model.weights", weights)
    families = {model["family"]} | {c for p in search if p.key == "model" for c in p.choices}
    for family_name, path in weights.items():
        if family_name not in _families() or not isinstance(path, str) or not path:
            raise ConfigError(f"{where}: model.weights.{family_name} must name a model family and a local "
                              f"weights file (a path), got {path!r}")
    for param in search:
        if param.key != INIT_KEY:
            continue
        allowed = (INIT_SCRATCH, INIT_FILE, *METHODS)
        wrong = [c for c in param.choices if c not in allowed]
        if param.type != "categorical" or wrong:
            raise ConfigError(f"{where}: search.{INIT_KEY} must be categorical with choices from {list(allowed)}, "
                              f"got {list(param.choices) or param.type}")
        if any(c in METHODS for c in param.choices) and not pretrain:
            raise ConfigError(f"{where}: search.{INIT_KEY} chooses SSL methods: add a [pretrain] table")
        missing = sorted(families - set(weights))
        if INIT_FILE in param.choices and missing:
            raise ConfigError(f"{where}: search.{INIT_KEY} chooses \"file\": give model.weights for {missing}")


def _param(where: str, key: str, table: Any) -> ParamSpec:
    label = f"search.{key}"
    _require_table(where, label, table)
    kind = table.get("type")
    if kind not in PARAM_TYPES:
        raise ConfigError(f"{where}: {label}.type must be one of {list(PARAM_TYPES)}, got {kind!r}")
    head = key.split(".", 1)[0]
    if "." in key and head not in (*TABLE_FIELDS, PREPROCESS_PREFIX):
        raise ConfigError(
            f"{where}: {label}: a dotted key must start with one of {[*TABLE_FIELDS, PREPROCESS_PREFIX]}"
        )
    if kind == "categorical":
        _check_keys(where, f"{label}.", table, {"type", "choices"})
        choices = table.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: {label}.choices must be a non-empty list")
        if any(not isinstance(c, (str, int, float, bool)) for c in choices):
            raise ConfigError(f"{where}: {label}.choices must be strings or numbers (join modalities with '+')")
        param = ParamSpec(key, kind, choices=tuple(choices))
        for choice in param.modality_choices:
            if len(set(choice)) != len(choice) or any(m not in MODALITIES for m in choice):
                raise ConfigError(
                    f"{where}: {label}.choices: {'+'.join(choice)!r} must join distinct names from "
                    f"{list(MODALITIES)} with '+', e.g. \"FLAIR+T1wCE\""
                )
        return param
    _check_keys(where, f"{label}.", table, {"type", "low", "high", "step"})
    low, high = table.get("low"), table.get("high")
    if not isinstance(low, (int, float)) or not isinstance(high, (int, float)) or low > high:
        raise ConfigError(f"{where}: {label} needs numbers low <= high, got low={low!r} high={high!r}")
    if kind == "log-float" and low <= 0:
        raise ConfigError(f"{where}: {label}: a log-float needs low > 0, got {low}")
    if kind == "int" and (int(low) != low or int(high) != high):
        raise ConfigError(f"{where}: {label}: an int dimension needs integer low and high")
    step = table.get("step")
    if step is not None and (not isinstance(step, (int, float)) or step <= 0 or kind == "log-float"):
        raise ConfigError(f"{where}: {label}.step must be a positive number (not allowed on log-float)")
    return ParamSpec(key, kind, low=low, high=high, step=step)


def _seeds(where: str, table: Any) -> tuple[tuple[int, ...], str]:
    _require_table(where, "seeds", table)
    _check_keys(where, "seeds.", table, {"count", "start", "values", "policy"})
    policy = table.get("policy", "each")
    if policy not in SEED_POLICIES:
        raise ConfigError(f"{where}: seeds.policy must be one of {list(SEED_POLICIES)}, got {policy!r}")
    if "values" in table:
        values = table["values"]
        if (
            not isinstance(values, list) or not values
            or any(not isinstance(v, int) or isinstance(v, bool) for v in values)
            or len(set(values)) != len(values)
        ):
            raise ConfigError(f"{where}: seeds.values must be a non-empty list of distinct integers")
        return tuple(values), policy
    count = _int(where, "seeds.count", table.get("count", 1), minimum=1)
    start = _int(where, "seeds.start", table.get("start", 0), minimum=0)
    return tuple(range(start, start + count)), policy


def _named(where: str, section: str, table: Any, known: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """A sampler or pruner: its name and the keyword arguments of its Optuna class."""
    import optuna

    _require_table(where, section, table)
    name = table.get("name")
    if name not in known:
        raise ConfigError(f"{where}: {section}.name must be one of {sorted(known)}, got {name!r}")
    settings = {k: v for k, v in table.items() if k != "name"}
    module = optuna.samplers if section == "sampler" else optuna.pruners
    accepted = set(inspect.signature(getattr(module, known[name])).parameters) - {"search_space"}
    unknown = sorted(set(settings) - accepted)
    if unknown:
        raise ConfigError(
            f"{where}: {section} {name!r} has no setting(s) {unknown}; valid: {sorted(accepted)}"
        )
    return name, settings


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Tables merge key by key; any other value in ``override`` replaces the base's."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _check_keys(where: str, prefix: str, table: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {[prefix + k for k in unknown]}; valid: {sorted(prefix + a for a in allowed)}"
        )


def _require_table(where: str, key: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{key}] must be a table, got {type(value).__name__}")


def _int(where: str, key: str, value: Any, *, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{where}: {key} must be an integer >= {minimum}, got {value!r}")
    return value


def _emit_toml(lines: list[str], table: dict[str, Any], path: list[str]) -> None:
    """Write a nested dict as TOML: scalars first, then sub-tables (hand-written: no TOML writer in
    the standard library and the output is for reading, not round-tripping)."""
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    if path and scalars:
        lines.append(f"[{'.'.join(_toml_key(p) for p in path)}]")
    for key, value in scalars.items():
        lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    if scalars:
        lines.append("")
    for key, value in tables.items():
        _emit_toml(lines, value, [*path, key])


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if "\n" in value:
            return '"""\n' + value.strip() + '\n"""'
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)
