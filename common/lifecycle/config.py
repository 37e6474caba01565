"""Frozen dataclass configs, named presets and `--key=value` command-line overrides.

Each paper defines one frozen dataclass whose fields are declared with `param(default, "comment")`;
the comment cites the paper and is what `--help` prints. Presets are named sets of overrides:
`paper` (the default, the paper's recipe) is always the dataclass defaults; others live in the
paper's `PRESETS` dict, which is passed explicitly to every function here that needs it. A command
line is `[--preset=NAME] [--key=value ...]` (or `--key value`), applied in that order.

A field whose paper value depends on other fields (a WGAN variant's learning rate, ResNet-110's
warm-up) defaults to a sentinel ("auto", 0 or -1, documented in its comment); the config's
`automatic()` gives the values those sentinels stand for, and they are filled in once, when the
config is made. `config.chosen_automatically` names them, and the results record keeps that list.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import math
import sys
import typing
from dataclasses import dataclass, field

from common.errors import UserError, check_choice, one_line

PAPER_PRESET = "paper"
# Presets that only check the plumbing: their runs never appear in the top-level README's table.
PLUMBING_PRESETS = ("smoke",)
JIT_CHOICES = {"auto": "auto", "true": True, "false": False}
DISTRIBUTE_CHOICES = ("none", "data_parallel", "auto")


def param(default, help: str, *, low=0, above=None, high=None, below=None, choices: tuple | None = None,
          distinct: int | None = None):
    """A config field with its one-line comment (shown by `--help`) and, for numbers (and tuples of them),
    the range of valid values: at least `low` (0 unless given; None for no bound), greater than `above`,
    at most `high`, less than `below`; or, for any value, the `choices` it (each item of a tuple) must be one
    of; for a tuple, `distinct=n`: at least n items, none repeated (a list to choose from or to go through).
    A value outside them is refused when the config is made (parse time: one line and exit status 2), from
    `RunConfig.validate`."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("config defaults must be immutable; use a tuple")
    bounds = {"low": low, "above": above, "high": high, "below": below}
    return field(default=default, metadata={"help": help, "bounds": bounds, "distinct": distinct,
                                            "choices": tuple(choices) if choices is not None else None})


def _range_text(bounds: dict) -> str:
    parts = []
    if bounds["above"] is not None:
        parts.append(f"> {bounds['above']:g}")
    elif bounds["low"] is not None:
        parts.append(f">= {bounds['low']:g}")
    if bounds["below"] is not None:
        parts.append(f"< {bounds['below']:g}")
    elif bounds["high"] is not None:
        parts.append(f"<= {bounds['high']:g}")
    return " and ".join(parts)


def _in_range(value, bounds: dict) -> bool:
    low, above, high, below = (bounds[k] for k in ("low", "above", "high", "below"))
    return ((low is None or value >= low) and (above is None or value > above)
            and (high is None or value <= high) and (below is None or value < below))


# Fields that decide where files go, not what is computed; left out of the config hash so that a
# run resumes (or is compared) whatever directory it was pointed at.
# The placement fields too: a run may resume on another number of devices (its sessions record each placement);
# and tf.data's autotuning, which changes when batches are made, not what they hold.
_LOCATION_FIELDS = {"data_dir", "download", "results_dir", "runs_dir", "tensorboard", "repeat", "verify_data",
                    "distribute", "coordinator", "num_processes", "process_id", "tf_data_autotune"}


