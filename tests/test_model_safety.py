"""Loading a model never runs code from the lake: each way of tampering with a saved folder is refused.

Small real models (a 3-tree review classifier, a 3-tree ranker, a tiny sentiment pipeline) are saved once;
each test tampers with its own copy the way someone with write access to the lake could, and checks that the
load stops with a ``ValueError`` (the CLI's exit code 2) before Spark ML's readers run.  The payload used for
injected callbacks creates a marker file when unpickled; one test shows that xgboost.spark's own loader does
create it, so its absence elsewhere means the checks stopped it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import pickle
import shutil
from pathlib import Path

import pytest
from pyspark.ml import PipelineModel
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual
from test_s3_end_to_end import BUCKET, REPO, s3  # noqa: F401  (the moto S3 server fixture)
from test_s3_end_to_end import _keys as _s3_keys

from ecomrec_spark import model_safety as safety
from ecomrec_spark import model_store
from ecomrec_spark.insights import sentiment as S
from ecomrec_spark.recommend import ranker as R
from ecomrec_spark.recommend.rank_features import LABEL, QID
from ecomrec_spark.review import dataset as D
from ecomrec_spark.review.train import xgb_pipeline

VERSION = "20260101T000000Z-abc1234"
OTHER = "20260202T000000Z-def5678"
PREDICTION = ["order_id", "prediction", "probability"]


class _Payload:
    """Unpickling it opens ``path`` for writing, which creates the file: visible proof that code ran."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def _serialized(marker: Path) -> str:
    return base64.encodebytes(pickle.dumps(_Payload(marker))).decode("ascii")  # as xgboost.spark stores callbacks


@pytest.fixture(scope="module")
def rows(spark):
    """60 orders whose score follows lateness; every feature column present."""
    late = F.col("id") % 4 == 0
    cols = {c: F.lit(0.0) for c in D.FEATURES}
    cols["is_late"] = late.cast("double")
    label = F.when(late, F.col("id") % 3).otherwise(F.lit(2) + F.col("id") % 3).cast("double")
    return spark.range(60).select(F.concat(F.lit("o"), F.col("id").cast("string")).alias("order_id"),
                                  *[v.alias(k) for k, v in cols.items()],
                                  F.when(F.col("id") % 2 == 0, "toys").otherwise("books").alias("category"),
                                  F.lit("delivered").alias("order_status"), label.alias(D.LABEL_SCORE),
                                  F.lit(False).alias(D.IS_VALIDATION))


@pytest.fixture(scope="module")
def review_model(rows):
    pipe, clf = xgb_pipeline(D.LABEL_SCORE, early_stopping_rounds=None)
    return pipe.fit(rows, {clf.getParam("n_estimators"): 3, clf.getParam("max_depth"): 2})


@pytest.fixture(scope="module")
def pristine(spark, review_model, tmp_path_factory):
    """A lake holding one saved review model (``VERSION``, part ``score``), copied by each test before tampering."""
    lake = tmp_path_factory.mktemp("pristine") / "lake"
    model_store.save_models(spark, str(lake), VERSION, {"score": review_model}, {"features": D.feature_columns()})
    return lake


@pytest.fixture
def lake(pristine, tmp_path):
    copy = tmp_path / "lake"
    shutil.copytree(pristine, copy)
    return copy


def _folder(lake: Path, version: str = VERSION, model_dir: str = model_store.MODEL_DIR) -> Path:
    return lake / model_dir / version


def _drop_sidecar(path: Path) -> None:
    # Hadoop's local FileSystem checks a hidden .<name>.crc on read; someone editing a file removes it (S3 has none)
    path.with_name(f".{path.name}.crc").unlink(missing_ok=True)


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    _drop_sidecar(path)


def _stage_metadata(part: Path, prefix: str) -> Path:
    """The metadata file of the first stage whose folder name has ``prefix`` after its index (``0_``, ``1_`` ...)."""
    stage = sorted(p for p in (part / "stages").iterdir() if p.name.split("_", 1)[1].startswith(prefix))[0]
    (file,) = [p for p in (stage / "metadata").iterdir() if p.name.startswith("part-")]
    return file


