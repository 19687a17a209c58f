"""Load, override and validate the YAML run configuration.

Everything here runs before Spark starts: a bad key, type or path fails with a
``ConfigError`` that names the key and the fix, so no cluster time is wasted.
The rules themselves are the pydantic models of :mod:`ecomrec_spark.settings`.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import re
import types
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from ecomrec_spark.identifiers import bucket_problem

if TYPE_CHECKING:
    from ecomrec_spark.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONF = REPO_ROOT / "conf" / "local.yaml"


class ConfigError(ValueError):
    """A configuration problem found before any Spark work started."""


class SubKeyError(ValueError):
    """Raised by a model validator about one of its fields: ``key`` is relative to the model."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


SPARK_CONF_PREFIX = "spark.conf."  # --set spark.conf.spark.task.cpus=2 sets one Spark key
VALID_SOURCES = ("olist", "events", "amazon", "transactions", "events_api")
_URI = re.compile(r"^(s3a?|s3n|file|hdfs)://[^\s'\"]+$|^[^\s'\":]+$")
_PLACEHOLDER = re.compile(r"<[^>]+>")


def validate_uri(name: str, uri: str) -> str:
    """Reject placeholders, quotes and unknown schemes in a path or URI from a user (the one URI rule)."""
    if _PLACEHOLDER.search(uri):
        raise ConfigError(f"config key '{name}' still holds a placeholder ({uri}); set it with --set {name}=s3://...")
    if not uri or not _URI.match(uri) or ".." in uri.split("/"):
        raise ConfigError(
            f"config key '{name}' = {uri!r} is not a valid path or URI "
            "(use a local folder, file://, s3://, s3a:// or hdfs://; no quotes, spaces or '..')"
        )
    return uri


# ------------------------------------------------------------------------------------------------------------------

# ------------------------------------------------------------------------------------------------------------------
# The pydantic plumbing of the settings models (ecomrec_spark.settings, aws.settings)
# ------------------------------------------------------------------------------------------------------------------

Num = Union[int, float]  # noqa: UP007 (a runtime union: strict mode keeps an int an int)


def fix(text: str) -> Any:
    """Field metadata: the fix a type or range error on this key suggests (``...; fix: <text>``)."""
    return {"fix": text}


