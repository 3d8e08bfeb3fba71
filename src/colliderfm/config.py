"""Typed configuration: dataclasses for every section, YAML load/merge, ``--set a.b=c`` overrides.

Unknown keys, wrong types and out-of-range values raise :class:`ConfigError` naming the key and,
where there is a fixed set, the valid choices -- before any work starts. Every number anywhere in
a config (``objective.params`` and its nested mappings included) must be finite: NaN is always
rejected, and infinity too unless a field's metadata says ``{"inf": True}`` (none does today).
A config file must be a readable, UTF-8, non-empty YAML mapping of sections; errors in the file
name the file.
"""

from __future__ import annotations

import dataclasses
import errno
import math
import os
import re
import stat
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from colliderfm.errors import ConfigError


def _choices(*values: str) -> dict[str, Any]:
    return {"choices": values}


def _range(lo: float | None = None, hi: float | None = None) -> dict[str, Any]:
    return {"range": (lo, hi)}


def _pattern(regex: str, shown: str) -> dict[str, Any]:
    return {"pattern": (regex, shown)}


#: largest seed every RNG in use accepts (NumPy, torch and Python all take [0, 2**32 - 1])
SEED_MAX = 2**32 - 1


@dataclass
class DataConfig:
    """Where the data is and how it is turned into model inputs."""

    train: str | None = None
    val: str | None = None
    test: str | None = None
    max_particles: int = field(default=128, metadata=_range(1, 4096))
    features: str = field(default="part", metadata=_choices("part", "kinematic", "event"))
    shuffle_buffer: int = field(default=20_000, metadata=_range(1, None))
    trim_padding: bool = True

    @property
    def unit(self) -> str:
        """What one example is, for messages: ``events`` (``features: event``) or ``jets``."""
        return "events" if self.features == "event" else "jets"


@dataclass
class ModelConfig:
    """Backbone choice: a registered name, a size preset, optional size overrides."""

    name: str = "part"
    preset: str = field(default="small", metadata=_choices("tiny", "small", "base"))
    embed_dim: int | None = field(default=None, metadata=_range(1, None))
    depth: int | None = field(default=None, metadata=_range(0, None))
    num_heads: int | None = field(default=None, metadata=_range(1, None))
    pair_features: bool | None = None
    pooling: str | None = field(default=None, metadata=_choices("cls", "mean"))
    dropout: float | None = field(default=None, metadata=_range(0.0, 1.0))
    normformer: bool | None = None
    init: str | None = field(default=None, metadata=_choices("auto", "normal", "xavier"))


@dataclass
class ObjectiveConfig:
    """Pretraining recipe (``none`` for supervised) and its settings (validated by the recipe)."""

    name: str = "none"
    params: dict[str, Any] = field(default_factory=dict)
    probe_data: str | None = None
    probe_every: int | None = field(default=None, metadata=_range(1, None))
    probe_n: int = field(default=4000, metadata=_range(20, None))