@dataclass(frozen=True)
class RunConfig:
    """Fields every paper's config shares: where things go and how a run is made reproducible."""

    # Overriding these does not change the recipe (see run_label); a paper adds its variant fields.
    RECIPE_NEUTRAL: typing.ClassVar[frozenset] = frozenset(
        _LOCATION_FIELDS | {"seed", "jit_compile", "fused_batchnorm"})
    # Why this paper trains on one device whatever the backend, or "" (see common.lifecycle.distribute).
    ONE_DEVICE_ONLY: typing.ClassVar[str] = ""
    # Fields added after runs were recorded, with their defaults: hashed only when they leave them, so that those
    # runs keep their hash (config_hash); a paper adds its own.
    HASHED_UNLESS_DEFAULT: typing.ClassVar[dict] = {"sync_batchnorm": True, "fused_batchnorm": True}
    # Fields renamed after runs were recorded, {old name: new name}: the old name still works on the command line
    # and in presets (a relayed run's command), and the hash is taken under the old name, so those runs keep
    # their hash (config_hash); a paper adds its own.
    RENAMED: typing.ClassVar[dict] = {}

    seed: int = param(0, "seed for Python, NumPy and Keras (one call, common.lifecycle.repro.seed_everything)")
    data_dir: str = param("", "data directory; empty: $KPB_DATA_DIR, else ~/.keras/datasets")
    download: bool = param(True, "download missing data from the canonical source (verified by checksum)")
    results_dir: str = param("results", "where the finished run's JSON is written (results/<paper>/)")
    runs_dir: str = param("runs", "working files: checkpoints for resume, CSV history, TensorBoard")
    tensorboard: bool = param(False, "also write TensorBoard logs to the run directory")
    verify_data: bool = param(True, "check the data against the publisher's checksums (off only for synthetic test "
                                    "fixtures; a run records whether its data was verified)")
    repeat: bool = param(False, "run a configuration whose run already finished again (recorded as a repeat of "
                                "it, never averaged as another seed)")
    jit_compile: str = param("auto", "XLA compilation of the train step: auto, true or false", choices=JIT_CHOICES)
    distribute: str = param("auto", "none (one device), data_parallel (every visible device; the paper's batch split "
                                    "over them) or auto (data parallel when several accelerators or hosts take part)",
                                 choices=DISTRIBUTE_CHOICES)
    sync_batchnorm: bool = param(True, "with data parallel on TensorFlow, batch-norm statistics over the global batch "
                                       "as on one device (false: each replica's share, a recipe change); JAX always "
                                       "uses the global batch")
    fused_batchnorm: bool = param(True, "on TensorFlow, train batch normalisation with the fused kernel (faster; "
                                        "equal to Keras' composed ops up to float rounding; false: Keras' ops)")
    tf_data_autotune: bool = param(False, "on TensorFlow, let tf.data autotune the pipelines Keras builds for "
                                          "fit, evaluate and predict (its model thread can stall each new epoch, "
                                          "evaluation and prediction for seconds; no effect on the numbers)")
    coordinator: str = param("", "several hosts (JAX): process 0's HOST:PORT; empty: $KERAS_DISTRIBUTION_JOB_ADDRESSES")
    num_processes: int = param(0, "several hosts (JAX): how many processes take part; 0: "
                                  "$KERAS_DISTRIBUTION_NUM_PROCESSES, else 1")
    process_id: int = param(-1, "several hosts (JAX): this process's index, 0 the chief; -1: "
                                "$KERAS_DISTRIBUTION_PROCESS_ID, else 0", low=-1)

    def __post_init__(self):
        chosen = self.automatic()
        for name, value in chosen.items():
            object.__setattr__(self, name, value)  # frozen: the documented way to set a field in __post_init__
        object.__setattr__(self, "chosen_automatically", tuple(sorted(chosen)))

    def automatic(self) -> dict:
        """{field: value} for the fields left at their "auto" sentinel. Override in a paper's config."""
        return {}

    def validate(self) -> None:
        """Checks shared by every paper (every number in its declared range; see `param`); a paper's
        `validate` calls `super().validate()` first."""
        for f in dataclasses.fields(self):
            choices, value = f.metadata.get("choices"), getattr(self, f.name)
            if choices is None:
                continue
            if not isinstance(value, tuple):
                check_choice(f"--{f.name}", value, choices, ConfigError)
            if isinstance(value, tuple) and not set(value) <= set(choices):
                raise ConfigError(f"--{f.name}={_show(value)}: each must be one of {', '.join(map(str, choices))}")
        for f in dataclasses.fields(self):
            least, value = f.metadata.get("distinct"), getattr(self, f.name)
            if least is not None and (len(value) < least or len(set(value)) != len(value)):
                raise ConfigError(f"--{f.name}={_show(value)}: give at least {least} value{'s' * (least > 1)}, "
                                  f"none repeated")
        for f in dataclasses.fields(self):
            bounds, value = f.metadata.get("bounds"), getattr(self, f.name)
            numbers = value if isinstance(value, tuple) else (value,)
            if bounds is None or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
                continue
            bad = [v for v in numbers if not math.isfinite(v) or not _in_range(v, bounds)]
            if bad:
                raise ConfigError(f"--{f.name}={_show(value)} is out of range: it must be {_range_text(bounds)}")

    @property
    def jit(self):
        """`jit_compile` as `Model.compile` takes it: "auto", True or False."""
        return JIT_CHOICES[self.jit_compile]