class Section(BaseModel):
    """Every section: unknown keys, wrong types (no ``"3"`` for an int, no bool for a number) are refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def rule(check: Any, *fields: str, before: bool = False) -> Any:
    """A field validator made of a plain function of the value (it raises ``ValueError`` with the message)."""
    return field_validator(*fields, mode="before" if before else "after")(classmethod(lambda cls, v: check(v)))


def matching(pattern: re.Pattern[str], what: str) -> Any:
    """A check that a string fully matches ``pattern`` ("must be <what>, got ...")."""
    def check(v: str) -> str:
        if not pattern.fullmatch(v):
            raise ValueError(f"must be {what}, got {v!r}")
        return v
    return check


def choices(values: list[str], allowed: tuple[str, ...], noun: str, note: str = "") -> list[str]:
    """Every value is one of ``allowed`` ("has unknown <noun> '<v>'; choose from ...")."""
    for v in values:
        if v not in allowed:
            raise ValueError(f"has unknown {noun} '{v}'; choose from {', '.join(allowed)}" + note)
    return values


def as_iso(value: Any) -> Any:
    """A ``before`` check for date keys kept as text: YAML reads an unquoted 2017-01-01 as a date."""
    return value.isoformat() if isinstance(value, dt.date) else value


def iso_date(value: str | None) -> str | None:
    """An ``after`` check for date keys kept as text: a real date, as ``YYYY-MM-DD`` (``None`` passes where the
    type allows it)."""
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise ValueError(f"must be a date YYYY-MM-DD, e.g. 2017-01-01, got {value!r}") from None


def not_null(value: Any) -> Any:
    """A ``before`` check for keys whose ``None`` means "not set": an explicit null is refused, as it always was."""
    if value is None:
        raise ValueError("must be set (not null); leave the key out instead")
    return value


def _unwrap(ann: Any) -> Any:
    """The model, list or dict type inside ``X | None`` and ``Annotated[X, ...]``."""
    while get_origin(ann) is Annotated:
        ann = get_args(ann)[0]
    if get_origin(ann) in (Union, types.UnionType):
        rest = [a for a in get_args(ann) if a is not type(None)]
        if len(rest) == 1:
            return _unwrap(rest[0])
    return ann


def type_name(ann: Any) -> str:
    """``int or float``, ``int or null``, ``list``, ``a mapping``: what a config key must be."""
    origin = get_origin(ann)
    if origin is Annotated:
        return type_name(get_args(ann)[0])
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in get_args(ann))
    if origin is Literal:
        names = [str(a).lower() if isinstance(a, bool) else str(a) for a in get_args(ann)]
        return ", ".join(names[:-1]) + " or " + names[-1] if len(names) <= 3 else f"one of {', '.join(names)}"
    if ann is type(None):
        return "null"
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return "a mapping"
    if origin is not None:
        return getattr(origin, "__name__", str(origin))
    return getattr(ann, "__name__", str(ann))


def _walk(root: type[BaseModel], prefix: str, loc: tuple[int | str, ...]) -> tuple[str, Any, Any, Any]:
    """The dotted key of ``loc`` (union member tags dropped), its annotation, field and enclosing model."""
    key, node, field, parent, current = prefix, Any, None, root, root  # type: tuple[str, Any, Any, Any, Any]
    for part in loc:
        here = _unwrap(current)
        if isinstance(here, type) and issubclass(here, BaseModel):
            parent, key = here, f"{key}.{part}" if key else str(part)
            field = here.model_fields.get(str(part))
            current = node = field.annotation if field else Any
        elif get_origin(here) is list and isinstance(part, int):  # an item keeps its field's fix
            key, current = f"{key}[{part}]", get_args(here)[0]
            node = current
        elif get_origin(here) is dict:
            key, current = f"{key}.{part}", get_args(here)[1]
            node = current
        # else: a union member's tag (``int``, ``float``): the key stays
    return key, node, field, parent


_RANGE = {"gt": ("(", ">"), "ge": ("[", ">="), "lt": (")", "<"), "le": ("]", "<=")}


def _bounds(field: Any, node: Any) -> str:
    """``in [1, 1000]``, ``> 0`` or ``>= 1 or null`` from a field's ``gt/ge/lt/le``."""
    got = {name: getattr(m, name) for m in (field.metadata if field else []) for name in _RANGE if hasattr(m, name)}
    low = next(((n, v) for n, v in got.items() if n in ("gt", "ge")), None)
    high = next(((n, v) for n, v in got.items() if n in ("lt", "le")), None)
    if low and high:
        text = f"in {_RANGE[low[0]][0]}{low[1]}, {high[1]}{_RANGE[high[0]][0]}"
    else:
        name, value = low or high or ("", "")
        text = f"{_RANGE[name][1]} {value}" if name else "in range"
    return text + (" or null" if type(None) in get_args(node) else "")


