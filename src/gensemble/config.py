"""Frozen, typed configs: strict parsing from YAML dicts, `--set key=value` overrides, and YAML out.

Every component owns its own dataclass; this module only knows how to turn nested dicts into
them and back, and reports a wrong key or type by its dotted path (``train.steps``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from gensemble.errors import ConfigError, shown, shown_key
from gensemble.safepath import read_bytes

T = TypeVar("T")

MAX_INT = 2**63 - 1
NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", re.ASCII)  # "٣" is no number here
DIGITS = re.compile(r"[0-9]+")
# A config is a few dozen values; a YAML file whose aliases expand to more nodes than this is
# an alias bomb (a 594-byte file can describe gigabytes), refused before anything walks it.
MAX_CONFIG_NODES = 100_000


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Check (and gently coerce) one value against a type hint; raise ConfigError naming the key."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        return _coerce_union(value, tp, path)
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(
                f"config key '{path}' must be one of {', '.join(repr(a) for a in get_args(tp))}, got {shown(value)}"
            )
        return value
    if origin in (tuple, list):
        return _coerce_sequence(value, tp, path)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{path}' must be a mapping, got {shown(value)}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return value if isinstance(value, tp) else from_dict(tp, value, path)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key '{path}' must be true or false, got {shown(value)}")
    if tp in (int, float):
        return _coerce_number(value, tp, path)
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"config key '{path}' must be a string, got {shown(value)}")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"config key '{path}' must be {_type_name(tp)}, got {shown(value)}")


def _coerce_union(value: Any, tp: Any, path: str) -> Any:
    """The first member of the union the value fits; the one error when only one could fit."""
    args = get_args(tp)
    if value is None and type(None) in args:
        return None
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _coerce(value, arg, path)
        except ConfigError as exc:
            errors.append(str(exc))
    raise ConfigError(
        errors[0] if len(errors) == 1 else f"config key '{path}' has an invalid value {shown(value)}"
    )


def _coerce_sequence(value: Any, tp: Any, path: str) -> Any:
    origin, args = get_origin(tp), get_args(tp)
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"config key '{path}' must be a list, got {shown(value)}")
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return tuple(_coerce(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
    if origin is tuple and args:
        if len(args) != len(value):
            raise ConfigError(f"config key '{path}' must have {len(args)} items, got {len(value)}")
        return tuple(_coerce(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    inner = args[0] if args else Any
    return type(value)(_coerce(v, inner, f"{path}[{i}]") for i, v in enumerate(value))


def _coerce_number(value: Any, tp: type, path: str) -> Any:
    if isinstance(value, str) and NUMBER.fullmatch(value.strip()):
        # YAML 1.1 reads 1e-4 (no dot) as a string; a number is what the user meant.
        value = (
            float(value) if tp is float or not DIGITS.fullmatch(value.strip().lstrip("+-")) else int(value)
        )
    if tp is int:
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            # Wider integers only ever overflow later (seeds, tensor sizes); each field's own
            # validate() then narrows the range to what makes sense for it.
            if not -MAX_INT <= value <= MAX_INT:
                raise ConfigError(
                    f"config key '{path}' is out of range (|x| ≤ 2**63 - 1), got {shown(value)}"
                )
            return value
        raise ConfigError(f"config key '{path}' must be an integer, got {shown(value)}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an integer of 400 digits
            raise ConfigError(f"config key '{path}' is too large for a number, got {shown(value)}") from None
        if not math.isfinite(number):
            raise ConfigError(f"config key '{path}' must be a finite number, got {shown(value)}")
        return number
    raise ConfigError(f"config key '{path}' must be a number, got {shown(value)}")


def from_dict(cls: type[T], data: Any, path: str = "") -> T:
    """Build dataclass `cls` from a mapping, rejecting unknown keys and wrong types by dotted path."""
    where = path or "the config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config key '{where}' must be a mapping, got {shown(data)}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = f"{path}.{shown_key(unknown[0])}" if path else shown_key(unknown[0])
        raise ConfigError(f"unknown config key '{key}'; known keys here: {', '.join(fields)}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(value, hints[name], f"{path}.{name}" if path else name)
    try:
        obj = cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"config '{where}' is incomplete: {exc}") from None
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate(path)
    return obj


def check_ranges(obj: Any, path: str, **ranges: tuple[float | None, float | None]) -> None:
    """Refuse a field outside its closed range [lo, hi] (None: unbounded), naming key and range.

    Configs call this from `validate()`, so absurd values (lr 1e9, 10**12 steps, a million critics)
    are refused where the config is parsed, before any folder is written or memory allocated.
    """
    p = f"{path}." if path else ""
    for key, (lo, hi) in ranges.items():
        value = getattr(obj, key)
        if value is None:
            continue
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            if lo is not None and hi is not None:
                want = f"between {_num(lo)} and {_num(hi)}"
            else:
                want = f"at least {_num(lo)}" if lo is not None else f"at most {_num(hi)}"
            raise ConfigError(f"config key '{p}{key}' must be {want}, got {shown(value)}")


def _num(x: float | None) -> str:
    return (
        str(x)
        if isinstance(x, int) or (isinstance(x, float) and x.is_integer() and abs(x) < 1e7)
        else f"{x:g}"
    )


SEED_RANGE = (0, 2**32 - 1)  # what every RNG we seed accepts without overflow (NumPy's range)


def to_dict(obj: Any) -> Any:
    """Dataclasses (nested) -> plain dicts/lists suitable for YAML or JSON."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        if hasattr(obj, "as_dict"):  # a config with its own written form (RunConfig's scheme)
            return obj.as_dict()
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def parse_override(item: str) -> tuple[list[str], Any]:
    """'train.steps=200' -> (['train', 'steps'], 200). Values are parsed as YAML scalars."""
    if "=" not in item:
        raise ConfigError(f"--set expects key=value, got {shown(item)}")
    key, raw = item.split("=", 1)
    if not key:
        raise ConfigError(f"--set expects key=value, got {shown(item)}")
    if raw == "":
        return key.split("."), ""
    value = parse_yaml_text(raw, f"--set {shown_key(key)}")
    return key.split("."), value


