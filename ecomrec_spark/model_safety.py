"""Checks a saved model folder before any Spark ML reader sees it: nothing read from the lake may run code.

The readers trust the folder they are given:

- ``xgboost.spark`` unpickles (cloudpickle) a ``serialized_callbacks`` entry of a stage's metadata, and
  reads an ``init_booster`` path named there;
- pyspark imports the Python class that a stage's metadata names in ``class`` and calls its ``load``;
- a ``PipelineModel`` finds its stages through the ``stageUids`` of its metadata, so a uid holding ``..``
  reaches outside the folder;
- ``SQLTransformer`` runs the SQL statement of its metadata (``reflect`` / ``java_method`` call Java).

So a load first checks, in this order, and refuses with :class:`UnsafeModelError` (a ``ValueError``: the
CLI prints one line and exits with code 2) before anything is executed:

1. the version (given, or read from the ``latest`` pointer) matches :data:`VERSION_PATTERN`;
2. the folder's :data:`MANIFEST` (SHA-256 of every file, written at save) lists exactly the files present,
   with their contents; a missing manifest is refused too, since removing it is the first thing a
   tamperer would do;
3. every stage's metadata, nested pipelines included, is one JSON object whose class is in
   :data:`ALLOWED_STAGES`, carries no callbacks, no initial booster, and (for ``SQLTransformer``) only a
   statement the loading code itself builds.

The manifest catches a changed, added or lost file; someone who can rewrite the folder can rewrite the
manifest as well, which is why the metadata checks of step 3 do not rely on it.

Example
-------
>>> write_manifest(spark, "s3://bucket/lake/models/review_score/20260101T000000Z-abc1234")  # doctest: +SKIP
>>> verify_manifest(spark, "s3://bucket/lake/models/review_score/20260101T000000Z-abc1234")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator
from typing import Any

from pyspark.sql import SparkSession

from ecomrec_spark.storage import list_files, read_text, sha256_hex, write_text

MANIFEST = "SHA256SUMS"  # ``sha256sum -c SHA256SUMS`` checks a local copy
VERSION_PATTERN = re.compile(r"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{7}")  # persist.new_version: UTC time + short hash
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,62}")  # a model's sub-folder (its target)
_UID_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,127}")  # Spark's ``<Class>_<12 hex>`` stage uids
_PATH_PART = re.compile(r"(?!\.\.?$)[A-Za-z0-9._=-]{1,255}")  # one name in a manifest path: not '.', '..' or '/'
_MANIFEST_LINE = re.compile(r"([0-9a-f]{64})  (\S+)")

PIPELINE_CLASSES = frozenset({"org.apache.spark.ml.PipelineModel", "pyspark.ml.pipeline.PipelineModel"})
SQL_TRANSFORMER = "org.apache.spark.ml.feature.SQLTransformer"
# Every stage class the project's saved pipelines hold (review, sentiment, ranker).  A new stage in one of them
# is added here on purpose; anything else in a folder is refused rather than imported.
ALLOWED_STAGES = PIPELINE_CLASSES | frozenset({
    "org.apache.spark.ml.feature.StringIndexerModel",
    "org.apache.spark.ml.feature.VectorAssembler",
    "org.apache.spark.ml.feature.RegexTokenizer",
    "org.apache.spark.ml.feature.StopWordsRemover",
    "org.apache.spark.ml.feature.NGram",
    "org.apache.spark.ml.feature.CountVectorizerModel",
    "org.apache.spark.ml.feature.IDFModel",
    "org.apache.spark.ml.feature.Word2VecModel",
    "org.apache.spark.ml.classification.LogisticRegressionModel",
    SQL_TRANSFORMER,
    "xgboost.spark.estimator.SparkXGBClassifierModel",
    "xgboost.spark.estimator.SparkXGBRankerModel",
})
# Metadata keys xgboost.spark acts on when present: cloudpickle.loads, and a path read as a booster.
FORBIDDEN_KEYS = frozenset({"serialized_callbacks", "init_booster"})
# Params that hold Python objects when set; saved ones are always null (xgboost.spark skips them on save).
NULL_PARAMS = frozenset({"callbacks", "xgb_model"})


class UnsafeModelError(ValueError):
    """A saved model folder failed a check that keeps its loading from running code."""


def check_version(version: Any, source: str) -> str:
    """``version`` if it is a model version (``YYYYmmddTHHMMSSZ-<7 hex>``), else ``UnsafeModelError``."""
    if not isinstance(version, str) or not VERSION_PATTERN.fullmatch(version):
        raise UnsafeModelError(f"{source} holds {str(version)[:80]!r}, which is not a model version "
                               f"(YYYYmmddTHHMMSSZ-<7 hex>); refusing to load; retrain to write a new one")
    return version


def check_name(name: Any, source: str) -> str:
    """``name`` if it is a plain sub-folder name (lower case, digits, ``_``), else ``UnsafeModelError``."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise UnsafeModelError(f"{source} names the model part {str(name)[:80]!r}, which is not a plain name "
                               "([a-z][a-z0-9_]*); refusing to load")
    return name