def config_error(exc: ValidationError, root: type[BaseModel], prefix: str = "") -> ConfigError:
    """One :class:`ConfigError` for the first problem pydantic found, naming its dotted key and the fix.

    Unknown keys and wrong types come first (as a schema check would find them), then value rules.
    """
    errors = sorted(exc.errors(), key=lambda e: 0 if e["type"] == "extra_forbidden" or e["type"].endswith("_type")
                    else 1)
    err = errors[0]
    key, node, field, parent = _walk(root, prefix, tuple(err["loc"]))
    value, kind = err.get("input"), err["type"]
    cause = (err.get("ctx") or {}).get("error")
    hint = ((field.json_schema_extra or {}) if field and isinstance(field.json_schema_extra, dict) else {}).get("fix")
    tail = f"; fix: {hint}" if hint else ""
    if isinstance(cause, ConfigError):
        return ConfigError(str(cause))
    if isinstance(cause, SubKeyError):
        sub = f"{key}{cause.key}" if cause.key.startswith("[") else f"{key}.{cause.key}"
        return ConfigError(f"config key '{sub}' {cause}")
    if cause is not None:
        return ConfigError(f"config key '{key}' {cause}{tail}")
    if kind == "extra_forbidden":
        section = key.rpartition(".")[0]
        names = sorted(parent.model_fields)
        allowed = ", ".join(f"{section}.{n}" if section else n for n in names)
        return ConfigError(f"unknown config key '{key}'; allowed here: {allowed}")
    if kind == "missing":
        where = "the file" if "[" in key else f"the file or with --set {key}=..."
        return ConfigError(f"config key '{key}' is missing; set it in {where}")
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return ConfigError(f"config key '{key}' must be {_bounds(field, node)}, got {value!r}{tail}")
    if kind == "literal_error":
        return ConfigError(f"config key '{key}' must be {type_name(_unwrap(node))}, got {value!r}{tail}")
    if kind.endswith("_type") or kind in ("model_attributes_type",):
        return ConfigError(f"config key '{key}' must be {type_name(node)}, got {value!r}{tail}")
    return ConfigError(f"config key '{key}': {err['msg']} (got {value!r}){tail}")


