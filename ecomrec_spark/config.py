"""Load, override and validate the YAML run configuration.

Everything here runs before Spark starts: a bad key, type or path fails with a
``ConfigError`` that names the key and the fix, so no cluster time is wasted.
"""

from __future__ import annotations

import copy
import datetime as _dt
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from ecomrec_spark.aws.s3 import parse_s3_uri
from ecomrec_spark.identifiers import SERVE_MODELS, validate_identifier, validate_workgroup

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONF = REPO_ROOT / "conf" / "local.yaml"


class ConfigError(ValueError):
    """A configuration problem found before any Spark work started."""


# The schema: every allowed key with its type.  A dict value is a nested section;
# ``dict`` (the type) marks a free-form mapping whose keys are not checked.
_NUM = (int, float)
SCHEMA: dict[str, Any] = {
    "paths": {"raw": str, "lake": str, "generated": str, "reports": str, "serving": str},
    "spark": {
        "master": (str, type(None)),
        "app_name": str,
        "shuffle_partitions": int,
        "delta_packages": list,  # Maven coordinates fetched locally; [] on EMR
        "jar_cache": str,  # project-local Ivy cache for those packages
        "bind_loopback": bool,
        "log_level": str,
        "conf": dict,  # any extra spark.* settings
    },
    "ingest": {
        "sources": list,  # which adapters read from paths.raw: olist, events, amazon, transactions
    },
    "sources": {
        "transactions": {
            "folder": str,  # sub-folder of paths.raw holding the files ("." = paths.raw itself)
            "files": str,  # glob under that folder
            "timestamp_format": str,
            "cancel_prefix": str,
            "non_product_codes": list,
            "columns": {
                "order_id": str,
                "product_id": str,
                "customer_id": (str, type(None)),
                "timestamp": str,
                "quantity": str,
                "unit_price": str,
                "description": (str, type(None)),
                "category": (str, type(None)),
                "country": (str, type(None)),
            },
        },
    },
    "transform": {
        "iqr_k": _NUM,
        "outlier_columns": list,
        "iqr_accuracy": int,
        "iqr_method": str,  # window | aggregate
        "min_freight": _NUM,
        "popularity_window_days": int,
        "session_gap_minutes": int,
        "holiday_season": list,  # [[month, day_from, day_to], ...]
        "price_levels": int,
    },
    "review": {
        "targets": list,  # score (5 classes) and/or satisfied (score >= 4)
        "split": {
            "train_fraction": _NUM,
            "validation_fraction": _NUM,
            "train_until": (str, _dt.date, type(None)),  # YYYY-MM-DD (YAML may read it as a date)
            "validation_until": (str, _dt.date, type(None)),
        },
        "class_weights": bool,  # weight_col for the saved model
        "compare_weighting": bool,  # also fit the other weighting and report it
        "num_workers": int,
        "parallelism": int,
        "early_stopping_rounds": (int, type(None)),
        "tuning_metric": str,
        "seed": int,
        "history_prior_weight": _NUM,
        "baselines": list,
        "grid": {"max_depth": list, "learning_rate": list, "n_estimators": list, "min_child_weight": list,
                 "subsample": list},
    },
    "recommend": {
        "k": int,
        "candidates": int,
        "models": list,
        "seed": int,
        "similar_items": int,
        "interactions": {"half_life_days": _NUM, "purchase_weight": _NUM, "max_quantity": _NUM, "event_weights": dict,
                         "review_weight": _NUM},
        "als": {"rank": int, "reg_param": _NUM, "alpha": _NUM, "max_iter": int, "tune": bool,
                "grid": {"rank": list, "reg_param": list, "alpha": list}},
        "vectors": {"embedding": _NUM, "category": _NUM, "price": _NUM, "review": _NUM, "popularity": _NUM},
        "knn": {"method": str, "exact_max_products": int, "target_recall": _NUM},
        "hybrid": {"weights": {"similarity": _NUM, "review": _NUM, "price": _NUM, "popularity": _NUM}, "tune": bool,
                   "validation_days": int,
                   "grid": {"similarity": list, "review": list, "price": list, "popularity": list}},
        "content": {"vocab_size": int, "min_df": _NUM},
        "item_item": {"max_neighbors": int, "ease_lambda": _NUM, "max_items": int,
                      "ease_neighbors": (int, type(None)),  # null: unpruned (dense) EASE up to dense_max_items
                      "dense_max_items": int, "tune": bool, "ease_lambdas": list},
        "rules": {"min_support": _NUM, "category_min_support": _NUM, "min_confidence": _NUM, "max_items": int},
        "default_model": str,  # auto (best validation NDCG@k among the served lists) or a model name
        "rank": {"generators": list, "candidates": int, "recent_days": int, "max_negatives": int,
                 "min_customers": int, "objective": str, "num_workers": int,
                 "grid": {"max_depth": list, "n_estimators": list, "learning_rate": list, "min_child_weight": list,
                          "subsample": list}},
        "popularity": {"top_n": int, "trending_days": int, "min_interactions": int},
        "filters": {"exclude_purchased": bool, "blocked_products": list, "blocked_table": (str, type(None)),
                    "include_categories": list, "exclude_categories": list},
        "evaluate": {"test_days": int, "cutoff": (str, _dt.date, type(None)), "models": list},
    },
    "catalog": {"database": str, "s3_lake": (str, type(None)), "athena_output": (str, type(None)),
                "workgroup": str},
    "insights": {
        "top_n": int,  # top products per month / most recommended per category
        "score_change_threshold": _NUM,  # a monthly mean-score move this large is "up" or "down"
        "sentiment": {"vocab_size": int, "min_df": _NUM, "reg_param": _NUM, "max_iter": int, "features": str,
                      "ngrams": bool, "vector_size": int, "test_fraction": _NUM, "seed": int,
                      "class_weights": (bool, type(None)), "positive_at": _NUM, "negative_at": _NUM},
    },
    "serving": {  # ecomrec publish / serve (issue "Serve"): the online store, its versions, the gate, A/B variants
        "store": str,  # sqlite (a file under paths.serving) | dynamodb
        "dynamodb": {"table_prefix": str, "region": (str, type(None)), "endpoint_url": (str, type(None))},
        "k": int,  # items kept per published list
        "keep_versions": int,
        "refresh_seconds": _NUM,  # how often a running API re-reads the live-version pointer
        "gate": {"ndcg_drop": _NUM, "macro_f1_drop": _NUM},
        "variants": list,  # [{name, model, weight}]; model "default" = the build's picked default
        "salt": str,
        "max_events": int,  # events per POST /v1/events batch
    },
    "emr": dict,  # launcher settings, validated by ecomrec_spark.aws.settings (conf/emr.yaml, emr/README.md)
    "generate": {
        "orders": int,
        "seed": int,
        "n_customers": (int, type(None)),
        "n_products": (int, type(None)),
        "n_sellers": (int, type(None)),
        "start_date": str,
        "end_date": str,
        "repeat_rate": _NUM,
        "complement_rate": _NUM,
        "events_per_order": _NUM,
        "partitions": (int, type(None)),
        "messy": {
            "missing_price": _NUM,
            "missing_freight": _NUM,
            "outliers": _NUM,
            "duplicates": _NUM,
            "malformed": _NUM,
            "bad_timestamp": _NUM,
            "bad_number": _NUM,
            "negative_price": _NUM,
            "orphan_fk": _NUM,
        },
    },
}