class ConfigError(UserError, ValueError):
    """A bad preset, key or value on the command line; the message says what is valid."""


def _field_types(cls) -> dict[str, type]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _convert(name: str, raw: str, typ) -> object:
    if typ not in (bool, int, float, str) and typing.get_origin(typ) is not tuple:
        raise ConfigError(f"--{name}: unsupported field type {typ}")
    try:
        if typ is bool:
            low = raw.strip().lower()
            if low not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ValueError(raw)
            return low in ("1", "true", "yes", "on")
        if typ is float:
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError(raw)
            return value
        if typ in (int, str):
            return typ(raw)
        (item_type, *_rest) = typing.get_args(typ)
        parts = [p.strip() for p in raw.strip("()").split(",") if p.strip()]
        return tuple(item_type(p) for p in parts)
    except ValueError:
        kind = getattr(typ, "__name__", str(typ))
        raise ConfigError(f"--{name}={raw!r} is not a valid {kind}") from None


def _check_keys(cls, keys, where: str) -> None:
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in keys if k not in valid]
    if unknown:
        raise ConfigError(f"unknown {where} {', '.join(unknown)}; valid keys are: {', '.join(valid)}")


def _current_names(cls, values: dict) -> dict:
    """`values` with each field's old name (the config's `RENAMED`) replaced by its current one."""
    return {cls.RENAMED.get(k, k): v for k, v in values.items()}


def make_config(cls, presets: dict[str, dict], preset: str = PAPER_PRESET, **overrides):
    """The config for `preset` with `overrides` applied; raises ConfigError on unknown names."""
    if preset != PAPER_PRESET and preset not in presets:
        raise ConfigError(f"unknown preset {preset!r}; choose from: {', '.join([PAPER_PRESET, *presets])}")
    values, overrides = _current_names(cls, presets.get(preset, {})), _current_names(cls, overrides)
    _check_keys(cls, values, f"key in preset {preset!r}:")
    _check_keys(cls, overrides, "config key(s)")
    values.update(overrides)
    config = cls(**values)
    config.validate()
    return config


def parse_args(cls, presets: dict[str, dict], argv: list[str] | None = None, description: str = ""):
    """Parse `[--preset=NAME] [--key=value ...]` into `(preset, config)`; `--help` prints the fields."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a in ("-h", "--help") for a in argv):
        print(help_text(cls, presets, description))
        raise SystemExit(0)
    preset, raw = PAPER_PRESET, {}
    args = iter(argv)
    for arg in args:
        if not arg.startswith("--") or len(arg) < 3:
            raise ConfigError(f"expected --key=value or --key value, got {arg!r} (see --help)")
        if "=" in arg:
            key, value = arg[2:].split("=", 1)
        else:
            key, value = arg[2:], next(args, None)
            if value is None:
                raise ConfigError(f"--{key} needs a value: --{key}=VALUE or --{key} VALUE (see --help)")
        if key == "preset":
            preset = value
        else:
            raw[key] = value
    raw = _current_names(cls, raw)
    _check_keys(cls, raw, "config key(s)")
    types = _field_types(cls)
    overrides = {k: _convert(k, v, types[k]) for k, v in raw.items()}
    config = make_config(cls, presets, preset, **overrides)
    return run_label(cls, presets, preset, config), config


def run_label(cls, presets: dict[str, dict], preset: str, config) -> str:
    """`preset`, or `<preset>-custom` when an override changed the recipe itself, so that a shortened
    or altered run is never reported as the paper's recipe. Fields in the config's `RECIPE_NEUTRAL`
    (seed, variant choice, locations, speed settings) may be overridden freely."""
    return f"{preset}-custom" if _changes(config, presets, preset) else preset


def _changes(config, presets: dict[str, dict], preset: str) -> dict:
    """Recipe fields of `config` that differ from `preset` made with the same recipe-neutral fields
    (so that a field resolved automatically from a neutral one, such as a WGAN variant's learning
    rate, is compared with what that variant's preset gives)."""
    neutral = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name in config.RECIPE_NEUTRAL}
    reference = make_config(type(config), presets, preset, **neutral)
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
            if f.name not in config.RECIPE_NEUTRAL and getattr(config, f.name) != getattr(reference, f.name)}


