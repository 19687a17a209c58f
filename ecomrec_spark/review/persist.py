"""Model folders in the lake: ``<lake>/models/<kind>/<version>/`` plus a ``latest`` pointer.

The review model lives under ``models/review_score`` (the default ``model_dir``);
the learned recommendation ranker under ``models/ranker``.

Layout::

    <lake>/models/review_score/latest                      # one line: the current version
    <lake>/models/review_score/<version>/metadata.json     # params, metrics, features, data range, code version
    <lake>/models/review_score/<version>/<target>/         # Spark ML PipelineModel (XGBoost's own JSON inside)

The small files go through Hadoop's FileSystem, so ``s3://`` works as well as a
local folder.  Nothing is pickled.  The pointer is written last, so a run killed
while saving leaves the previous version current.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import subprocess
from typing import Any, Mapping, Sequence

from pyspark.sql import SparkSession

import ecomrec_spark
from ecomrec_spark.config import REPO_ROOT
from ecomrec_spark.storage import read_text, write_text

log = logging.getLogger(__name__)

MODEL_DIR = "models/review_score"
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
    now = now or dt.datetime.now(dt.timezone.utc)
    digest = hashlib.sha1(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()[:7]
    return f"{now:%Y%m%dT%H%M%SZ}-{digest}"


def save_models(spark: SparkSession, lake: str, version: str, models: Mapping[str, Any], metadata: Mapping[str, Any],
                model_dir: str = MODEL_DIR) -> str:
    """Save each target's PipelineModel, the metadata, then move ``latest`` to ``version``.

    Returns the version folder URI.
    """
    folder = f"{models_root(lake, model_dir)}/{version}"
    for target, model in models.items():
        model.write().overwrite().save(f"{folder}/{target}")
    write_text(spark, f"{folder}/{METADATA}", json.dumps({**metadata, "version": version}, indent=2, default=str) + "\n")
    write_text(spark, f"{models_root(lake, model_dir)}/{LATEST}", version + "\n")
    log.info("saved %s model %s to %s", model_dir, version, folder)
    return folder


def latest_version(spark: SparkSession, lake: str, model_dir: str = MODEL_DIR) -> str:
    try:
        return read_text(spark, f"{models_root(lake, model_dir)}/{LATEST}").strip()
    except FileNotFoundError:
        job = "train-review" if model_dir == MODEL_DIR else "build-recommendations"
        raise FileNotFoundError(f"no model under {models_root(lake, model_dir)}; run `ecomrec {job}` first") from None


def load_metadata(spark: SparkSession, lake: str, version: str | None = None, model_dir: str = MODEL_DIR) -> dict[str, Any]:
    version = version or latest_version(spark, lake, model_dir)
    return json.loads(read_text(spark, f"{models_root(lake, model_dir)}/{version}/{METADATA}"))


def check_features(metadata: Mapping[str, Any], expected: Sequence[str]) -> None:
    """Raise ``ModelMismatchError`` when the saved feature list differs from the code's."""
    saved = list(metadata.get("features") or [])
    if saved != list(expected):
        missing = [f for f in expected if f not in saved]
        extra = [f for f in saved if f not in expected]
        raise ModelMismatchError(
            f"review model {metadata.get('version')} was trained on a different feature list than this code builds "
            f"(missing from the model: {missing or 'none'}; only in the model: {extra or 'none'}"
            f"{'; same names in another order' if not missing and not extra else ''}); "
            "retrain with `ecomrec train-review`")


def load_models(spark: SparkSession, lake: str, expected_features: Sequence[str], version: str | None = None
                ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load every target's PipelineModel of ``version`` (default: ``latest``) after checking its features."""
    from pyspark.ml import PipelineModel

    meta = load_metadata(spark, lake, version)
    check_features(meta, expected_features)
    folder = f"{models_root(lake)}/{meta['version']}"
    models = {t: PipelineModel.load(f"{folder}/{t}") for t in meta["targets"]}
    return models, meta