SPARK_CONF_PREFIX = "spark.conf."  # --set spark.conf.spark.task.cpus=2 sets one Spark key
VALID_SOURCES = ("olist", "events", "amazon", "transactions", "events_api")
_URI = re.compile(r"^(s3a?|s3n|file|hdfs)://[^\s'\"]+$|^[^\s'\":]+$")
_PLACEHOLDER = re.compile(r"<[^>]+>")


def _type_name(t: Any) -> str:
    if isinstance(t, tuple):
        return " or ".join(_type_name(x) for x in t)
    return {type(None): "null"}.get(t, getattr(t, "__name__", str(t)))


def _check(node: Mapping[str, Any], schema: Mapping[str, Any], prefix: str) -> None:
    for key, value in node.items():
        name = f"{prefix}{key}"
        if key not in schema:
            allowed = ", ".join(sorted(f"{prefix}{k}" for k in schema))
            raise ConfigError(f"unknown config key '{name}'; allowed here: {allowed}")
        spec = schema[key]
        if isinstance(spec, dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"config key '{name}' must be a mapping, got {value!r}")
            _check(value, spec, f"{name}.")
            continue
        # bool is an int subclass; never accept it for a number
        if isinstance(value, bool) and spec is not bool and bool not in (spec if isinstance(spec, tuple) else (spec,)):
            raise ConfigError(f"config key '{name}' must be {_type_name(spec)}, got {value!r}")
        if not isinstance(value, spec):
            raise ConfigError(f"config key '{name}' must be {_type_name(spec)}, got {value!r}")


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