def command_line(config, presets: dict[str, dict], preset: str) -> list[str]:
    """`--key=value` for every field of `config` that differs from `preset` as made with defaults: with
    `--preset=<preset>` (unless the paper's), the arguments that make this very config."""
    reference = make_config(type(config), presets, preset)
    args = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name not in config.chosen_automatically and value != getattr(reference, f.name):
            args.append(f"--{f.name}={str(value).lower() if isinstance(value, bool) else _show(value)}")
    return args


def recipe_changes(config, presets: dict[str, dict], preset: str) -> dict:
    """The recipe fields in which `config` departs from the preset its label names ("quick" for
    "quick-custom"), with their values: what makes a custom run custom. Empty for a preset's own
    recipe and for labels that name no preset (a benchmark)."""
    base = preset.removesuffix("-custom")
    if base != PAPER_PRESET and base not in presets:
        return {}
    return _changes(config, presets, base)


# Fields every run has that say where files go and how it runs, not what it computes: --help lists them last.
PLUMBING_FIELDS = _LOCATION_FIELDS | {"jit_compile", "sync_batchnorm", "fused_batchnorm"}


def _paper_of(cls) -> str | None:
    """papers.<name>.config -> <name>: the paper whose records --help reads."""
    parts = cls.__module__.split(".")
    return parts[1] if len(parts) == 3 and parts[0] == "papers" else None


def _preset_lines(cls, presets: dict[str, dict], width: int) -> list[str]:
    """One line per preset: whether it is the paper's recipe and, from the records, what its runs of the
    default variant reached and how long they took."""
    paper = _paper_of(cls)
    try:  # the records, where they are (a clone of this repository); the help works without them
        from common import report

        rows = report.preset_rows(paper) if paper else {}
    except Exception:  # noqa: BLE001  (a damaged record must not break --help)
        rows = {}
    lines = []
    for name in [PAPER_PRESET, *presets]:
        variant = getattr(make_config(cls, presets, name), "variant", None)
        row = rows.get((variant, name))
        label = row["recipe"] if row else "the paper's recipe" if name == PAPER_PRESET else "not the paper's recipe"
        if name in PLUMBING_PRESETS:
            reached = "checks the plumbing; its numbers mean nothing"
        elif row is None or row["ours"] in ("not run yet", "no data"):
            reached = "not run yet"
        else:
            runs = "run" if row["n"] == "1" else "runs"
            reached = (f"{variant}: {row['metric']} {row['ours']} over {row['n']} {runs}, "
                       + ", ".join(f"{wall} a run ({device})" for device, wall, _ in row["took"]))
        lines.append(f"  {name + (' (default)' if name == PAPER_PRESET else ''):<{width}} {label}; {reached}")
        if name in presets:
            lines.append(" " * (width + 3) + " ".join(f"--{k}={_show(v)}" for k, v in presets[name].items()))
    return lines