def _edit_json(path: Path, change) -> None:
    meta = json.loads(path.read_text())
    change(meta)
    _write(path, json.dumps(meta) + "\n")


def _load_review(spark, lake: Path):
    return model_store.load_models(spark, str(lake), D.feature_columns())


def _reseal(spark, folder: Path) -> None:
    """What someone who can write the folder can also do: recompute the manifest over their changes."""
    safety.write_manifest(spark, str(folder))
    _drop_sidecar(folder / safety.MANIFEST)


def test_save_writes_a_manifest_of_every_file_and_the_load_round_trips(spark, rows, review_model, lake):
    folder = _folder(lake)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".crc")
                   and p.name != safety.MANIFEST)
    expected = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(folder).as_posix()}\n"
                       for p in files)  # sha256sum's own format, hashed here independently of the JVM
    assert (folder / safety.MANIFEST).read_text() == expected
    assert "metadata.json" in expected and "score/stages/" in expected
    assert (lake / model_store.MODEL_DIR / "latest").read_text() == VERSION + "\n"
    models, meta = _load_review(spark, lake)
    assert (meta["version"], meta["targets"]) == (VERSION, ["score"])
    assertDataFrameEqual(models["score"].transform(rows).select(*PREDICTION),
                         review_model.transform(rows).select(*PREDICTION))


@pytest.mark.parametrize("pointer", ["../../../tmp/evil", "20260101T000000Z-abc1234/../x", "latest", ""])
def test_a_pointer_that_is_not_a_version_is_refused(spark, lake, pointer):
    _write(lake / model_store.MODEL_DIR / "latest", pointer + "\n")
    with pytest.raises(safety.UnsafeModelError, match="not a model version"):
        _load_review(spark, lake)
    with pytest.raises(safety.UnsafeModelError, match="not a model version"):
        model_store.load_metadata(spark, str(lake))


def test_a_pointer_to_a_copied_folder_must_match_its_metadata(spark, lake):
    # a well-formed version whose folder is a copy: the manifest still matches, the metadata names another version
    shutil.copytree(_folder(lake), _folder(lake, OTHER))
    _write(lake / model_store.MODEL_DIR / "latest", OTHER + "\n")
    with pytest.raises(safety.UnsafeModelError, match=f"says version '{VERSION}', but '{OTHER}' was asked for"):
        _load_review(spark, lake)
    with pytest.raises(safety.UnsafeModelError, match="not a model version"):
        model_store.load_models(spark, str(lake), version="../review_score/" + VERSION)


def test_tampered_metadata_is_refused_by_the_manifest(spark, lake):
    meta_file = _folder(lake) / "metadata.json"
    _edit_json(meta_file, lambda m: m.update(targets=["score", "../../elsewhere"]))
    with pytest.raises(safety.UnsafeModelError, match=r"1 file\(s\) differ from their SHA-256 in SHA256SUMS "
                                                      r"\(metadata.json\)"):
        _load_review(spark, lake)
    _reseal(spark, _folder(lake))  # with a recomputed manifest the part name itself is refused
    with pytest.raises(safety.UnsafeModelError, match="names the model part '../../elsewhere'"):
        _load_review(spark, lake)


def test_a_stage_class_outside_the_allowed_list_is_not_imported(spark, lake):
    stage = _stage_metadata(_folder(lake) / "score", "VectorAssembler")
    _edit_json(stage, lambda m: m.update({"class": "http.server.SimpleHTTPRequestHandler"}))
    _reseal(spark, _folder(lake))
    with pytest.raises(safety.UnsafeModelError, match="'http.server.SimpleHTTPRequestHandler', not one of the stage"):
        _load_review(spark, lake)