def validate_uri(name: str, uri: str) -> str:
    """Reject placeholders, quotes and unknown schemes in a path or URI from a user."""
    if _PLACEHOLDER.search(uri):
        raise ConfigError(f"config key '{name}' still holds a placeholder ({uri}); set it with --set {name}=s3://...")
    if not uri or not _URI.match(uri) or ".." in uri.split("/"):
        raise ConfigError(
            f"config key '{name}' = {uri!r} is not a valid path or URI "
            "(use a local folder, file://, s3://, s3a:// or hdfs://; no quotes, spaces or '..')"
        )
    return uri


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
    from ecomrec_spark.identifiers import bucket_problem

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
    _check(cfg, SCHEMA, "")
    for required in ("raw", "lake"):
        if not cfg.get("paths", {}).get(required):
            raise ConfigError(f"config key 'paths.{required}' is missing; set it in the file or with --set paths.{required}=...")
    for key, value in cfg["paths"].items():
        cfg["paths"][key] = resolve_local(validate_uri(f"paths.{key}", value), REPO_ROOT)
    for src in cfg.get("ingest", {}).get("sources", []):
        if src not in VALID_SOURCES:
            raise ConfigError(f"config key 'ingest.sources' has unknown source '{src}'; choose from {', '.join(VALID_SOURCES)}")
    k = cfg.get("transform", {}).get("iqr_k")
    if k is not None and k <= 0:
        raise ConfigError(f"config key 'transform.iqr_k' must be > 0, got {k}")
    method = cfg.get("transform", {}).get("iqr_method")
    if method is not None and method not in ("window", "aggregate"):
        raise ConfigError(f"config key 'transform.iqr_method' must be 'window' or 'aggregate', got {method!r}")
    for name, rate in cfg.get("generate", {}).get("messy", {}).items():
        if not 0 <= rate < 0.2:
            raise ConfigError(f"config key 'generate.messy.{name}' must be a rate in [0, 0.2), got {rate}")
    _check_catalog(cfg.get("catalog") or {})
    _check_sources(cfg.get("sources") or {})
    _check_review(cfg.get("review") or {})
    _check_recommend(cfg.get("recommend") or {})
    _check_insights(cfg.get("insights") or {})
    _check_serving(cfg.get("serving") or {})
    spark = cfg.setdefault("spark", {})
    if spark.get("jar_cache"):
        spark["jar_cache"] = resolve_local(spark["jar_cache"], REPO_ROOT)
    cfg["_source"] = str(conf_path)
    return cfg


def _check_catalog(c: Mapping[str, Any]) -> None:
    """``catalog.*``: Glue/Athena names and S3 URIs, by the rules the catalog and the S3 helpers apply later."""
    if "database" in c:
        try:
            validate_identifier(c["database"], "database")
        except ValueError as exc:
            raise ConfigError(f"config key 'catalog.database': {exc}; "
                              "for example --set catalog.database=ecomrec") from None
    if "workgroup" in c:
        try:
            validate_workgroup(c["workgroup"])
        except ValueError as exc:
            raise ConfigError(f"config key 'catalog.workgroup': {exc}; "
                              "for example --set catalog.workgroup=primary") from None
    # Athena writes results only to s3://; the lake copy may be named either way (the DDL writes s3://)
    for key, schemes in (("s3_lake", ("s3://", "s3a://")), ("athena_output", ("s3://",))):
        uri = c.get(key)
        if uri is None:
            continue
        example = f"--set catalog.{key}=s3://my-bucket/{'lake' if key == 's3_lake' else 'athena-results'}/ (or null)"
        if not uri.startswith(schemes):
            raise ConfigError(f"config key 'catalog.{key}' = {uri!r} must start with {' or '.join(schemes)}; "
                              f"for example {example}")
        try:
            parse_s3_uri(uri)
        except ValueError as exc:
            raise ConfigError(f"config key 'catalog.{key}': {exc}; for example {example}") from None