# ---------------------------------------------------------------- manifest

def _model_files(spark: SparkSession, folder: str) -> dict[str, int]:
    return {p: n for p, n in list_files(spark, folder).items() if p != MANIFEST}


def write_manifest(spark: SparkSession, folder: str) -> str:
    """Write ``<folder>/SHA256SUMS`` over every file of the folder (``sha256sum`` format, sorted); its URI."""
    lines = [f"{sha256_hex(spark, f'{folder}/{rel}')}  {rel}" for rel in sorted(_model_files(spark, folder))]
    uri = f"{folder}/{MANIFEST}"
    write_text(spark, uri, "\n".join(lines) + "\n")
    return uri


def read_manifest(spark: SparkSession, folder: str) -> dict[str, str]:
    """``{relative path: sha256}`` of the folder's manifest; ``UnsafeModelError`` when absent or malformed."""
    try:
        text = read_text(spark, f"{folder}/{MANIFEST}")
    except FileNotFoundError:
        raise UnsafeModelError(f"{folder} has no {MANIFEST}: its files cannot be checked, so it is not loaded "
                               "(a model saved by this code always has one; retrain)") from None
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        m = _MANIFEST_LINE.fullmatch(line)
        rel = m.group(2) if m else ""
        if not m or not all(_PATH_PART.fullmatch(part) for part in rel.split("/")) or rel in out or rel == MANIFEST:
            raise UnsafeModelError(f"{folder}/{MANIFEST} line {n} is not '<sha256>  <relative path>' of a new, "
                                   f"plain path: {line[:120]!r}; refusing to load")
        out[rel] = m.group(1)
    return out


def verify_manifest(spark: SparkSession, folder: str) -> None:
    """Every file of ``folder`` is in its manifest with the same SHA-256, and every listed file is there."""
    expected = read_manifest(spark, folder)
    present = _model_files(spark, folder)
    missing, extra = sorted(set(expected) - set(present)), sorted(set(present) - set(expected))
    if missing or extra:
        raise UnsafeModelError(f"{folder} does not hold the files its {MANIFEST} lists "
                               f"(missing: {missing[:5] or 'none'}; not listed: {extra[:5] or 'none'}); "
                               "refusing to load")
    changed = [rel for rel in sorted(expected) if sha256_hex(spark, f"{folder}/{rel}") != expected[rel]]
    if changed:
        raise UnsafeModelError(f"{folder}: {len(changed)} file(s) differ from their SHA-256 in {MANIFEST} "
                               f"({', '.join(changed[:5])}); refusing to load")


# ---------------------------------------------------------------- stage metadata

def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Python's json keeps the last of two equal keys, the JVM's reader may keep the first: refuse both readings.
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError(f"duplicate key(s) {sorted({k for k in keys if keys.count(k) > 1})}")
    return dict(pairs)