def test_a_stage_uid_that_leaves_the_folder_is_refused(spark, lake):
    top = next((_folder(lake) / "score" / "metadata").glob("part-*"))
    _edit_json(top, lambda m: m["paramMap"].update(stageUids=["../../../../other"] + m["paramMap"]["stageUids"][1:]))
    _reseal(spark, _folder(lake))
    with pytest.raises(safety.UnsafeModelError, match="stage uids .* not plain names"):
        _load_review(spark, lake)


def test_a_changed_added_or_missing_file_is_refused(spark, lake):
    folder = _folder(lake)
    (booster,) = (folder / "score" / "stages").glob("*_SparkXGBClassifier_*/model/part-00000")
    original = booster.read_text()
    _write(booster, original.replace('"base_score"', '"base_score" ', 1))  # one byte: still valid JSON
    with pytest.raises(safety.UnsafeModelError, match=r"differ from their SHA-256 .*SparkXGBClassifier_\w+/model/"
                                                      r"part-00000"):
        _load_review(spark, lake)
    _write(booster, original)
    _load_review(spark, lake)  # restored: accepted again
    _write(folder / "score" / "extra.py", "print('hi')\n")
    with pytest.raises(safety.UnsafeModelError, match=r"missing: none; not listed: \['score/extra.py'\]"):
        _load_review(spark, lake)
    (folder / "score" / "extra.py").unlink()
    (folder / "metadata.json").unlink()
    with pytest.raises(safety.UnsafeModelError, match=r"missing: \['metadata.json'\]; not listed: none"):
        _load_review(spark, lake)


def test_the_unchecked_loader_runs_injected_callbacks(lake, tmp_path):
    """The threat is real: xgboost.spark's loader unpickles ``serialized_callbacks`` (so the tests below mean
    something when the marker stays absent)."""
    marker = tmp_path / "ran.txt"
    stage = _stage_metadata(_folder(lake) / "score", "SparkXGBClassifier")
    _edit_json(stage, lambda m: m.update(serialized_callbacks=_serialized(marker)))
    PipelineModel.load(str(_folder(lake) / "score"))  # what model_store.load_models did before these checks
    assert marker.exists()


@pytest.mark.parametrize("reseal", [False, True], ids=["manifest-removed", "manifest-recomputed"])
def test_injected_callbacks_are_refused_before_xgboost_reads_them(spark, lake, tmp_path, reseal):
    marker = tmp_path / "ran.txt"
    stage = _stage_metadata(_folder(lake) / "score", "SparkXGBClassifier")
    _edit_json(stage, lambda m: m.update(serialized_callbacks=_serialized(marker)))
    if reseal:
        _reseal(spark, _folder(lake))
        why = "carries 'serialized_callbacks'"
    else:  # as observed on S3: payload in place and the manifest deleted
        (_folder(lake) / safety.MANIFEST).unlink()
        _drop_sidecar(_folder(lake) / safety.MANIFEST)
        why = "has no SHA256SUMS"
    with pytest.raises(safety.UnsafeModelError, match=why):
        _load_review(spark, lake)
    assert not marker.exists()


def test_callbacks_in_a_params_map_are_refused(spark, lake):
    stage = _stage_metadata(_folder(lake) / "score", "SparkXGBClassifier")
    _edit_json(stage, lambda m: m["paramMap"]["arbitrary_params_dict"].update(callbacks=["x"]))
    _reseal(spark, _folder(lake))
    with pytest.raises(safety.UnsafeModelError, match="carries 'callbacks'"):
        _load_review(spark, lake)