@dataclass
class FinetuneConfig:
    """How a (possibly pretrained) backbone is adapted to a labelled task.

    ``mode: linear`` is a converged linear probe, not a training loop
    (:mod:`colliderfm.finetune.probe`): logistic regression on the frozen backbone's embeddings
    (standardised), fitted with L-BFGS for each L2 strength of ``probe_l2`` (penalty
    ``l2 * ||W||^2`` on the mean cross-entropy; default ``0`` and ``1e-8 .. 1e1``, log-spaced:
    ``0`` is unregularised and on separable data stops at ``probe_max_iter``; the embeddings of
    random and pretrained backbones alike are nearly collinear, so with 1e4 labels the best
    strengths were <= 1e-6) until converged or ``probe_max_iter``
    iterations; the strength with the best validation AUC is kept (without ``data.val``:
    ``1e-3``, or the grid's value when it holds one). The ``train`` section's steps, epochs,
    optimizer and early stopping do not apply to it.

    ``frozen_pooling`` (modes ``frozen`` and ``linear``): ``auto`` pools the tokens of a
    backbone whose pretraining never trained its class-attention pooling (MPM; masked object-id
    without pooled kinematics) by their masked mean, since that pooling is still random;
    ``mean`` always, ``keep`` never; ``best`` (mode ``linear``) fits the probe on the backbone's
    own pooling and on the token mean and keeps the better on validation AUC (see
    :func:`colliderfm.finetune.classifier.frozen_pooling`).

    ``signal_class``: the class whose score is tested (AUC, rejection, SIC against class 0): an
    index into the training data's classes, or a class name such as ``Tbqq``, which means the
    same class whatever the input format (our shards number top vs QCD 0-1, JetClass files
    number all ten classes; see :func:`signal_index`).
    """

    init: str = "none"
    mode: str = field(default="full", metadata=_choices("full", "frozen", "linear", "lp-ft"))
    n_train: int | None = field(default=None, metadata=_range(1, None))
    backbone_lr_mult: float = field(default=1.0, metadata=_range(0.0, None))
    head_lr_mult: float = field(default=1.0, metadata=_range(0.0, None))
    signal_class: int | str = 1
    lp_fraction: float = field(default=0.3, metadata=_range(0.0, 1.0))
    probe_l2: list[float] = field(
        default_factory=lambda: [0.0, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0],
        metadata={**_range(0.0, None), "min_items": 1},
    )
    probe_max_iter: int = field(default=1000, metadata=_range(1, None))
    frozen_pooling: str = field(default="auto", metadata=_choices("auto", "keep", "mean", "best"))
    cwola: bool = False
    cwola_fractions: list[float] = field(default_factory=lambda: [0.7, 0.3])
    cwola_samples: list[str] | None = None


@dataclass
class TrainConfig:
    """The training loop's settings (shared by every recipe).

    ``optimizer``: ``adamw`` (decoupled weight decay) or ``sgd`` (momentum ``momentum``, classic L2
    weight decay); both skip decay on biases and norms. The learning rate warms up linearly over
    ``warmup`` (a fraction of the steps if < 1, else steps), then follows a cosine from ``lr``
    down to ``min_lr`` at the last step.

    ``compile``: ``torch.compile`` the backbone (``dynamic=True``, in place, so checkpoints are
    unchanged). Off by default: on the 2-core CPU it made a ``small`` training step 1.18x faster
    but cost ~12 minutes of compilation per process (``benchmarks/bench_compile.py``), which
    pays off only after a few thousand steps.

    ``device``: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or
    ``mps``; a device this machine lacks is refused before any work
    (:func:`colliderfm.runtime.resolve_device`). ``precision``: ``fp32`` (TF32 matmuls on
    CUDA), ``bf16`` autocast (CPU and CUDA) or ``fp16`` autocast with a gradient scaler (CUDA
    only).

    ``stop_at_step``: pause the run once this many optimizer steps are done (counted from the
    run's start, across resumes): the resumable state is saved as for an interruption and the
    run reports ``paused``; ``--resume`` continues it, possibly on new data (a pretraining set
    made of seeded chunks, one per resumed run: the learning-rate schedule runs over the whole
    ``max_steps``; with data other than the state's, no batches are replayed, and a later
    resume on that data replays only the batches drawn from it).
    """

    epochs: int = field(default=10, metadata=_range(1, None))
    max_steps: int | None = field(default=None, metadata=_range(1, None))
    stop_at_step: int | None = field(default=None, metadata=_range(1, None))
    steps_per_epoch: int | None = field(default=None, metadata=_range(1, None))
    batch_size: int = field(default=256, metadata=_range(1, None))
    optimizer: str = field(default="adamw", metadata=_choices("adamw", "sgd"))
    lr: float = field(default=1e-3, metadata=_range(0.0, None))
    min_lr: float = field(default=0.0, metadata=_range(0.0, None))
    momentum: float = field(default=0.9, metadata=_range(0.0, 1.0))
    weight_decay: float = field(default=0.01, metadata=_range(0.0, None))
    warmup: float = field(default=0.05, metadata=_range(0.0, None))
    grad_clip: float | None = field(default=1.0, metadata=_range(0.0, None))
    seed: int = field(default=0, metadata=_range(0, SEED_MAX))
    precision: str = field(default="fp32", metadata=_choices("fp32", "bf16", "fp16"))
    device: str = field(
        default="auto",
        metadata=_pattern(r"auto|cpu|mps|cuda(:\d+)?", "auto, cpu, cuda, cuda:N, mps"),
    )
    workers: int = field(default=0, metadata=_range(0, 64))
    early_stopping: str | None = field(default=None, metadata=_choices("val_auc", "val_loss"))
    patience: int = field(default=3, metadata=_range(1, None))
    val_max: int | None = field(default=20_000, metadata=_range(1, None))
    log_every: int = field(default=20, metadata=_range(1, None))
    checkpoint_every: int | None = field(default=None, metadata=_range(1, None))
    threads: int | None = field(default=None, metadata=_range(1, 1024))
    compile: bool = False


