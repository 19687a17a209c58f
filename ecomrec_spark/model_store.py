"""The one model store: folders in the lake, ``<lake>/models/<kind>/<version>/``, plus a ``latest`` pointer.

Every saved model goes through here: the review model (``models/review_score``,
the default ``model_dir``), the sentiment model (``models/sentiment``) and the
learned recommendation ranker (``models/ranker``).  It sits beside the packages
that use it, so none of them imports another to reach it.

Layout::

    <lake>/models/review_score/latest                      # one line: the current version
    <lake>/models/review_score/<version>/metadata.json     # params, metrics, features, data range, code version
    <lake>/models/review_score/<version>/<target>/         # Spark ML PipelineModel (XGBoost's own JSON inside)
    <lake>/models/review_score/<version>/SHA256SUMS        # SHA-256 of every file above, checked at load

The small files go through Hadoop's FileSystem, so ``s3://`` works as well as a
local folder.  Nothing is pickled.  The pointer is written last, so a run killed
while saving leaves the previous version current.

Loading never runs code from the lake: :func:`load_models` checks the version, the
manifest and every stage's metadata (:mod:`ecomrec_spark.model_safety`) before
Spark ML's readers see the folder, and refuses with a ``ValueError`` (CLI exit 2).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import subprocess
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from pyspark.sql import SparkSession

import ecomrec_spark
from ecomrec_spark import model_safety as safety
from ecomrec_spark.config import REPO_ROOT
from ecomrec_spark.storage import read_text, write_text

log = logging.getLogger(__name__)

REVIEW_SCORE, SENTIMENT, RANKER = "models/review_score", "models/sentiment", "models/ranker"
# the command that saves each kind: named when a load finds none saved yet, or a model the code cannot use
SAVED_BY = {REVIEW_SCORE: "train-review", SENTIMENT: "insights", RANKER: "build-recommendations"}
MODEL_DIR = REVIEW_SCORE
LATEST = "latest"
METADATA = "metadata.json"


class ModelMismatchError(ValueError):
    """A saved model does not fit the code that tries to load it."""


def models_root(lake: str, model_dir: str = MODEL_DIR) -> str:
    """``<lake>/<model_dir>``, by default ``models/review_score`` (the lake helpers only know the table layers)."""
    return f"{lake.rstrip('/')}/{model_dir}"


def git_commit() -> str | None:
    """The repository's HEAD commit, or None outside a git checkout (e.g. a wheel on EMR)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def code_version() -> dict[str, Any]:
    return {"package": ecomrec_spark.__version__, "git_commit": git_commit()}