def test_nested_pipelines_are_checked_stage_by_stage(spark, rows, review_model, tmp_path):
    lake = tmp_path / "lake"
    nested = PipelineModel(stages=[review_model])  # the review pipeline as the one stage of another
    model_store.save_models(spark, str(lake), VERSION, {"score": nested}, {"features": D.feature_columns()})
    models, _ = _load_review(spark, lake)
    assertDataFrameEqual(models["score"].transform(rows).select(*PREDICTION),
                         review_model.transform(rows).select(*PREDICTION))
    marker = tmp_path / "ran.txt"
    (inner,) = (_folder(lake) / "score" / "stages").iterdir()
    _edit_json(_stage_metadata(inner, "SparkXGBClassifier"),
               lambda m: m.update(serialized_callbacks=_serialized(marker)))
    _reseal(spark, _folder(lake))
    with pytest.raises(safety.UnsafeModelError,
                       match="stages/0_PipelineModel_\\w+/stages/.*carries 'serialized_callbacks'"):
        _load_review(spark, lake)
    assert not marker.exists()


def test_score_reviews_exits_2_and_runs_nothing(spark, lake, tmp_path, capsys):
    from ecomrec_spark import lake as lk
    from ecomrec_spark.cli import main

    for layer, table in (("gold", "order_features"), ("silver", "reviews")):  # so the stage does not skip
        lk.overwrite(spark.createDataFrame([("o1",)], "order_id string"), str(lake), layer, table)
    marker = tmp_path / "ran.txt"
    stage = _stage_metadata(_folder(lake) / "score", "SparkXGBClassifier")
    _edit_json(stage, lambda m: m.update(serialized_callbacks=_serialized(marker)))
    (_folder(lake) / safety.MANIFEST).unlink()
    assert main(["score-reviews", "--set", f"paths.lake={lake}", "--set", "spark.shuffle_partitions=2"]) == 2
    assert f"ecomrec score-reviews: error: {_folder(lake)} has no SHA256SUMS" in capsys.readouterr().err
    assert not marker.exists()
    assert not (lake / "gold" / "review_predictions").exists()


def test_the_ranker_saves_and_loads_through_the_checked_path(spark, tmp_path):
    rows = spark.range(60).select(
        (F.col("id") % 6).cast("int").alias(QID), (F.col("id") % 5).cast("double").alias("f1"),
        (F.col("id") % 3).cast("double").alias("f2"), (F.col("id") % 5 == 0).cast("double").alias(LABEL))
    model = R.fit_ranker(rows, ["f1", "f2"], {"n_estimators": 3, "max_depth": 2})
    lake = tmp_path / "lake"
    model_store.save_models(spark, str(lake), VERSION, {"all": model}, {"features": ["f1", "f2"]}, model_dir=R.MODEL_DIR)
    models, meta = model_store.load_models(spark, str(lake), ["f1", "f2"], model_dir=R.MODEL_DIR)
    assert meta["targets"] == ["all"]
    cols = [QID, "f1", "f2", "prediction"]
    assertDataFrameEqual(models["all"].transform(rows).select(*cols), model.transform(rows).select(*cols))
    stages = _folder(lake, model_dir=R.MODEL_DIR) / "all" / "stages"
    booster = next(stages.glob("*_SparkXGBRanker_*/model/part-00000"))
    _write(booster, booster.read_text() + " ")
    with pytest.raises(safety.UnsafeModelError, match="differ from their SHA-256"):
        model_store.load_models(spark, str(lake), model_dir=R.MODEL_DIR)


def test_sentiment_sql_must_be_what_the_code_builds(spark, tmp_path):
    texts = ["otimo produto", "muito bom recomendo", "chegou rapido otimo", "bom produto",
             "nao recebi", "pessimo produto", "veio quebrado pessimo", "nao recomendo"]
    reviews = spark.createDataFrame([(t, 1.0 if i < 4 else 0.0) for i, t in enumerate(texts)],
                                    f"{S.TEXT_ALL} string, {S.LABEL} double")
    model = S.sentiment_pipeline(vocab_size=50, min_df=1, max_iter=5, weight_col=None).fit(reviews)
    lake = tmp_path / "lake"
    S.save_sentiment_model(spark, str(lake), VERSION, model, {"settings": {}})
    loaded, _ = S.load_sentiment_model(spark, str(lake))
    assertDataFrameEqual(loaded.transform(reviews).select(S.TEXT_ALL, "prediction"),
                         model.transform(reviews).select(S.TEXT_ALL, "prediction"))
    folder = _folder(lake, model_dir=S.MODEL_DIR)
    evil = "SELECT *, java_method('java.lang.System', 'getProperty', 'user.home') AS x FROM __THIS__"
    _edit_json(_stage_metadata(folder / S.MODEL_SUBDIR, "SQLTransformer"),
               lambda m: m["paramMap"].update(statement=evil))
    _reseal(spark, folder)
    with pytest.raises(safety.UnsafeModelError, match="holds the SQL .*java_method.*not one this code builds"):
        S.load_sentiment_model(spark, str(lake))