@dataclass
class Config:
    """The full, resolved configuration of a run (saved inside every checkpoint)."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML-serialisable).

        Returns:
            The config as a dict.
        """
        return dataclasses.asdict(self)


def _type_ok(value: Any, tp: Any) -> tuple[bool, Any]:
    """Check (and lightly coerce) ``value`` against a type hint."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return True, None
        for a in args:
            if a is type(None):
                continue
            ok, v = _type_ok(value, a)
            if ok:
                return True, v
        return False, value
    if tp is Any:
        return True, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        if isinstance(value, str):  # YAML 1.1 reads '3e-4' as a string
            try:
                return True, float(value)
            except ValueError:
                return False, value
        return False, value
    if tp is str:
        return isinstance(value, str), value
    if origin is dict or tp is dict:
        return isinstance(value, dict), value
    if origin is list or tp is list:
        if not isinstance(value, list):
            return False, value
        (item,) = typing.get_args(tp) or (Any,)
        items = []
        for v in value:  # list[float] holds floats, list[str] strings, ...
            ok, v = _type_ok(v, item)
            if not ok:
                return False, value
            items.append(v)
        return True, items
    return isinstance(value, tp), value


def _non_finite(value: Any, allow_inf: bool = False) -> tuple[str, float] | None:
    """The first NaN (or, unless allowed, infinite) number inside a value, with where it is.

    Args:
        value: a config value (numbers, strings, lists and mappings nested in any way).
        allow_inf: accept +-inf (NaN never is).

    Returns:
        (key suffix such as ``".augment.smear.p"`` or ``"[1]"``, the number), or None.
    """
    if isinstance(value, float):
        bad = math.isnan(value) or (math.isinf(value) and not allow_inf)
        return ("", value) if bad else None
    if isinstance(value, dict):
        pairs: Any = ((f".{k}", v) for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        pairs = ((f"[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for where, v in pairs:
        found = _non_finite(v, allow_inf)
        if found is not None:
            return where + found[0], found[1]
    return None


def _type_name(tp: Any) -> str:
    return str(tp).replace("typing.", "").replace("<class '", "").replace("'>", "")


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"config section '{prefix}' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fmap = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if key not in fmap:
            valid = ", ".join(sorted(fmap))
            raise ConfigError(f"unknown config key '{name}' (valid keys: {valid})")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if value is None:
                raise ConfigError(
                    f"config section '{name}' is empty (null): give it keys or leave it out"
                )
            kwargs[key] = _build(tp, value, name)  # type: ignore[arg-type]
            continue
        ok, value = _type_ok(value, tp)
        if not ok:
            raise ConfigError(f"config key '{name}' must be {_type_name(tp)}, got {value!r}")
        meta = fmap[key].metadata
        bad = _non_finite(value, allow_inf=bool(meta.get("inf")))
        if bad is not None:
            raise ConfigError(
                f"config key '{name}{bad[0]}' = {bad[1]} is not a finite number "
                "(NaN and infinity are not allowed)"
            )
        if value is not None and "choices" in meta and value not in meta["choices"]:
            raise ConfigError(
                f"config key '{name}' = {value!r} is not one of "
                f"{', '.join(map(str, meta['choices']))}"
            )
        if value is not None and "pattern" in meta:
            regex, shown = meta["pattern"]
            if not re.fullmatch(regex, str(value)):
                raise ConfigError(f"config key '{name}' = {value!r} is not one of {shown}")
        if isinstance(value, list) and len(value) < meta.get("min_items", 0):
            raise ConfigError(
                f"config key '{name}' needs at least {meta['min_items']} value(s), got {value!r}"
            )
        if value is not None and "range" in meta:
            lo, hi = meta["range"]
            # a list's range applies to each of its items
            items = enumerate(value) if isinstance(value, list) else [(None, value)]
            for i, v in items:
                if (lo is not None and v < lo) or (hi is not None and v > hi):
                    where = name if i is None else f"{name}[{i}]"
                    raise ConfigError(
                        f"config key '{where}' = {v!r} is out of range "
                        f"[{lo if lo is not None else '-inf'}, "
                        f"{hi if hi is not None else 'inf'}]"
                    )
        kwargs[key] = value
    return cls(**kwargs)


def _merge(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "params":
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def path_problem(path: str | Path, directory_ok: bool = False) -> str | None:
    """What stops ``path`` from being read as a regular file (or, if allowed, a directory).

    Distinguishes what ``Path.exists()`` and ``is_file()`` lump together: a missing path, a broken
    symbolic link, a symbolic link loop, a directory, a FIFO, a socket or a device, and a file or
    directory this process may not read.

    Args:
        path: any path.
        directory_ok: a (listable) directory is fine too.

    Returns:
        The problem as a phrase for ``"<path>: <problem>"`` (e.g. ``"symbolic link loop"``), or
        None when the path can be read.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop (the link leads back to itself)"
        if exc.errno == errno.ENOENT:
            if path.is_symlink():
                return f"broken symbolic link (its target {os.readlink(path)} does not exist)"
            return "no such file or directory"
        if exc.errno == errno.ENOTDIR:
            return "no such file or directory (a part of the path is a file, not a directory)"
        if exc.errno == errno.EACCES:
            return "permission denied (a directory on the path is not accessible)"
        return f"cannot access it ({exc.strerror or exc})"
    if stat.S_ISDIR(st.st_mode):
        if not directory_ok:
            return "is a directory, not a file"
        if not os.access(path, os.R_OK | os.X_OK):
            return "permission denied (the directory cannot be listed)"
        return None
    if not stat.S_ISREG(st.st_mode):
        kinds = [
            (stat.S_ISFIFO, "a named pipe (FIFO)"),
            (stat.S_ISSOCK, "a socket"),
            (stat.S_ISCHR, "a character device"),
            (stat.S_ISBLK, "a block device"),
        ]
        kind = next((name for test, name in kinds if test(st.st_mode)), "a special file")
        return f"is {kind}, not a regular file"
    if not os.access(path, os.R_OK):
        return "permission denied (the file is not readable)"
    return None


