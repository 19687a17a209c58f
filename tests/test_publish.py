"""``ecomrec publish``: hand-built gold tables -> the serving store, read back through both stores.

The lake is tiny and written here with delta-spark through ``lake.py``; the documents every key
must hold sit beside it (``expected_documents``).  DynamoDB is moto's server on 127.0.0.1
(conftest's ``dynamodb_endpoint``), a real DynamoDB API written from Spark's executors.  The gate,
``--force``, ``--list``, ``--rollback`` and ``keep_versions`` go through ``ecomrec_spark.cli.main``.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pytest

from ecomrec_spark import lake as lk
from ecomrec_spark.cli import main
from ecomrec_spark.config import load_settings
from ecomrec_spark.recommend.evaluate import METRIC_KEYS, metrics_frame
from ecomrec_spark.serving import gate
from ecomrec_spark.serving.publish import PublishError, list_versions, publish, rollback
from ecomrec_spark.serving.store import SQLITE_FILE, new_version, open_store
from ecomrec_spark.settings import Gate, Settings
from ecomrec_spark.summary import publish_lines

K = 2  # serving.k: every list is cut to two items
TS = dt.datetime(2018, 8, 1)

# ------------------------------------------------------------------------------------------- the lake

# product -> (category, avg_price, predicted_mean_score, p_satisfied, title, description); P5 is only listed
PRODUCTS = {
    "P1": ("toys", 10.0, 4.12345, 0.81234, "Wooden train", "A toy train"),
    "P2": ("toys", 20.5, 3.5, 0.5, None, "plush"),
    "P3": ("books", 7.25, None, None, None, None),
    "P4": ("books", 3.3333, None, None, None, None),
}
# silver/products: P3 is missing; P5 was never sold (no attributes) but the catalogue knows it
CATALOGUE = {**{p: (v[0], v[4], v[5]) for p, v in PRODUCTS.items() if p != "P3"}, "P5": ("games", "Board game", None)}
RECS = [  # customer, model, rank, product, score, reason
    ("C1", "knn", 1, "P2", 0.9, "personal"), ("C1", "knn", 2, "P3", 0.5, "personal"),
    ("C1", "popular", 1, "P1", 1.0, "popular"),
    ("C2", "knn", 1, "P1", 0.7, "personal"), ("C2", "knn", 3, "P4", 0.1, "personal"),  # rank 3 > K: cut
    ("C3", "popular", 1, "P1", 1.0, "popular_in_region"),
]
SIMILAR = [  # product, rank, similar product, similarity, model
    ("P1", 1, "P2", 0.95, "knn"), ("P1", 2, "P3", 0.9, "knn"), ("P1", 3, "P4", 0.8, "knn"),
    ("P1", 1, "P4", 0.5, "content"),  # P1 has a knn list: its content list is not shown
    ("P4", 1, "P5", 0.4, "content"),  # P4 has only content
]
RULES = [  # level, antecedent, consequent, confidence, lift, baskets
    ("product", ["P1"], ["P2"], 0.5, 3.0, "orders"),
    ("product", ["P1"], ["P3"], 0.6, 3.0, "orders"),  # same lift, higher confidence: first
    ("product", ["P1"], ["P4"], 0.9, 2.0, "orders"),  # third: cut
    ("product", ["P1"], ["P2"], 0.9, 9.0, "sessions"),  # the order rule of the same pair wins
    ("product", ["P2"], ["P5"], 0.2, 1.5, "sessions"),
    ("product", ["P2"], ["P1"], 0.3, 0.8, "orders"),  # lift below 1: less often together than by chance
    ("product", ["P1", "P2"], ["P3"], 0.9, 5.0, "orders"),  # two antecedents: not bought-together
    ("category", ["toys"], ["books"], 0.9, 5.0, "orders"),
]
POPULAR = [  # scope, scope_value, product, score, rank
    ("overall", None, "P1", 3.0, 1), ("overall", None, "P2", 2.0, 2), ("overall", None, "P3", 1.0, 3),
    ("category", "toys", "P2", 2.0, 1), ("category", "books", "P3", 1.0, 1),
    ("region", "SP", "P3", 1.0, 1), ("trending", None, "P4", 2.5, 1),
]


def _attrs(pid: str) -> dict:
    cat, price, score, sat, _, _ = PRODUCTS.get(pid, (None,) * 6)
    return {"category": cat or CATALOGUE.get(pid, (None,))[0], "price": None if price is None else round(price, 2),
            "review_score": None if score is None else round(score, 3),
            "p_satisfied": None if sat is None else round(sat, 4)}


def item(pid: str, rank: int, score: float, reason: str, **extra) -> dict:
    return {"product_id": pid, "rank": rank, "score": score, "reason": reason, **_attrs(pid), **extra}


def product_item(pid: str) -> dict:
    _, name, description = CATALOGUE.get(pid, (None,) * 3)
    return {**item(pid, None, None, None), "name": name, "description": description}


EXPECTED = {
    "customer#C1#knn": {"items": [item("P2", 1, 0.9, "personal"), item("P3", 2, 0.5, "personal")]},
    "customer#C1#popular": {"items": [item("P1", 1, 1.0, "popular")]},
    "customer#C2#knn": {"items": [item("P1", 1, 0.7, "personal")]},
    "customer#C3#popular": {"items": [item("P1", 1, 1.0, "popular_in_region")]},
    "product#P1": {"product": product_item("P1"),
                   "similar": [item("P2", 1, 0.95, "similar (knn)"), item("P3", 2, 0.9, "similar (knn)")],
                   "together": [item("P3", 1, 3.0, "bought together", lift=3.0, confidence=0.6),
                                item("P2", 2, 3.0, "bought together", lift=3.0, confidence=0.5)]},
    "product#P2": {"product": product_item("P2"), "similar": [],
                   "together": [item("P5", 1, 1.5, "viewed in the same session", lift=1.5, confidence=0.2)]},
    "product#P3": {"product": product_item("P3"), "similar": [], "together": []},
    "product#P4": {"product": product_item("P4"), "similar": [item("P5", 1, 0.4, "similar (content)")], "together": []},
    "product#P5": {"product": product_item("P5"), "similar": [], "together": []},  # only listed: still has a page
    "popular#overall": {"items": [item("P1", 1, 3.0, "popular"), item("P2", 2, 2.0, "popular")]},
    "popular#category#toys": {"items": [item("P2", 1, 2.0, "popular_in_category")]},
    "popular#category#books": {"items": [item("P3", 1, 1.0, "popular_in_category")]},
    "popular#region#SP": {"items": [item("P3", 1, 1.0, "popular_in_region")]},
    "trending": {"items": [item("P4", 1, 2.5, "trending")]},
}
EXPECTED_ROWS = {"customer": 4, "product": 5, "popular": 4, "trending": 1}
REVIEW_VERSION = "20180801T000000Z-a0b1c2d"  # the model version pattern (model_safety.VERSION_PATTERN)
REVIEW_METRICS = {"score": [  # the saved model is the unweighted tuned one (config class_weights false)
    {"model": "xgboost_tuned", "class_weights": "unweighted", "macro_f1": 0.55},
    {"model": "xgboost_tuned", "class_weights": "weighted", "macro_f1": 0.60},
    {"model": "majority", "class_weights": "unweighted", "macro_f1": 0.10}]}


def write_build(spark, lake: str, version: str, ndcg: float) -> None:
    """What one `build-recommendations` leaves: the lists of ``version``, its run row and validation metrics.

    The validation NDCG of the default (knn) in the setting it was picked on (``new``) is ``ndcg``;
    the other rows must not be read."""
    lk.overwrite(spark.createDataFrame(
        [(c, r, p, s, m, why, TS, version) for c, m, r, p, s, why in RECS],
        "customer_id string, rank int, product_id string, score double, model string, reason string, "
        "generated_at timestamp, model_version string"), lake, "gold", "recommendations")
    info = json.dumps({"setting": "new", "default": {"model": "knn", "by": "validation ndcg@k", "setting": "new"}})
    run = spark.createDataFrame([(version, TS, "knn", info)],
                                "model_version string, generated_at timestamp, default_model string, info string")
    lk.replace_where(run, lake, "gold", "recommendation_runs", "model_version", [version])
    rows = [{"model": m, "setting": s, **{x: 0.5 for x in METRIC_KEYS}, "ndcg_at_k": n, "n_users": 10}
            for m, s, n in (("knn", "new", ndcg), ("knn", "all", 0.9), ("popular", "new", 0.1))]
    lk.replace_where(metrics_frame(spark, f"validation-{version}", rows, 10, TS), lake, "gold",
                     "recommendation_metrics", "run_id", [f"validation-{version}"])


def write_lake(spark, lake: str) -> None:
    lk.overwrite(spark.createDataFrame([(p, v[0], v[1]) for p, v in PRODUCTS.items()],
                                       "product_id string, category string, avg_price double"),
                 lake, "gold", "product_features")
    lk.overwrite(spark.createDataFrame([(p, v[2], v[3], 3, REVIEW_VERSION) for p, v in PRODUCTS.items() if v[2]],
                                       "product_id string, predicted_mean_score double, p_satisfied double, "
                                       "n_orders long, model_version string"), lake, "gold", "product_review_scores")
    lk.overwrite(spark.createDataFrame([(p, *v) for p, v in CATALOGUE.items()],
                                       "product_id string, category string, title string, description string"),
                 lake, "silver", "products")
    lk.overwrite(spark.createDataFrame(SIMILAR, "product_id string, rank int, similar_product_id string, "
                                                "similarity double, model string"), lake, "gold", "similar_items")
    lk.overwrite(spark.createDataFrame(
        [(lv, a, c, 0.1, conf, lift, 0.2, 0.2, 100, 10, b) for lv, a, c, conf, lift, b in RULES],
        "level string, antecedent array<string>, consequent array<string>, support double, confidence double, "
        "lift double, antecedent_support double, consequent_support double, n_baskets long, freq long, "
        "baskets string"), lake, "gold", "association_rules")
    lk.overwrite(spark.createDataFrame(
        [(s, v, p, 1, 1, None, None, sc, r) for s, v, p, sc, r in POPULAR],
        "scope string, scope_value string, product_id string, n_customers long, n_orders long, weight double, "
        "n_previous long, score double, rank int"), lake, "gold", "popular_items")
    write_build(spark, lake, "R1", ndcg=0.30)
    meta = Path(lake) / "models" / "review_score" / REVIEW_VERSION / "metadata.json"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"version": REVIEW_VERSION, "config": {"class_weights": False},
                                "metrics": REVIEW_METRICS}))


@pytest.fixture(scope="module")
def gold_lake(spark, tmp_path_factory) -> str:
    lake = str(tmp_path_factory.mktemp("publish") / "lake")
    write_lake(spark, lake)
    return lake


def _sets(lake: str, serving: Path, *more: str) -> list[str]:
    return [f"paths.lake={lake}", f"paths.serving={serving}", f"serving.k={K}", "spark.shuffle_partitions=2", *more]


def _cfg(lake: str, serving: Path, *more: str) -> Settings:
    return load_settings(None, _sets(lake, serving, *more))


def _expected_info(version: str = "R1", ndcg: float = 0.30,
                   gate_text: str = "first version: nothing live to compare with") -> dict:
    return {"gate": gate_text, "default_model": "knn", "models": ["knn", "popular"], "k": K,
            "recommendation_version": version, "default_picked_on": "new", "review_model_version": REVIEW_VERSION,
            "metrics": {"ndcg_at_10": ndcg, "ndcg_k": 10, "review_macro_f1": 0.55},
            "categories": ["books", "toys"], "regions": ["SP"], "rows": EXPECTED_ROWS}


def _info(store, version: str) -> dict:
    info = dict(next(v.info for v in store.versions() if v.version == version))
    assert info.pop("published_at").endswith("Z")
    return info


# ------------------------------------------------------------------------------------------- the gate

def test_gate_compares_both_figures_and_skips_missing_ones():
    limits = Gate(ndcg_drop=0.02, macro_f1_drop=0.02)
    live = {"ndcg_at_10": 0.30, "ndcg_k": 10, "review_macro_f1": 0.50}
    assert gate.compare(None, live, limits) == (True, "first version: nothing live to compare with")
    ok, text = gate.compare(live, {"ndcg_at_10": 0.28, "ndcg_k": 10, "review_macro_f1": 0.52}, limits)
    assert ok and text == ("NDCG@10 0.3000 -> 0.2800 (-0.0200, allowed drop 0.02): ok; "
                           "review macro-F1 0.5000 -> 0.5200 (+0.0200, allowed drop 0.02): ok")
    ok, text = gate.compare(live, {"ndcg_at_10": 0.31, "ndcg_k": 10, "review_macro_f1": 0.47}, limits)
    assert not ok and "review macro-F1 0.5000 -> 0.4700 (-0.0300, more than the allowed drop 0.02): refused" in text
    ok, text = gate.compare(live, {"ndcg_at_10": None, "review_macro_f1": 0.10}, limits.model_copy(update={"macro_f1_drop": 0.5}))
    assert ok and text.startswith("NDCG@10 not compared (no figure for the new version)")
    ok, text = gate.compare({"ndcg_at_10": 0.9, "ndcg_k": 20}, {"ndcg_at_10": 0.1, "ndcg_k": 10}, limits)
    assert ok and text == ("NDCG not compared (measured at k=20 live, k=10 new); "
                           "review macro-F1 not compared (no figure for the live version)")


# ------------------------------------------------------------------------------------------- SQLite

@pytest.fixture(scope="module")
def sqlite_published(spark, gold_lake, tmp_path_factory) -> dict:
    """The lake published once to a SQLite store (the CLI test continues from a copy of it)."""
    serving = tmp_path_factory.mktemp("publish_sqlite") / "serving"
    cfg = _cfg(gold_lake, serving)
    return {"cfg": cfg, "serving": serving, "out": publish(spark, cfg)}


def test_publish_to_sqlite_writes_every_document_and_the_version_info(sqlite_published):
    cfg, out = sqlite_published["cfg"], sqlite_published["out"]
    version = out["version"]
    assert out["live"] == version and out["rows"] == EXPECTED_ROWS and out["dropped"] == []
    assert out["gate"] == "first version: nothing live to compare with"
    store = open_store(cfg, readonly=True)
    assert store.live() == version
    with sqlite3.connect(sqlite_published["serving"] / SQLITE_FILE) as conn:
        stored = {k for (k,) in conn.execute("SELECT key FROM items WHERE version = ?", (version,))}
    assert stored == set(EXPECTED)
    assert {key: store.get(version, key) for key in EXPECTED} == EXPECTED
    assert _info(store, version) == _expected_info()
    assert publish_lines(out) == [f"publish: version {version} -> {store.description}, live; "
                                  "documents: customer 4, product 5, popular 4, trending 1",
                                  "  gate: first version: nothing live to compare with",
                                  "serve it: make serve   (or .venv/bin/ecomrec serve [--conf FILE] [--host H] [--port P])",
                                  "  curl http://127.0.0.1:8000/v1/customers/C1/recommendations",  # the smallest id
                                  "  page http://127.0.0.1:8000/   API docs http://127.0.0.1:8000/docs"]


def test_a_lake_without_recommendations_names_the_job_to_run(spark, tmp_path, capsys):
    assert main(["publish", *[a for s in _sets(str(tmp_path / "empty"), tmp_path / "serving")
                              for a in ("--set", s)]]) == 2
    assert "run `ecomrec build-recommendations` first" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- DynamoDB

def test_publish_to_dynamodb_from_the_executors_then_a_second_version_and_rollback(spark, gold_lake, tmp_path,
                                                                                    dynamodb_endpoint, capsys):
    prefix = f"pubtest-{uuid.uuid4().hex[:8]}"
    sets = _sets(gold_lake, tmp_path / "unused", "serving.store=dynamodb", f"serving.dynamodb.table_prefix={prefix}",
                 "serving.dynamodb.region=us-east-1", f"serving.dynamodb.endpoint_url={dynamodb_endpoint}")
    cfg, args = load_settings(None, sets), [a for s in sets for a in ("--set", s)]
    first = publish(spark, cfg)
    store = open_store(cfg)
    v1 = first["version"]
    assert first["live"] == v1 and first["store"] == f"dynamodb:{prefix}-* at {dynamodb_endpoint}"
    db = boto3.resource("dynamodb", region_name="us-east-1", endpoint_url=dynamodb_endpoint)
    items = db.Table(f"{prefix}-items-{v1}").scan()["Items"]  # a few rows: one page
    assert {i["key"] for i in items} == set(EXPECTED)
    assert {i["key"]: json.loads(i["value"]) for i in items} == EXPECTED
    assert db.meta.client.describe_table(TableName=f"{prefix}-items-{v1}")["Table"]["BillingModeSummary"][
        "BillingMode"] == "PAY_PER_REQUEST"
    assert _info(store, v1) == _expected_info()

    second = publish(spark, cfg)  # the same build again: a new version, the gate passes
    v2 = second["version"]
    assert v2 > v1 and store.live() == v2 and second["dropped"] == []
    assert second["gate"] == ("NDCG@10 0.3000 -> 0.3000 (+0.0000, allowed drop 0.02): ok; "
                              "review macro-F1 0.5500 -> 0.5500 (+0.0000, allowed drop 0.02): ok")
    assert store.get(v2, "product#P1") == store.get(v1, "product#P1") == EXPECTED["product#P1"]
    assert [(v["version"], v["status"], v["live"]) for v in list_versions(cfg)["versions"]] == [
        (v2, "complete", True), (v1, "complete", False)]

    assert main(["publish", "--rollback", *args]) == 0  # no Spark
    assert capsys.readouterr().out.strip() == f"serving store {store.description}: live version {v1} (was {v2})"
    assert store.live() == v1
    with pytest.raises(PublishError, match=f"live version {v1} is the oldest complete version kept"):
        rollback(cfg)


# ------------------------------------------------------------------------------------------- the CLI

def test_gate_refuses_with_exit_3_then_force_list_keep_versions_and_rollback(spark, gold_lake, sqlite_published,
                                                                            tmp_path, capsys):
    lake, serving = str(tmp_path / "lake"), tmp_path / "serving"
    shutil.copytree(gold_lake, lake)  # this test writes a second build...
    shutil.copytree(sqlite_published["serving"], serving)  # ...and goes on from the first version, live
    args = [a for s in _sets(lake, serving) for a in ("--set", s)]
    store = open_store(_cfg(lake, serving))
    v1 = sqlite_published["out"]["version"]
    assert store.live() == v1

    write_build(spark, lake, "R2", ndcg=0.25)  # a worse build: NDCG@10 0.30 -> 0.25, more than the 0.02 allowed
    assert main(["publish", *args]) == 3
    err = capsys.readouterr().err
    assert "NDCG@10 0.3000 -> 0.2500 (-0.0500, more than the allowed drop 0.02): refused" in err
    assert "review macro-F1 0.5500 -> 0.5500 (+0.0000, allowed drop 0.02): ok" in err and "--force" in err
    assert store.live() == v1  # the refused version is complete but not live
    v2 = store.versions()[0].version
    assert v2 > v1 and _info(store, v2)["gate"].startswith("refused")

    assert main(["publish", "--list", *args]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"serving store sqlite:{serving / SQLITE_FILE}: 2 version(s)"
    assert lines[1] == f"    {v2}  complete  default knn  NDCG@10 0.25  review macro-F1 0.55  (refused by the gate)"
    assert lines[2] == f"  * {v1}  complete  default knn  NDCG@10 0.3  review macro-F1 0.55"

    failed = new_version(now=0)  # a publish that died before its commit: pending for ever
    store.begin(failed, {})
    # forced live; keep_versions 1 drops the old live version, the refused one and the failed one
    assert main(["publish", "--force", *args, "--set", "serving.keep_versions=1"]) == 0
    out = capsys.readouterr().out
    v3 = store.live()
    assert v3 > v2 and "made live anyway (--force)" in out
    assert f"dropped old versions: {failed}, {v1}, {v2}" in out
    assert [v.version for v in store.versions()] == [v3]
    with sqlite3.connect(serving / SQLITE_FILE) as conn:
        assert conn.execute("SELECT DISTINCT version FROM items").fetchall() == [(v3,)]
    assert store.get(v3, "customer#C2#knn") == EXPECTED["customer#C2#knn"]

    assert main(["publish", "--rollback", *args]) == 2  # nothing older is kept
    assert "nothing to roll back to" in capsys.readouterr().err

    # --list needs neither Spark nor even pyspark (like the API): a fresh interpreter shows it
    code = ("import sys; from ecomrec_spark.cli import main; rc = main(sys.argv[1:]); "
            "assert 'pyspark' not in sys.modules, 'pyspark imported'; sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, "publish", "--list", *args], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].startswith(f"  * {v3}  complete  default knn  NDCG@10 0.25")