# On S3 through s3a: the manifest is written and checked through Hadoop's S3AFileSystem (no .crc sidecars there).
# A child process, because hadoop-aws must be on the JVM's classpath from the start (as in test_s3_end_to_end).
S3A_CHILD = r"""
import json, sys
from pyspark.ml import Pipeline
from pyspark.ml.feature import VectorAssembler
from ecomrec_spark import model_safety as safety
from ecomrec_spark.config import load_config
from ecomrec_spark import model_store
from ecomrec_spark.session import build_session
from ecomrec_spark.storage import hadoop_fs, list_files

version, overrides = sys.argv[1], sys.argv[2:]
cfg = load_config(None, overrides)
spark = build_session(cfg)
lake = cfg["paths"]["lake"]
rows = spark.createDataFrame([(1.0, 2.0)], "a double, b double")
model = Pipeline(stages=[VectorAssembler(inputCols=["a", "b"], outputCol="f")]).fit(rows)
folder = model_store.save_models(spark, lake, version, {"score": model}, {"features": ["a", "b"]})
models, meta = model_store.load_models(spark, lake, ["a", "b"])
out = {"loaded": meta["version"], "f": [list(r["f"]) for r in models["score"].transform(rows).collect()],
       "files": sorted(list_files(spark, folder))}
path, fs = hadoop_fs(spark, f"{folder}/{safety.MANIFEST}")
fs.delete(path, False)
try:
    model_store.load_models(spark, lake, ["a", "b"])
    out["refused"] = None
except safety.UnsafeModelError as exc:
    out["refused"] = str(exc)
print("MODEL_S3A " + json.dumps(out), flush=True)
"""


def test_manifest_on_s3a(s3, tmp_path):  # noqa: F811  (pytest injects the imported moto fixture by name)
    import os
    import subprocess
    import sys

    sets = [f"paths.lake=s3a://{BUCKET}/model-lake", f"spark.conf.spark.hadoop.fs.s3a.endpoint={s3['endpoint']}",
            "spark.conf.spark.hadoop.fs.s3a.path.style.access=true",
            "spark.conf.spark.hadoop.fs.s3a.connection.ssl.enabled=false", "spark.master=local[1]",
            "spark.shuffle_partitions=1", "spark.conf.spark.ui.showConsoleProgress=false",
            "spark.conf.spark.driver.memory=1g", f"spark.conf.spark.local.dir={tmp_path / 'spark-local'}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_GATEWAY")}
    proc = subprocess.run([sys.executable, "-c", S3A_CHILD, VERSION, *sets],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("MODEL_S3A ")]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    out = json.loads(lines[-1][len("MODEL_S3A "):])
    assert (out["loaded"], out["f"]) == (VERSION, [[1.0, 2.0]])
    folder = f"models/review_score/{VERSION}"
    keys = [k[len(f"model-lake/{folder}/"):] for k in _s3_keys(s3["client"], f"model-lake/{folder}/")]
    assert safety.MANIFEST not in keys and not any(k.endswith(".crc") for k in keys)  # the child deleted it
    assert out["files"] == sorted([*keys, safety.MANIFEST])  # what s3a listed after the save: every object
    assert out["refused"] == (f"s3a://{BUCKET}/model-lake/{folder} has no SHA256SUMS: its files cannot be checked, "
                              "so it is not loaded (a model saved by this code always has one; retrain)")