_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


def _check_sources(sources: Mapping[str, Any]) -> None:
    """``sources.*.folder`` and ``files`` stay inside ``paths.raw``: relative, no ``..``, no scheme or drive."""
    for source, conf in sources.items():
        for key in ("folder", "files"):
            value = (conf or {}).get(key)
            if value is None:
                continue
            segments = re.split(r"[/\\]", value)
            escapes = (value.startswith(("/", "\\", "~")) or "://" in value or _WINDOWS_DRIVE.match(value)
                       or ".." in segments or any(ord(ch) < 32 for ch in value))
            if escapes or not value.strip():
                hint = "transactions (or . for paths.raw itself)" if key == "folder" else "*.csv*"
                raise ConfigError(f"config key 'sources.{source}.{key}' = {value!r} must be a relative "
                                  f"{'sub-folder' if key == 'folder' else 'glob'} inside paths.raw: no '..' segment, "
                                  f"no leading '/', '\\' or '~', no scheme or drive; for example "
                                  f"--set sources.{source}.{key}={hint}")


_REVIEW_TARGETS = ("score", "satisfied")
_REVIEW_BASELINES = ("majority", "logistic_regression", "decision_tree", "random_forest", "gbt")
_TUNING_METRICS = ("logLoss", "accuracy", "f1", "weightedPrecision", "weightedRecall", "hammingLoss")


def _check_review(r: Mapping[str, Any]) -> None:
    """Value checks of the ``review`` section (types are checked by the schema)."""
    def bad(key: str, msg: str) -> ConfigError:
        return ConfigError(f"config key 'review.{key}' {msg}")

    targets = r.get("targets", list(_REVIEW_TARGETS))
    if not targets or any(t not in _REVIEW_TARGETS for t in targets) or "score" not in targets:
        raise bad("targets", f"must list 'score' and optionally 'satisfied', got {targets!r}")
    split = r.get("split", {})
    tf, vf = split.get("train_fraction", 0.7), split.get("validation_fraction", 0.15)
    if not (0 < tf < 1):
        raise bad("split.train_fraction", f"must be in (0, 1), got {tf}")
    if not (0 < vf < 1) or tf + vf >= 1:
        raise bad("split.validation_fraction", f"must be in (0, 1) with train_fraction + validation_fraction < 1, got {vf}")
    for key in ("train_until", "validation_until"):
        if isinstance(split.get(key), _dt.date):
            split[key] = split[key].isoformat()
        if split.get(key) is not None:
            try:
                _dt.date.fromisoformat(split[key])
            except ValueError:
                raise bad(f"split.{key}", f"must be a date YYYY-MM-DD or null, got {split[key]!r}") from None
    if (split.get("train_until") is None) != (split.get("validation_until") is None):
        raise bad("split.validation_until", "and review.split.train_until must be set together (or both null)")
    if split.get("train_until") and split["train_until"] >= split["validation_until"]:
        raise bad("split.validation_until", f"must be after review.split.train_until ({split['train_until']})")
    for key in ("num_workers", "parallelism"):
        if key in r and r[key] < 1:
            raise bad(key, f"must be >= 1, got {r[key]}")
    if r.get("early_stopping_rounds") is not None and r["early_stopping_rounds"] < 1:
        raise bad("early_stopping_rounds", f"must be >= 1 or null, got {r['early_stopping_rounds']}")
    if "tuning_metric" in r and r["tuning_metric"] not in _TUNING_METRICS:
        raise bad("tuning_metric", f"must be one of {', '.join(_TUNING_METRICS)}, got {r['tuning_metric']!r}")
    for b in r.get("baselines", []):
        if b not in _REVIEW_BASELINES:
            raise bad("baselines", f"has unknown baseline '{b}'; choose from {', '.join(_REVIEW_BASELINES)}")
    if r.get("history_prior_weight", 1) < 0:
        raise bad("history_prior_weight", f"must be >= 0, got {r['history_prior_weight']}")
    _check_xgb_grid(r.get("grid") or {}, bad, "grid")