def read_stage_metadata(spark: SparkSession, path: str) -> dict[str, Any]:
    """The one JSON object of ``<path>/metadata``, read the way Spark's readers see it.

    Spark reads every visible file of the folder (``_`` and ``.`` names are hidden) and takes the first
    line; a folder with more than one visible file, or a file of more than one line, could make Spark read
    something other than what is checked here, so it is refused.
    """
    where = f"{path}/metadata"
    try:
        files = list_files(spark, where)
    except FileNotFoundError:
        raise UnsafeModelError(f"{where} is missing; refusing to load") from None
    visible = [rel for rel in files if not any(part.startswith(("_", ".")) for part in rel.split("/"))]
    if len(visible) != 1 or "/" in visible[0]:
        raise UnsafeModelError(f"{where} must hold exactly one metadata file, found {visible[:5]}; refusing to load")
    text = read_text(spark, f"{where}/{visible[0]}")
    body = text[:-1] if text.endswith("\n") else text
    try:
        if "\n" in body or "\r" in body:
            raise ValueError("more than one line")
        meta = json.loads(body, object_pairs_hook=_no_duplicate_keys)
    except ValueError as exc:
        raise UnsafeModelError(f"{where}/{visible[0]} is not one JSON object ({exc}); refusing to load") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("class"), str):
        raise UnsafeModelError(f"{where}/{visible[0]} has no class name; refusing to load")
    return meta


def _keys(value: Any) -> Iterator[tuple[str, Any]]:
    """Every ``(key, value)`` of every object nested in ``value``."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield k, v
            yield from _keys(v)
    elif isinstance(value, list):
        for v in value:
            yield from _keys(v)


def check_stage(spark: SparkSession, path: str, sql_statements: Collection[str] = ()) -> None:
    """Check the stage saved at ``path`` and, for a pipeline, each of its stages (nested ones too).

    ``sql_statements`` are the only ``SQLTransformer`` statements allowed (those the loading code builds).
    """
    meta = read_stage_metadata(spark, path)
    cls = meta["class"]
    if cls not in ALLOWED_STAGES:
        raise UnsafeModelError(f"{path} is a {cls[:120]!r}, not one of the stage classes this project saves; "
                               "refusing to import it (a new stage type is added to model_safety.ALLOWED_STAGES)")
    for key, value in _keys(meta):
        if key in FORBIDDEN_KEYS or (key in NULL_PARAMS and value is not None):
            raise UnsafeModelError(f"{path}/metadata carries {key!r}, which xgboost.spark would unpickle or load; "
                                   "this project never saves one, so the model is refused before anything runs")
    param_map = meta.get("paramMap")
    params: dict[str, Any] = param_map if isinstance(param_map, dict) else {}
    if cls == SQL_TRANSFORMER and params.get("statement") not in set(sql_statements):
        raise UnsafeModelError(f"{path} holds the SQL {str(params.get('statement'))[:200]!r}, which is not one "
                               "this code builds; refusing to run it")
    if cls in PIPELINE_CLASSES:
        uids = params.get("stageUids")
        if not isinstance(uids, list) or not all(isinstance(u, str) and _UID_PATTERN.fullmatch(u) for u in uids):
            raise UnsafeModelError(f"{path}/metadata has stage uids {str(uids)[:200]}, not plain names; "
                                   "refusing to load")
        width = len(str(len(uids)))  # the folder names Spark gives stages: zero-padded index, '_', uid
        expected = [f"{i:0{width}d}_{u}" for i, u in enumerate(uids)]
        present = set()
        if uids:
            try:
                present = {rel.split("/")[0] for rel in list_files(spark, f"{path}/stages")}
            except FileNotFoundError:
                pass
        if present != set(expected):
            raise UnsafeModelError(f"{path}/stages holds {sorted(present)[:5]}, not the stages its metadata names "
                                   f"{expected[:5]}; refusing to load")
        for name in expected:
            check_stage(spark, f"{path}/stages/{name}", sql_statements)