def help_text(cls, presets: dict[str, dict], description: str = "") -> str:
    """--help: what the program is, its presets (what each reached, from the records), the paper's fields,
    then the fields that say where files go and how it runs."""
    types = _field_types(cls)
    paper = _paper_of(cls)
    program = f"python papers/{paper}/train.py" if paper else "train.py"
    lines = [description.strip(), "", f"usage: {program} [--preset NAME] [--key value ...]   (or --key=value)", "",
             "presets (REPORT.md has every run):"]
    lines += _preset_lines(cls, presets, 16)
    fields = dataclasses.fields(cls)

    def show(f):
        typ = getattr(types[f.name], "__name__", str(types[f.name]))
        choices = f.metadata.get("choices")
        typ += f": {' | '.join(map(str, choices))}" if choices else ""
        least = f.metadata.get("distinct")
        typ += f", {least}+ distinct" if least else ""
        was = [old for old, new in cls.RENAMED.items() if new == f.name]
        formerly = f" (formerly --{', --'.join(was)})" if was else ""
        return f"  --{f.name}={_show(f.default)}  [{typ}]  {f.metadata.get('help', '')}{formerly}"

    lines += ["", "the paper's fields (default; comment):", *(show(f) for f in fields if f.name not in PLUMBING_FIELDS),
              "", "where files go and how it runs:", *(show(f) for f in fields if f.name in PLUMBING_FIELDS)]
    return "\n".join(lines)


def _show(value) -> str:
    """A value as the command line writes it (a tuple comma-separated)."""
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def to_dict(config) -> dict:
    """A config dataclass as a plain dict (tuples as lists); a dict (a stored record's config) as a copy."""
    if isinstance(config, dict):
        return dict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


def config_hash(config) -> str:
    """A short stable hash of the fields that change the computation (not a field of the config's
    `HASHED_UNLESS_DEFAULT` at its default; a field of its `RENAMED` under its old name). Of a config
    object: a stored record's config (a dict) does not say its class, so its hash is the record's
    `config_hash`, not this."""
    later = getattr(config, "HASHED_UNLESS_DEFAULT", {})
    old_name = {new: old for old, new in getattr(config, "RENAMED", {}).items()}
    relevant = {old_name.get(k, k): v for k, v in to_dict(config).items() if k not in _LOCATION_FIELDS
                and not (k in later and v == later[k])}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:8]


def run_dir_name(config, preset: str) -> str:
    """The name of a run's working folder under `<runs_dir>/<paper>/` (checkpoints, history, clock; what
    `common.relay` packs): variant, preset label, seed and `config_hash`, so that the same command finds it
    again and a different computation never does."""
    return f"{config.variant}-{preset}-seed{config.seed}-{config_hash(config)}"


def command_config(paper: str, args: list[str]):
    """(preset label, config) that `papers/<paper>/train.py ARGS` runs, from its config module
    (`papers/<paper>/config.py`: one `RunConfig` class and its `PRESETS`); None for a paper without one."""
    try:
        module = importlib.import_module(f"papers.{paper}.config")
    except ModuleNotFoundError as e:
        if e.name not in (f"papers.{paper}", f"papers.{paper}.config"):
            raise
        return None
    (cls,) = [v for v in vars(module).values()
              if isinstance(v, type) and issubclass(v, RunConfig) and v.__module__ == module.__name__]
    return parse_args(cls, module.PRESETS, args)


def command_run_dir(paper: str, args: list[str]) -> str | None:
    """The working folder `papers/<paper>/train.py ARGS` trains in (`run_dir_name`)."""
    made = command_config(paper, args)
    return run_dir_name(made[1], made[0]) if made else None


@one_line
def cli_main(cls, presets, train, argv=None, description: str = "") -> int:
    """Entry point for a paper's train.py: parse, then `train(config, preset=...)`. A user's mistake
    (`common.errors.UserError`: a bad value, a missing or corrupt file, a run directory in use) ends
    in one line on stderr and exit status 2, before or during the run."""
    preset, config = parse_args(cls, presets, argv, description)
    return train(config, preset=preset)