_XGB_GRID_RULES: dict[str, tuple[Any, float, float]] = {"max_depth": (int, 1, 20), "n_estimators": (int, 1, 10000), "learning_rate": (_NUM, 1e-6, 1.0),
                   "min_child_weight": (_NUM, 0.0, 1e6), "subsample": (_NUM, 1e-6, 1.0)}


def _check_xgb_grid(grid: Mapping[str, Any], bad: Any, prefix: str) -> None:
    """An XGBoost grid (review model or ranker): non-empty lists of values in range."""
    for key, values in grid.items():
        kind, lo, hi = _XGB_GRID_RULES[key]
        if not values or any(isinstance(v, bool) or not isinstance(v, kind) or not lo <= v <= hi for v in values):
            raise bad(f"{prefix}.{key}", f"must be a non-empty list of {_type_name(kind)} in [{lo}, {hi}], got {values!r}")


_REC_MODELS = ("knn", "hybrid", "als", "content", "popular", "item_knn", "ease", "ltr")
_EVAL_MODELS = ("knn", "hybrid", "als", "content", "popular", "item_knn", "ease", "random")
_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def _check_insights(i: Mapping[str, Any]) -> None:
    """Value checks of the ``insights`` section (types are checked by the schema)."""
    if not 1 <= i.get("top_n", 10) <= 1000:
        raise ConfigError(f"config key 'insights.top_n' must be in [1, 1000], got {i['top_n']}")
    if i.get("score_change_threshold", 0.5) <= 0:
        raise ConfigError("config key 'insights.score_change_threshold' must be > 0")
    s = i.get("sentiment") or {}
    if s.get("features", "tfidf") not in ("tfidf", "word2vec"):
        raise ConfigError(f"config key 'insights.sentiment.features' must be tfidf or word2vec, got {s['features']!r}")
    if not 0 < s.get("test_fraction", 0.2) < 1:
        raise ConfigError(f"config key 'insights.sentiment.test_fraction' must be in (0, 1), got {s['test_fraction']}")
    lo, hi = s.get("negative_at", 0.4), s.get("positive_at", 0.6)
    if not 0 <= lo <= hi <= 1:
        raise ConfigError(f"config keys 'insights.sentiment.negative_at' ({lo}) <= 'positive_at' ({hi}) "
                          "must both lie in [0, 1]")


def _check_recommend(r: Mapping[str, Any]) -> None:
    """Value checks of the ``recommend`` section (types are checked by the schema)."""
    def bad(key: str, msg: str) -> ConfigError:
        return ConfigError(f"config key 'recommend.{key}' {msg}")

    for key in ("k", "similar_items"):
        if key in r and not 1 <= r[key] <= 1000:
            raise bad(key, f"must be in [1, 1000], got {r[key]}")
    if r.get("candidates", 0) < 0:
        raise bad("candidates", f"must be >= 0, got {r['candidates']}")
    for m in r.get("models", []):
        if m not in _REC_MODELS:
            raise bad("models", f"has unknown model '{m}'; choose from {', '.join(_REC_MODELS)}")
    for m in (r.get("evaluate") or {}).get("models", []):
        if m not in _EVAL_MODELS:
            raise bad("evaluate.models", f"has unknown model '{m}'; choose from {', '.join(_EVAL_MODELS)}"
                      + (" (ltr is validated by build-recommendations itself: gold/recommendation_runs)" if m == "ltr" else ""))
    method = (r.get("knn") or {}).get("method")
    if method is not None and method not in ("exact", "lsh", "auto"):
        raise bad("knn.method", f"must be exact, lsh or auto, got {method!r}")
    recall = (r.get("knn") or {}).get("target_recall", 0.95)
    if not 0 < recall <= 1:
        raise bad("knn.target_recall", f"must be in (0, 1], got {recall}")
    for key, value in (r.get("interactions") or {}).get("event_weights", {}).items():
        if isinstance(value, bool) or not isinstance(value, _NUM) or value < 0:
            raise bad(f"interactions.event_weights.{key}", f"must be a number >= 0, got {value!r}")
    if (r.get("interactions") or {}).get("half_life_days", 1) <= 0:
        raise bad("interactions.half_life_days", "must be > 0")
    _check_item_item(r.get("item_item") or {})
    _check_als(r.get("als") or {})
    rules = r.get("rules") or {}
    for key in ("min_support", "category_min_support"):
        if key in rules and not 0 < rules[key] <= 1:
            raise bad(f"rules.{key}", f"must be in (0, 1], got {rules[key]}")
    if "min_confidence" in rules and not 0 <= rules["min_confidence"] <= 1:
        raise bad("rules.min_confidence", f"must be in [0, 1], got {rules['min_confidence']}")
    for pid in (r.get("filters") or {}).get("blocked_products", []):
        if not isinstance(pid, str) or not _ID_PATTERN.fullmatch(pid):
            raise bad("filters.blocked_products", f"has {pid!r}, which is not a product id (1-64 letters, digits, _.:-)")
    table = (r.get("filters") or {}).get("blocked_table")
    if table:
        validate_uri("recommend.filters.blocked_table", table)
    ev = r.get("evaluate") or {}
    if isinstance(ev.get("cutoff"), _dt.date):
        ev["cutoff"] = ev["cutoff"].isoformat()
    if ev.get("cutoff") is not None:
        try:
            _dt.date.fromisoformat(ev["cutoff"])
        except ValueError:
            raise bad("evaluate.cutoff", f"must be a date YYYY-MM-DD or null, got {ev['cutoff']!r}") from None
    if ev.get("test_days", 1) < 1:
        raise bad("evaluate.test_days", "must be >= 1")
    _check_rank(r, bad)