def apply_overrides(data: dict, overrides: typing.Iterable[str]) -> dict:
    """Apply `--set` overrides to a raw config dict (before typing). Lists are indexed by number."""
    if count_nodes(data) > MAX_CONFIG_NODES:
        raise ConfigError(
            f"the config expands to more than {MAX_CONFIG_NODES} values (YAML aliases or deep nesting?)"
        )
    data = copy.deepcopy(data) or {}
    for item in overrides:
        keys, value = parse_override(item)
        node: Any = data
        for i, k in enumerate(keys[:-1]):
            if isinstance(node, list):
                if not DIGITS.fullmatch(k) or int(k) >= len(node):
                    raise ConfigError(
                        f"--set {shown(item)}: '{'.'.join(keys[: i + 1])}' is not a valid list index"
                    )
                node = node[int(k)]
            else:
                node = node.setdefault(k, {})
                if not isinstance(node, (dict, list)):
                    raise ConfigError(f"--set {shown(item)}: '{'.'.join(keys[: i + 1])}' is not a section")
        last = keys[-1]
        if isinstance(node, list):
            if not DIGITS.fullmatch(last) or int(last) >= len(node):
                raise ConfigError(f"--set {shown(item)}: '{last}' is not a valid list index")
            node[int(last)] = value
        else:
            node[last] = value
    return data


def parse_yaml_text(text: str, where: str) -> Any:
    """Parse YAML safely, turning every YAML problem into a one-line ConfigError about `where`."""
    try:
        data = yaml.safe_load(text)
    except yaml.constructor.ConstructorError as exc:
        # safe_load refuses !!python/... and other tags: say that, not "invalid syntax".
        tag = shown(getattr(exc, "problem", "") or "")
        raise ConfigError(
            f"{where} uses a YAML tag that is not allowed ({tag}); write plain values only"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"{where} is not valid YAML{at} ({shown(problem, 50)}); fix the syntax") from None
    except RecursionError:
        raise ConfigError(f"{where} is nested too deeply to be a config") from None
    if count_nodes(data) > MAX_CONFIG_NODES:
        raise ConfigError(
            f"{where} expands to more than {MAX_CONFIG_NODES} values (YAML aliases or deep nesting?); a config is far smaller"
        )
    return data


def count_nodes(obj: Any, limit: int = MAX_CONFIG_NODES) -> int:
    """Nodes of a YAML tree as if every alias were expanded, counted without expanding (memoised by
    identity), and capped just above `limit` so the count itself stays cheap."""
    memo: dict[int, int] = {}

    def count(node: Any, depth: int) -> int:
        if depth > 100:
            return limit + 1
        if not isinstance(node, (dict, list)):
            return 1
        if id(node) in memo:
            return memo[id(node)]
        children = node.values() if isinstance(node, dict) else node
        total = 1 + (len(node) if isinstance(node, dict) else 0)
        for child in children:
            total += count(child, depth + 1)
            if total > limit:
                break
        memo[id(node)] = min(total, limit + 1)
        return memo[id(node)]

    return count(obj, 0)


def load_yaml(path: str | Path, root: str | Path | None = None) -> dict:
    """Read a YAML mapping, turning file and syntax problems into one-line ConfigErrors. With
    `root` (a run folder holding it), the file is read through safepath: a link or special file
    there is refused, never followed."""
    p = Path(path)
    if root is not None:
        raw = read_bytes(root, p, limit=1_000_001)
        if raw is None:
            raise ConfigError(
                f"config file {shown(str(p))} does not exist; is {shown(str(root))} a run folder?"
            )
        return _yaml_mapping(raw, p)
    if p.is_dir():
        raise ConfigError(
            f"config {shown(str(p))} is a folder; pass the path of a YAML file inside it (see configs/)"
        )
    if not p.is_file():
        raise ConfigError(
            f"config file {shown(str(p))} does not exist; pass a path to a YAML file (see configs/)"
        )
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"config file {shown(str(p))} cannot be read ({exc.strerror}); check its permissions"
        ) from None
    return _yaml_mapping(raw, p)


def _yaml_mapping(raw: bytes, p: Path) -> dict:
    if len(raw) > 1_000_000:
        raise ConfigError(
            f"config file {shown(str(p))} is {len(raw):,} bytes; a config is a few KB, is it the right file?"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"config file {shown(str(p))} is not UTF-8 text; save it as UTF-8 YAML") from None
    data = parse_yaml_text(text, f"config file {shown(str(p))}")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {shown(str(p))} must hold a mapping at the top level")
    return data


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False)