def set_dotted(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested dict, creating sections (``spark.conf.*`` keys stay whole)."""
    if dotted.startswith(SPARK_CONF_PREFIX):  # Spark's own keys are dotted: keep them whole
        cfg.setdefault("spark", {}).setdefault("conf", {})[dotted[len(SPARK_CONF_PREFIX):]] = value
        return
    parts = dotted.split(".")
    node = cfg
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: '{part}' is not a section")
    node[parts[-1]] = value


def parse_overrides(pairs: Iterable[str]) -> list[tuple[str, Any]]:
    """Parse ``key=value`` strings; values are YAML scalars (``3``, ``true``, ``[a, b]``)."""
    out = []
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set expects key=value, got '{pair}' (example: --set transform.iqr_k=3)")
        key, raw = pair.split("=", 1)
        key = key.strip()
        if key.startswith(SPARK_CONF_PREFIX) and re.fullmatch(r"spark\.[A-Za-z0-9_.-]+", key[len(SPARK_CONF_PREFIX):]):
            out.append((key, raw))  # a Spark setting stays a string, as Spark reads it
            continue
        if not re.fullmatch(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*", key):
            raise ConfigError(f"--set key '{key}' is not a dotted config key like 'paths.lake'")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except (yaml.YAMLError, ValueError) as exc:  # ValueError: a date-like value such as 2018-13-01
            raise ConfigError(f"--set {key}: value '{raw}' is not valid YAML ({exc})") from None
        out.append((key, value))
    return out


BUCKET_PLACEHOLDER = "<bucket>"


def bucket_filled_paths(cfg: Mapping[str, Any]) -> dict[str, str]:
    """The ``paths.*`` holding ``<bucket>`` with ``emr.bucket`` filled in (conf/emr.yaml), for every command.

    Empty when ``emr.bucket`` is unset or itself the placeholder; a bad bucket name fails here, naming it.

    >>> bucket_filled_paths({"emr": {"bucket": "shop"}, "paths": {"lake": "s3://<bucket>/lake", "raw": "/data"}})
    {'lake': 's3://shop/lake'}
    """
    bucket = (cfg.get("emr") or {}).get("bucket")
    if bucket is None or bucket == BUCKET_PLACEHOLDER:
        return {}
    problem = bucket_problem(bucket)
    if problem:
        raise ConfigError(f"config key 'emr.bucket' = {bucket!r} is not an S3 bucket name ({problem}); "
                          f"it fills {BUCKET_PLACEHOLDER} in paths.*: --set emr.bucket=<your bucket>")
    return {k: v.replace(BUCKET_PLACEHOLDER, bucket) for k, v in (cfg.get("paths") or {}).items()
            if isinstance(v, str) and BUCKET_PLACEHOLDER in v}


def resolve_local(uri: str, base: Path) -> str:
    """Make a scheme-less path absolute against ``base``; leave URIs alone."""
    if "://" in uri:
        return uri.rstrip("/")
    p = Path(uri)
    return str((p if p.is_absolute() else base / p).resolve())


# Sections whose defaults come from conf/local.yaml when another file leaves them out;
# paths and spark settings are per environment and never inherited.
_INHERITED = ("ingest", "sources", "transform", "generate", "review", "recommend", "catalog", "insights", "serving")


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), dict) else copy.deepcopy(value)
    return out


def _with_defaults(cfg: dict[str, Any], conf_path: Path) -> dict[str, Any]:
    if conf_path.resolve() == DEFAULT_CONF.resolve() or not DEFAULT_CONF.is_file():
        return copy.deepcopy(cfg)
    defaults = yaml.safe_load(DEFAULT_CONF.read_text()) or {}
    base = {k: v for k, v in defaults.items() if k in _INHERITED}
    return _merge(base, cfg)


def load_config(path: str | os.PathLike[str] | None = None, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Read a YAML config, apply ``--set`` overrides, validate, and resolve paths.

    Relative local paths are taken against the repository root, so commands give
    the same lake whatever the working directory.

    >>> cfg = load_config(None, ["transform.iqr_k=3"])
    >>> cfg["transform"]["iqr_k"]
    3
    """
    conf_path = Path(path) if path else DEFAULT_CONF
    if not conf_path.is_file():
        raise ConfigError(f"config file not found: {conf_path} (pass --conf conf/local.yaml or conf/emr.yaml)")
    try:
        cfg = yaml.safe_load(conf_path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {conf_path} is not valid YAML: {exc}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"config file {conf_path} must hold a mapping at the top level")
    cfg = _with_defaults(cfg, conf_path)
    for key, value in parse_overrides(overrides):
        set_dotted(cfg, key, value)
    cfg["paths"] = {**cfg.get("paths", {}), **bucket_filled_paths(cfg)}
    from ecomrec_spark.settings import validate_settings  # the models import this module's ConfigError

    settings = validate_settings(cfg)
    for key, value in cfg["paths"].items():
        cfg["paths"][key] = resolve_local(value, REPO_ROOT)
    for section, key in (("review", "split"), ("recommend", "evaluate")):  # dates as ISO strings, as validated
        node = (cfg.get(section) or {}).get(key) or {}
        model = getattr(getattr(settings, section), key)
        for name in ("train_until", "validation_until", "cutoff"):
            if name in node:
                node[name] = getattr(model, name)
    spark = cfg.setdefault("spark", {})
    if spark.get("jar_cache"):
        spark["jar_cache"] = resolve_local(spark["jar_cache"], REPO_ROOT)
    cfg["_source"] = str(conf_path)
    return cfg


def load_settings(path: str | os.PathLike[str] | None = None, overrides: Iterable[str] = ()) -> Settings:
    """:func:`load_config` as the typed, frozen :class:`~ecomrec_spark.settings.Settings`: each section's keys are
    attributes (``settings.serving.k``).

    >>> load_settings(None, ["serving.k=7"]).serving.k
    7
    """
    from ecomrec_spark.settings import Settings

    return Settings.from_config(load_config(path, overrides))


def is_local_path(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def local_path(uri: str) -> Path:
    """The filesystem path of a local URI (``file://`` or plain)."""
    if not is_local_path(uri):
        raise ConfigError(f"{uri} is not a local path; this command needs a local folder")
    return Path(uri[len("file://"):] if uri.startswith("file://") else uri)