#: a config larger than this is not a config (e.g. a data file given as ``--config``)
CONFIG_MAX_BYTES = 10 * 1024 * 1024


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last
    silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, typing.Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_config_file(path: str | Path, what: str = "config") -> dict[str, Any]:
    """Read a YAML config file into a mapping, or fail with one line naming the file.

    Args:
        path: the YAML file.
        what: how messages call it (``"config"``, ``"study config"``).

    Returns:
        The file's top-level mapping.

    Raises:
        ConfigError: the path is missing or not a readable regular file (a directory, a FIFO, a
            symbolic link loop, ...), or the file is too large, not UTF-8 text, not valid YAML
            (also: a key given twice), empty, or not a mapping at the top level.
    """
    p = Path(path)
    problem = path_problem(p)
    if problem == "no such file or directory":
        raise ConfigError(f"{p}: {what} file not found")
    if problem is not None:
        raise ConfigError(f"{p}: {problem}; expected a YAML {what} file")
    size = p.stat().st_size
    if size > CONFIG_MAX_BYTES:
        raise ConfigError(
            f"{p}: {size / 2**20:.0f} MiB is too large for a YAML {what} file (is it a data file?)"
        )
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{p}: not UTF-8 text (byte {exc.start} is 0x{raw[exc.start]:02x}); a {what} file "
            "is YAML text"
        ) from exc
    try:
        loaded = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None)
        why = f": {problem}" if isinstance(problem, str) and "given twice" in problem else ""
        raise ConfigError(f"{p}: not valid YAML{where}{why}") from exc
    if loaded is None:
        raise ConfigError(
            f"{p}: the {what} file is empty (expected a mapping of sections such as 'train:')"
        )
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"{p}: a {what} must be a mapping of sections (key: value lines), "
            f"got a YAML {type(loaded).__name__}"
        )
    return loaded