_GENERATORS = ("ease", "item_knn", "als", "knn", "content", "rules", "popular", "popular_region", "popular_category",
               "trending", "buy_again")  # recommend.candidates.GENERATORS (no Spark import here)


def _check_rank(r: Mapping[str, Any], bad: Any) -> None:
    """Value checks of ``recommend.rank`` and ``recommend.default_model``."""
    default = r.get("default_model", "auto")
    served = tuple(r.get("models", [])) + (("ltr_new",) if "ltr" in r.get("models", []) else ())
    if default != "auto" and default not in served:
        raise bad("default_model", f"must be auto or one of the served models {list(served)}, got {default!r}")
    rk = r.get("rank") or {}
    for g in rk.get("generators", []):
        if g not in _GENERATORS:
            raise bad("rank.generators", f"has unknown generator '{g}'; choose from {', '.join(_GENERATORS)}")
    if "ltr" in r.get("models", []) and not rk.get("generators"):
        raise bad("rank.generators", "is empty; the ltr model needs at least one candidate generator")
    for key, low in (("candidates", 1), ("recent_days", 1), ("max_negatives", 1), ("min_customers", 1),
                     ("num_workers", 1)):
        if key in rk and rk[key] < low:
            raise bad(f"rank.{key}", f"must be >= {low}, got {rk[key]}")
    if rk.get("objective", "rank:ndcg") not in ("rank:ndcg", "rank:pairwise", "rank:map"):
        raise bad("rank.objective", f"must be rank:ndcg, rank:pairwise or rank:map, got {rk['objective']!r}")
    _check_xgb_grid(rk.get("grid") or {}, bad, "rank.grid")


def _positive_list(key: str, values: Any, kind: Any, lo: float, strict: bool) -> None:
    """A non-empty list of numbers of ``kind`` above ``lo`` (``> lo`` when ``strict``, else ``>= lo``)."""
    ok = bool(values) and all(not isinstance(v, bool) and isinstance(v, kind) and (v > lo if strict else v >= lo)
                              for v in values)
    if not ok:
        raise ConfigError(f"config key 'recommend.{key}' must be a non-empty list of {_type_name(kind)} "
                          f"{'>' if strict else '>='} {lo}, got {values!r}")