def new_version(fingerprint: Mapping[str, Any], now: dt.datetime | None = None) -> str:
    """``YYYYmmddTHHMMSSZ-<7 hex>``: UTC time plus a short hash of what defines the model."""
    now = now or dt.datetime.now(dt.UTC)
    digest = hashlib.sha1(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()[:7]
    return f"{now:%Y%m%dT%H%M%SZ}-{digest}"


def save_models(spark: SparkSession, lake: str, version: str, models: Mapping[str, Any], metadata: Mapping[str, Any],
                model_dir: str = MODEL_DIR) -> str:
    """Save each part's PipelineModel, the metadata, the SHA-256 manifest, then move ``latest`` to ``version``.

    ``models`` maps a part name (the review targets, the ranker's settings, sentiment's ``model``) to its
    fitted pipeline; the metadata records them as ``targets``.  Returns the version folder URI.
    """
    safety.check_version(version, "the version to save")
    folder = f"{models_root(lake, model_dir)}/{version}"
    for target, model in models.items():
        model.write().overwrite().save(f"{folder}/{safety.check_name(target, 'the model to save')}")
    write_text(spark, f"{folder}/{METADATA}",
               json.dumps({**metadata, "targets": list(models), "version": version}, indent=2, default=str) + "\n")
    safety.write_manifest(spark, folder)  # after every other file of the folder, before the pointer
    write_text(spark, f"{models_root(lake, model_dir)}/{LATEST}", version + "\n")
    log.info("saved %s model %s to %s", model_dir, version, folder)
    return folder


def latest_version(spark: SparkSession, lake: str, model_dir: str = MODEL_DIR) -> str:
    """The version the ``latest`` pointer names, checked to be a version (it becomes part of a path)."""
    uri = f"{models_root(lake, model_dir)}/{LATEST}"
    try:
        text = read_text(spark, uri)
    except FileNotFoundError:
        job = SAVED_BY.get(model_dir, "build-recommendations")
        raise FileNotFoundError(f"no model under {models_root(lake, model_dir)}; run `ecomrec {job}` first") from None
    return safety.check_version(text.strip(), uri)


def _requested(spark: SparkSession, lake: str, version: str | None, model_dir: str) -> str:
    """The version asked for, or the pointer's; either way checked before it becomes part of a path."""
    if version:
        return safety.check_version(version, "the requested version")
    return latest_version(spark, lake, model_dir)


def load_metadata(spark: SparkSession, lake: str, version: str | None = None, model_dir: str = MODEL_DIR) -> dict[str, Any]:
    """``metadata.json`` of ``version`` (default: ``latest``); its own ``version`` must be the one asked for."""
    version = _requested(spark, lake, version, model_dir)
    uri = f"{models_root(lake, model_dir)}/{version}/{METADATA}"
    try:
        meta = json.loads(read_text(spark, uri))
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise safety.UnsafeModelError(f"{uri} is not JSON ({exc}); refusing to load") from None
    if not isinstance(meta, dict) or meta.get("version") != version:
        saved = meta.get("version") if isinstance(meta, dict) else None
        raise safety.UnsafeModelError(f"{uri} says version {str(saved)[:80]!r}, but {version!r} was asked for "
                                      "(the pointer or the folder was changed); refusing to load")
    return meta


def check_features(metadata: Mapping[str, Any], expected: Sequence[str], model_dir: str = MODEL_DIR) -> None:
    """Raise ``ModelMismatchError`` when the saved feature list differs from the code's."""
    saved = list(metadata.get("features") or [])
    if saved != list(expected):
        missing = [f for f in expected if f not in saved]
        extra = [f for f in saved if f not in expected]
        raise ModelMismatchError(
            f"model {metadata.get('version')} was trained on a different feature list than this code builds "
            f"(missing from the model: {missing or 'none'}; only in the model: {extra or 'none'}"
            f"{'; same names in another order' if not missing and not extra else ''}); "
            f"retrain with `ecomrec {SAVED_BY.get(model_dir, 'train-review')}`")


def load_models(spark: SparkSession, lake: str, expected_features: Sequence[str] | None = None,
                version: str | None = None, model_dir: str = MODEL_DIR, sql_statements: Collection[str] = ()
                ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every part's PipelineModel of ``version`` (default: ``latest``) and the metadata, after the checks.

    In order, each refusing with a ``ValueError`` before the next runs: the version's form, the folder's
    SHA-256 manifest, the metadata's own version, the feature list (when ``expected_features`` is given),
    then each pipeline's stage metadata (``sql_statements``: the ``SQLTransformer`` statements allowed).
    Only then do Spark ML's readers open the folder.
    """
    from pyspark.ml import PipelineModel

    version = _requested(spark, lake, version, model_dir)
    folder = f"{models_root(lake, model_dir)}/{version}"
    safety.verify_manifest(spark, folder)
    meta = load_metadata(spark, lake, version, model_dir)
    if expected_features is not None:
        check_features(meta, expected_features, model_dir)
    targets = meta.get("targets")
    if not isinstance(targets, list) or not targets:
        raise safety.UnsafeModelError(f"{folder}/{METADATA} lists no model parts (targets); refusing to load")
    for target in targets:
        safety.check_stage(spark, f"{folder}/{safety.check_name(target, folder + '/' + METADATA)}", sql_statements)
    log.info("model folder %s passed its manifest and metadata checks; loading %s", folder, targets)
    models = {t: PipelineModel.load(f"{folder}/{t}") for t in targets}
    return models, meta