def parse_override(item: str) -> tuple[list[str], Any]:
    """Parse one ``section.key=value`` override; the value is read as YAML.

    Args:
        item: the override text.

    Returns:
        (key path, value).
    """
    if "=" not in item:
        raise ConfigError(f"override '{item}' must look like section.key=value")
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if len(parts) < 2:
        raise ConfigError(f"override '{item}' must name a section and a key (e.g. train.lr=1e-3)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return parts, value


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    base: dict[str, Any] | None = None,
) -> Config:
    """Load a YAML config, apply ``--set`` overrides, and validate everything.

    Args:
        path: YAML file (None: defaults only).
        overrides: ``section.key=value`` strings, applied in order.
        base: dict merged under the file (e.g. a checkpoint's saved config).

    Returns:
        The validated :class:`Config`.
    """
    data: dict[str, Any] = dict(base or {})
    if path is not None:
        p = Path(path)
        loaded = read_config_file(p)
        try:  # the file's own keys first, so that its mistakes name it
            _build(Config, loaded, "")
        except ConfigError as exc:
            raise ConfigError(f"{p}: {exc}") from exc
        data = _merge(data, loaded)
    for item in overrides or []:
        parts, value = parse_override(item)
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}': '{part}' is not a section")
        node[parts[-1]] = value
    return _build(Config, data, "")


def config_from_dict(data: dict[str, Any]) -> Config:
    """Validate a nested dict (e.g. from a checkpoint's ``config.yaml``).

    Args:
        data: nested mapping.

    Returns:
        The validated :class:`Config`.
    """
    return _build(Config, data, "")


def dump_config(cfg: Config) -> str:
    """Serialise a config to YAML text.

    Args:
        cfg: the config.

    Returns:
        YAML text.
    """
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def signal_index(signal_class: int | str, classes: list[str], where: str = "finetune") -> int:
    """The index in ``classes`` of ``finetune.signal_class`` (an index or a class name).

    Args:
        signal_class: the configured value.
        classes: the task's class names (label ``i`` means ``classes[i]``).
        where: the config section named in errors.

    Returns:
        The index.

    Raises:
        ConfigError: a name not in ``classes``, or an index out of range.
    """
    key = f"config key '{where}.signal_class'"
    if isinstance(signal_class, str):
        if signal_class in classes:
            return classes.index(signal_class)
        if signal_class.isdigit():
            signal_class = int(signal_class)
        else:
            raise ConfigError(f"{key} = {signal_class!r} is not one of the classes {classes}")
    if not 0 <= signal_class < len(classes):
        raise ConfigError(
            f"{key} = {signal_class} is out of range for the {len(classes)} classes {classes}"
        )
    return int(signal_class)