def _check_item_item(ii: Mapping[str, Any]) -> None:
    """Value checks of ``recommend.item_item`` (EASE and cosine item-kNN)."""
    for key, lo in (("max_neighbors", 1), ("max_items", 2), ("dense_max_items", 0)):
        if key in ii and ii[key] < lo:
            raise ConfigError(f"config key 'recommend.item_item.{key}' must be >= {lo}, got {ii[key]}")
    if ii.get("ease_neighbors") is not None and ii["ease_neighbors"] < 1:
        raise ConfigError("config key 'recommend.item_item.ease_neighbors' must be >= 1 or null (unpruned), "
                          f"got {ii['ease_neighbors']}")
    if "ease_lambda" in ii and ii["ease_lambda"] <= 0:
        raise ConfigError(f"config key 'recommend.item_item.ease_lambda' must be > 0, got {ii['ease_lambda']}")
    if "ease_lambdas" in ii:
        _positive_list("item_item.ease_lambdas", ii["ease_lambdas"], _NUM, 0, strict=True)


def _check_als(a: Mapping[str, Any]) -> None:
    """Value checks of ``recommend.als`` and its tuning grid."""
    if a.get("rank", 1) < 1 or a.get("max_iter", 1) < 1:
        raise ConfigError("config keys 'recommend.als.rank' and 'recommend.als.max_iter' must be >= 1")
    for key in ("reg_param", "alpha"):
        if a.get(key, 0) < 0:
            raise ConfigError(f"config key 'recommend.als.{key}' must be >= 0, got {a[key]}")
    grid = a.get("grid") or {}
    if "rank" in grid:
        _positive_list("als.grid.rank", grid["rank"], int, 1, strict=False)
    for key in ("reg_param", "alpha"):
        if key in grid:
            _positive_list(f"als.grid.{key}", grid[key], _NUM, 0, strict=False)


SERVING_STORES = ("sqlite", "dynamodb")
_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")
_TABLE_PREFIX = re.compile(r"[A-Za-z0-9_.-]{3,200}")


def _check_serving(s: Mapping[str, Any]) -> None:
    """Value checks of the ``serving`` section (types are checked by the schema)."""
    if "store" in s and s["store"] not in SERVING_STORES:
        raise ConfigError(f"config key 'serving.store' must be one of {', '.join(SERVING_STORES)}, got {s['store']!r}")
    prefix = (s.get("dynamodb") or {}).get("table_prefix")
    if prefix is not None and not _TABLE_PREFIX.fullmatch(prefix):
        raise ConfigError(f"config key 'serving.dynamodb.table_prefix' must be 3-200 letters, digits, '_', '-' or '.', "
                          f"got {prefix!r}")
    for key, lo, hi in (("k", 1, 100), ("keep_versions", 1, 1000), ("max_events", 1, 10000)):
        if key in s and not lo <= s[key] <= hi:
            raise ConfigError(f"config key 'serving.{key}' must be in [{lo}, {hi}], got {s[key]}")
    if "refresh_seconds" in s and not 0 < s["refresh_seconds"] <= 3600:
        raise ConfigError(f"config key 'serving.refresh_seconds' must be in (0, 3600], got {s['refresh_seconds']}")
    for key, value in (s.get("gate") or {}).items():
        if not 0 <= value <= 1:
            raise ConfigError(f"config key 'serving.gate.{key}' must be an absolute drop in [0, 1], got {value}")
    variants = s.get("variants") or []
    names = set()
    for i, v in enumerate(variants):
        where = f"config key 'serving.variants[{i}]'"
        if not isinstance(v, Mapping) or set(v) != {"name", "model", "weight"}:
            raise ConfigError(f"{where} must be a mapping with exactly name, model and weight, got {v!r}")
        if not isinstance(v["name"], str) or not _NAME.fullmatch(v["name"]) or v["name"] in names:
            raise ConfigError(f"{where}.name must be a unique name of 1-32 letters, digits, '_' or '-', got {v['name']!r}")
        names.add(v["name"])
        if v["model"] not in (*SERVE_MODELS, "default"):
            raise ConfigError(f"{where}.model must be 'default' or one of {', '.join(SERVE_MODELS)}, got {v['model']!r}")
        if isinstance(v["weight"], bool) or not isinstance(v["weight"], (int, float)) or v["weight"] <= 0:
            raise ConfigError(f"{where}.weight must be a number > 0, got {v['weight']!r}")


def is_local_path(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def local_path(uri: str) -> Path:
    """The filesystem path of a local URI (``file://`` or plain)."""
    if not is_local_path(uri):
        raise ConfigError(f"{uri} is not a local path; this command needs a local folder")
    return Path(uri[len("file://"):] if uri.startswith("file://") else uri)
