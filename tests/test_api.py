"""The online API (``ecomrec serve``) over a hand-built SQLite serving store: no Spark anywhere in this file.

The store holds two customers, a few products, popular lists (overall, per category, one region)
and trending, shaped as :mod:`ecomrec_spark.serving.keys` describes; the expected answers sit beside
the inputs.  Most tests go through FastAPI's TestClient; one module fixture runs the real thing
(``python -m ecomrec_spark.cli serve`` under uvicorn on a free loopback port), which urllib and
headless Chromium then query.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from headless import FLAGS, chromium, colours_and_ink

from ecomrec_spark.config import load_settings
from ecomrec_spark.serving import keys
from ecomrec_spark.serving.api import create_app
from ecomrec_spark.serving.events import EVENT_TYPES, LocalSink, S3Sink, validate_batch
from ecomrec_spark.serving.store import SQLITE_FILE, SQLiteStore
from ecomrec_spark.serving.variants import Variant, assign, bucket, parse_variants
from ecomrec_spark.settings import Settings

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
V1, V2 = "20261205T030000Z-aaaaaa", "20261205T040000Z-bbbbbb"
SALT = "test-salt"
VARIANTS = [{"name": "control", "model": "default", "weight": 0.5}, {"name": "ranker", "model": "ltr", "weight": 0.5}]

# ---------------------------------------------------------------------------------------------------------------
# the store, by hand

PRODUCTS = {  # product_id -> (category, price, review_score, p_satisfied)
    "P1": ("books", 10.0, 4.5, 0.9),
    "P2": ("books", 20.0, 3.9, 0.7),
    "P3": ("toys", 30.0, 4.1, 0.8),
    "P4": ("toys", 40.0, 2.5, 0.3),
    "P5": ("garden", 50.0, 4.8, 0.95),
}


def item(pid: str, rank: int, score: float, reason: str, **extra: Any) -> dict[str, Any]:
    category, price, review, p = PRODUCTS[pid]
    return {"product_id": pid, "rank": rank, "score": score, "reason": reason, "category": category, "price": price,
            "review_score": review, "p_satisfied": p, **extra}


def ranked(pids: list[str], reason: str, top: float = 1.0) -> list[dict[str, Any]]:
    return [item(p, i + 1, round(top - 0.1 * i, 2), reason) for i, p in enumerate(pids)]


def documents(tag: str = "") -> dict[str, Any]:
    """The documents of one version; ``tag`` changes C1's ease list so two versions tell apart."""
    ease_c1 = ["P3", "P1", "P5"] if not tag else ["P5", "P4"]
    return {
        keys.customer("C1", "ease"): {"items": ranked(ease_c1, "bought with your items")},
        keys.customer("C1", "ltr"): {"items": ranked(["P2", "P3", "P4", "P5"], "ranker")},
        keys.customer("C1", "popular"): {"items": ranked(["P1", "P2"], "popular")},
        keys.customer("C2", "ease"): {"items": ranked(["P4", "P1"], "bought with your items")},  # no ltr list
        keys.product("P1"): {"product": {**item("P1", 1, 0.0, ""), "name": "A novel"},
                             "similar": ranked(["P2", "P3"], "similar"),
                             "together": [item("P2", 1, 0.5, "bought together", lift=3.5, confidence=0.4),
                                          item("P5", 2, 0.2, "bought together", lift=1.5, confidence=0.1)]},
        keys.product("P2"): {"product": item("P2", 1, 0.0, ""), "similar": [], "together": []},
        keys.popular(): {"items": ranked(["P5", "P1", "P3", "P2", "P4"], "popular")},
        keys.popular("category", "books"): {"items": ranked(["P1", "P2"], "popular in books")},
        keys.popular("category", "toys"): {"items": ranked(["P3", "P4"], "popular in toys")},
        keys.popular("region", "SP"): {"items": ranked(["P3", "P2", "P1"], "popular in SP")},
        keys.trending(): {"items": ranked(["P4", "P5"], "rising")},
    }


INFO = {"default_model": "ease", "models": ["ltr", "ease", "popular"], "k": 5, "review_model_version": "rv-7",
        "metrics": {"ndcg_at_10": 0.31, "macro_f1": 0.42}, "categories": ["books", "garden", "toys"],
        "regions": ["SP"], "published_at": "2026-12-05T03:00:00Z"}


def publish_by_hand(path: Path, version: str, tag: str = "", live: bool = True) -> SQLiteStore:
    writer = SQLiteStore(path)
    writer.begin(version, {})
    writer.write(version, ((k, json.dumps(v)) for k, v in documents(tag).items()))
    writer.commit(version, {**INFO, "published_at": version[:8]})
    if live:
        writer.set_live(version)
    return writer


def config(tmp: Path, *overrides: str) -> Settings:
    return load_settings(None, [f"paths.serving={tmp / 'serving'}", f"paths.raw={tmp / 'raw'}",
                                "serving.refresh_seconds=0.2", "serving.k=5", "serving.max_events=5",
                                f"serving.variants={json.dumps(VARIANTS)}", f"serving.salt={SALT}", *overrides])


@pytest.fixture
def env(tmp_path):
    writer = publish_by_hand(tmp_path / "serving" / SQLITE_FILE, V1)
    cfg = config(tmp_path)
    with TestClient(create_app(cfg)) as client:
        yield client, writer, cfg, tmp_path


def name_in(customer_id: str, variants: tuple[Variant, ...], salt: str) -> str:
    v = assign(customer_id, variants, salt)
    assert v is not None
    return v.name


def variant_of(customer_id: str) -> Variant:
    v = assign(customer_id, parse_variants(VARIANTS), SALT)
    assert v is not None
    return v


def pids(body: dict[str, Any]) -> list[str]:
    return [i["product_id"] for i in body["items"]]


def an_id_in(variant: str, prefix: str = "U") -> str:
    """An unknown customer id the hash puts in ``variant``."""
    return next(f"{prefix}{i}" for i in range(1000) if variant_of(f"{prefix}{i}").name == variant)


# ---------------------------------------------------------------------------------------------------------------
# recommendations


def test_a_known_customer_gets_their_variants_list_with_every_item_field(env):
    client, *_ = env
    r = client.get("/v1/customers/C1/recommendations", params={"k": 2})
    assert r.status_code == 200
    body = r.json()
    v = variant_of("C1")
    model = "ease" if v.name == "control" else "ltr"
    expected = {"ease": ["P3", "P1"], "ltr": ["P2", "P3"]}[model]
    assert body == {
        "version": V1, "model": model, "variant": v.name, "k": 2, "customer_id": "C1", "fallback": False,
        "fallback_list": None, "category": None, "region": None,
        "items": [item(p, i + 1, round(1.0 - 0.1 * i, 2), "bought with your items" if model == "ease" else "ranker")
                  for i, p in enumerate(expected)]}
    assert client.get("/v1/customers/C1/recommendations").json()["k"] == 5  # default 10, capped at the version's k


def test_each_variant_serves_its_model_and_model_overrides_the_variant(env):
    client, _, _, tmp = env
    vs = parse_variants(VARIANTS)
    for variant, expected in (("control", ("ease", ["P3", "P1", "P5"])), ("ranker", ("ltr", ["P2", "P3", "P4", "P5"]))):
        salt = next(f"s{i}" for i in range(500) if name_in("C1", vs, f"s{i}") == variant)
        with TestClient(create_app(config(tmp, f"serving.salt={salt}"))) as other:
            body = other.get("/v1/customers/C1/recommendations").json()
        assert (body["variant"], body["model"], pids(body)) == (variant, *expected)
    body = client.get("/v1/customers/C1/recommendations", params={"model": "ltr", "k": 3}).json()
    assert (body["model"], body["variant"], pids(body)) == ("ltr", "override", ["P2", "P3", "P4"])
    body = client.get("/v1/customers/C1/recommendations", params={"model": "popular"}).json()
    assert (body["model"], body["variant"], pids(body)) == ("popular", "override", ["P1", "P2"])


def test_a_customer_without_a_list_of_the_variants_model_gets_the_default_models_list(env):
    client, *_ = env
    body = client.get("/v1/customers/C2/recommendations", params={"model": "ltr"}).json()  # C2 has only ease
    assert (body["model"], body["variant"], body["fallback"], pids(body)) == ("ease", "override", False, ["P4", "P1"])


def test_category_filters_the_list_and_ranks_are_renumbered(env):
    client, *_ = env
    body = client.get("/v1/customers/C1/recommendations", params={"model": "ltr", "category": "toys"}).json()
    assert [(i["product_id"], i["rank"]) for i in body["items"]] == [("P3", 1), ("P4", 2)]
    assert body["category"] == "toys"


def test_an_unknown_customer_gets_the_popularity_fallback_overall_regional_or_by_category(env):
    client, *_ = env
    cid = an_id_in("ranker")
    body = client.get(f"/v1/customers/{cid}/recommendations", params={"k": 3}).json()
    assert body == {"version": V1, "model": "popular", "variant": "ranker", "k": 3, "customer_id": cid,
                    "fallback": True, "fallback_list": "overall", "category": None, "region": None,
                    "items": [item(p, i + 1, round(1.0 - 0.1 * i, 2), "popular")
                              for i, p in enumerate(["P5", "P1", "P3"])]}
    body = client.get(f"/v1/customers/{cid}/recommendations", params={"region": "SP"}).json()
    assert (body["fallback"], body["fallback_list"], pids(body)) == (True, "region:SP", ["P3", "P2", "P1"])
    body = client.get(f"/v1/customers/{cid}/recommendations", params={"region": "SP", "category": "books"}).json()
    assert (body["fallback_list"], pids(body)) == ("region:SP", ["P2", "P1"])
    body = client.get(f"/v1/customers/{cid}/recommendations", params={"category": "toys"}).json()
    assert (body["fallback_list"], pids(body)) == ("category:toys", ["P3", "P4"])
    body = client.get(f"/v1/customers/{cid}/recommendations", params={"region": "XX"}).json()  # no such list
    assert (body["fallback_list"], pids(body)) == ("overall", ["P5", "P1", "P3", "P2", "P4"])
    known = client.get("/v1/customers/C1/recommendations", params={"region": "SP"}).json()
    assert known["fallback"] is False  # region only steers the fallback


# ---------------------------------------------------------------------------------------------------------------
# products and lists


def test_similar_bought_together_and_review_score(env):
    client, *_ = env
    body = client.get("/v1/products/P1/similar").json()
    assert body == {"version": V1, "model": None, "variant": None, "product_id": "P1", "k": 5,
                    "items": ranked(["P2", "P3"], "similar")}
    body = client.get("/v1/products/P1/bought-together", params={"k": 1}).json()
    assert body["items"] == [item("P2", 1, 0.5, "bought together", lift=3.5, confidence=0.4)]
    assert client.get("/v1/products/P1/review-score").json() == {
        "version": V1, "model": "rv-7", "variant": None, "product_id": "P1", "name": "A novel", "description": None,
        "category": "books", "price": 10.0, "review_score": 4.5, "p_satisfied": 0.9}
    assert client.get("/v1/products/P2/similar").json()["items"] == []


def test_popular_and_trending(env):
    client, *_ = env
    assert pids(client.get("/v1/popular", params={"k": 2}).json()) == ["P5", "P1"]
    body = client.get("/v1/popular", params={"category": "books"}).json()
    assert (body["model"], body["category"], pids(body)) == ("popular", "books", ["P1", "P2"])
    assert pids(client.get("/v1/popular", params={"region": "SP"}).json()) == ["P3", "P2", "P1"]
    assert pids(client.get("/v1/popular", params={"region": "SP", "category": "toys"}).json()) == ["P3"]
    r = client.get("/v1/popular", params={"region": "XX"})
    assert r.status_code == 404 and r.json()["error"] == "no such list"
    body = client.get("/v1/trending").json()
    assert (body["version"], body["model"], body["variant"], pids(body)) == (V1, "trending", None, ["P4", "P5"])


# ---------------------------------------------------------------------------------------------------------------
# bad input and failures


@pytest.mark.parametrize("url, field", [
    ("/v1/customers/bad$id/recommendations", "customer_id"),
    (f"/v1/customers/{'C' * 65}/recommendations", "customer_id"),
    ("/v1/products/P%201/similar", "product_id"),
    ("/v1/products/P1;drop/review-score", "product_id"),
    ("/v1/customers/C1/recommendations?k=0", "k"),
    ("/v1/customers/C1/recommendations?k=abc", "k"),
    ("/v1/popular?k=101", "k"),
])
def test_malformed_ids_and_k_get_a_422_json_error(env, url, field):
    client, *_ = env
    r = client.get(url)
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "invalid request"
    assert [d["field"] for d in body["detail"]] == [field]
    if field == "customer_id":
        assert body["detail"][0]["message"] == "customer_id must be 1-64 letters, digits, '_', '-', '.' or ':'"


def test_k_above_the_published_k_unknown_model_and_unknown_product(env):
    client, *_ = env
    r = client.get("/v1/customers/C1/recommendations", params={"k": 6})
    assert r.status_code == 422
    assert r.json() == {"error": "k out of range",
                        "detail": f"k must be in [1, 5] (version {V1} keeps 5 items per list), got 6"}
    r = client.get("/v1/customers/C1/recommendations", params={"model": "als"})
    assert r.status_code == 422
    assert r.json()["detail"] == f"model 'als' is not served by version {V1}; choose from ltr, ease, popular"
    r = client.get("/v1/products/NOPE/similar")
    assert r.status_code == 404
    assert r.json() == {"error": "unknown product", "detail": f"product 'NOPE' is not in serving version {V1}"}
    assert client.get("/v1/nothing").json() == {"error": "not found", "detail": "no endpoint GET /v1/nothing; see /docs"}


def test_a_missing_store_or_no_live_version_is_a_503_naming_ecomrec_publish(tmp_path):
    with TestClient(create_app(config(tmp_path))) as client:  # no store file at all
        for url in ("/healthz", "/v1/customers/C1/recommendations", "/v1/products/P1/similar", "/v1/popular",
                    "/v1/trending"):
            r = client.get(url)
            assert r.status_code == 503, url
            assert r.json()["error"] == "serving store unavailable"
            assert "ecomrec publish" in r.json()["detail"]
        r = client.get("/v1/customers/bad$id/recommendations")
        assert r.status_code == 422  # the id is checked before the store is read
        page = client.get("/", params={"customer_id": "C1"})
        assert page.status_code == 503 and "ecomrec publish" in page.text
    publish_by_hand(tmp_path / "serving" / SQLITE_FILE, V1, live=False)  # a store, but nothing live yet
    with TestClient(create_app(config(tmp_path))) as client:
        r = client.get("/v1/trending")
        assert r.status_code == 503 and "no live version" in r.json()["detail"]


def test_an_unexpected_error_is_a_500_json_without_a_stack_trace(env):
    _, _, cfg, tmp = env

    class Broken(SQLiteStore):
        def get(self, version: str, key: str) -> Any:
            raise RuntimeError("secret internals at /srv/x.py line 3")

    app = create_app(cfg, store=Broken(tmp / "serving" / SQLITE_FILE, readonly=True))
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/v1/customers/C1/recommendations")
    assert r.status_code == 500
    assert r.json() == {"error": "internal error",
                        "detail": "the request failed on the server; the cause is in the server log"}
    assert "Traceback" not in r.text and "secret" not in r.text


def test_the_api_reads_a_dynamodb_store_too(tmp_path, monkeypatch):
    moto = pytest.importorskip("moto")
    from ecomrec_spark.serving.store import DynamoStore

    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    with moto.mock_aws():
        store = DynamoStore("ecomrec-test", region="us-east-1")
        store.begin(V1, {})
        store.write(V1, ((k, json.dumps(v)) for k, v in documents().items()))
        store.commit(V1, INFO)
        store.set_live(V1)
        with TestClient(create_app(config(tmp_path), store=DynamoStore("ecomrec-test", region="us-east-1"))) as client:
            body = client.get("/v1/customers/C1/recommendations", params={"model": "ease"}).json()
            assert (body["version"], pids(body)) == (V1, ["P3", "P1", "P5"])
            assert client.get("/healthz").json()["store"] == "dynamodb:ecomrec-test-*"
            assert client.get("/v1/products/NOPE/similar").status_code == 404
        with TestClient(create_app(config(tmp_path), store=DynamoStore("no-such", region="us-east-1"))) as client:
            r = client.get("/v1/trending")
            assert r.status_code == 503 and "ecomrec publish" in r.json()["detail"]


# ---------------------------------------------------------------------------------------------------------------
# versions, health, metrics, docs


def test_a_new_live_version_is_served_without_a_restart(env):
    client, writer, *_ = env
    before = client.get("/v1/customers/C1/recommendations", params={"model": "ease"}).json()
    assert (before["version"], pids(before)) == (V1, ["P3", "P1", "P5"])
    publish_by_hand(writer.path, V2, tag="second")  # a second publish into the same store, made live
    time.sleep(0.35)  # past serving.refresh_seconds = 0.2
    after = client.get("/v1/customers/C1/recommendations", params={"model": "ease"}).json()
    assert (after["version"], pids(after)) == (V2, ["P5", "P4"])
    assert client.get("/healthz").json()["version"] == V2
    writer.set_live(V1)  # a rollback is the same pointer switch
    time.sleep(0.35)
    assert client.get("/v1/trending").json()["version"] == V1


def test_healthz_names_the_store_version_and_variants(env):
    client, writer, *_ = env
    body = client.get("/healthz").json()
    assert body == {"version": V1, "model": "ease", "variant": None, "status": "ok", "store": f"sqlite:{writer.path}",
                    "published_at": "20261205", "default_model": "ease", "models": ["ltr", "ease", "popular"],
                    "variants": [{"name": "control", "model": "ease", "weight": 0.5},
                                 {"name": "ranker", "model": "ltr", "weight": 0.5}]}


def test_metrics_count_requests_per_route_template(env):
    client, *_ = env
    for cid in ("C1", "C2", an_id_in("control")):
        client.get(f"/v1/customers/{cid}/recommendations")
    client.get("/v1/products/NOPE/similar")
    text = client.get("/metrics").text
    route = "/v1/customers/{customer_id}/recommendations"
    assert f'ecomrec_http_requests_total{{method="GET",route="{route}",status="200"}} 3.0' in text
    assert 'ecomrec_http_requests_total{method="GET",route="/v1/products/{product_id}/similar",status="404"} 1.0' \
        in text
    assert f'ecomrec_http_request_duration_seconds_count{{method="GET",route="{route}"}} 3.0' in text
    assert "ecomrec_recommendation_fallbacks_total 1.0" in text
    assert f'ecomrec_serving_live_version{{version="{V1}"}} 1.0' in text
    assert "/v1/customers/C1" not in text  # templates, not raw paths


def test_openapi_documents_every_endpoint_with_its_response_model(env):
    client, *_ = env
    spec = client.get("/openapi.json").json()
    assert set(spec["paths"]) >= {"/v1/customers/{customer_id}/recommendations", "/v1/products/{product_id}/similar",
                                  "/v1/products/{product_id}/bought-together", "/v1/products/{product_id}/review-score",
                                  "/v1/popular", "/v1/trending", "/v1/events", "/healthz", "/metrics", "/"}
    ok = spec["paths"]["/v1/customers/{customer_id}/recommendations"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"]["$ref"].endswith("/Recommendations")
    assert client.get("/docs").status_code == 200


# ---------------------------------------------------------------------------------------------------------------
# A/B variants


def test_variant_assignment_is_stable_and_follows_the_weights():
    vs = parse_variants([{"name": "a", "model": "default", "weight": 2}, {"name": "b", "model": "ltr", "weight": 3},
                         {"name": "c", "model": "ease", "weight": 5}])
    ids = [f"customer-{i}" for i in range(10_000)]
    first = [name_in(c, vs, SALT) for c in ids]
    assert first == [name_in(c, vs, SALT) for c in ids]  # the same id, the same variant
    shares = Counter(first)
    for name, weight in (("a", 0.2), ("b", 0.3), ("c", 0.5)):
        assert abs(shares[name] / len(ids) - weight) <= 0.03, shares
    other_salt = [name_in(c, vs, "another-salt") for c in ids]
    assert sum(x != y for x, y in zip(first, other_salt, strict=True)) > 3000  # a new salt reshuffles customers
    assert 0 <= bucket("C1", SALT) < 1 and bucket("C1", SALT) == bucket("C1", SALT)
    assert assign("C1", (), SALT) is None


# ---------------------------------------------------------------------------------------------------------------
# events


def _events(*rows: dict[str, Any]) -> dict[str, Any]:
    return {"events": list(rows)}


GOOD: list[dict[str, Any]] = [{"customer_id": "C1", "product_id": "P1", "event_type": "impression", "timestamp": "2026-12-05T03:20:00Z",
         "variant": "control", "version": V1},
        {"customer_id": "C1", "product_id": "P1", "event_type": "click", "timestamp": "2026-12-05T04:20:01+01:00"},
        {"customer_id": "new:7", "product_id": "P5", "event_type": "purchase", "timestamp": "2026-12-05 03:25:00.5",
         "variant": None, "version": None}]


def test_a_valid_batch_lands_as_one_fsynced_jsonl_file_with_the_exact_fields(env, monkeypatch):
    client, _, _, tmp = env
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr("ecomrec_spark.serving.events.os.fsync", recording_fsync)
    r = client.post("/v1/events", json=_events(*GOOD))
    assert r.status_code == 202
    body = r.json()
    folder = tmp / "raw" / "events_api"
    files = sorted(folder.iterdir())
    assert [f.name for f in files] == [Path(body["file"]).name]  # one file, no temp file left behind
    assert re.fullmatch(r"events-\d{8}T\d{6}Z-[0-9a-f]{16}\.jsonl", files[0].name)
    assert body == {"version": V1, "model": None, "variant": None, "accepted": 3, "batch_id": body["batch_id"],
                    "file": str(files[0]), "object": None}
    assert files[0].name.endswith(f"-{body['batch_id']}.jsonl")
    assert synced[0].endswith(".tmp") and synced[1] == str(folder)  # the data before the rename, then the folder
    lines = [json.loads(line) for line in files[0].read_text().splitlines()]
    received = lines[0]["received_at"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", received)
    common = {"batch_id": body["batch_id"], "received_at": received}
    assert lines == [
        {"customer_id": "C1", "product_id": "P1", "event_type": "impression", "timestamp": "2026-12-05T03:20:00Z",
         "variant": "control", "version": V1, **common},
        {"customer_id": "C1", "product_id": "P1", "event_type": "click", "timestamp": "2026-12-05T03:20:01Z",
         "variant": None, "version": None, **common},
        {"customer_id": "new:7", "product_id": "P5", "event_type": "purchase",
         "timestamp": "2026-12-05T03:25:00.500000Z", "variant": None, "version": None, **common}]
    assert list(lines[0]) == ["customer_id", "product_id", "event_type", "timestamp", "variant", "version",
                              "batch_id", "received_at"]
    assert "ecomrec_events_accepted_total 3.0" in client.get("/metrics").text


def test_a_batch_with_one_bad_row_is_refused_whole_and_writes_nothing(env):
    client, _, _, tmp = env
    bad = {"customer_id": "C 1", "product_id": "P1", "event_type": "like", "timestamp": "05/12/2026"}
    r = client.post("/v1/events", json=_events(GOOD[0], bad, GOOD[1], {"customer_id": "C1", "extra": 1}))
    assert r.status_code == 422
    assert r.json() == {"error": "invalid events", "detail": [
        {"index": 1, "reason": "customer_id must be 1-64 letters, digits, '_', '-', '.' or ':', got 'C 1'; "
                               "event_type must be one of impression, click, view, cart, purchase, got 'like'; "
                               "timestamp must be ISO-8601 like 2026-12-05T03:20:00Z, got '05/12/2026'"},
        {"index": 3, "reason": "unknown field(s) 'extra' (allowed: customer_id, product_id, event_type, timestamp, "
                               "variant, version); missing product_id; missing event_type; missing timestamp"}]}
    assert not (tmp / "raw" / "events_api").exists()
    for body, fragment in ((_events(*[GOOD[0]] * 6), "at most 5 events"), ({"events": []}, "non-empty"),
                           ([GOOD[0]], "exactly one key")):
        r = client.post("/v1/events", json=body)
        assert r.status_code == 422 and fragment in r.json()["detail"][0]["reason"]
    r = client.post("/v1/events", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"] == "invalid JSON"
    r = client.post("/v1/events", content=b" " * 20_000, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "batch too large"
    assert not (tmp / "raw" / "events_api").exists()


def test_event_validation_is_pure_and_matches_the_ingest_vocabulary():
    from ecomrec_spark.sources.events_api import EVENT_TYPES as INGESTED

    assert EVENT_TYPES == INGESTED
    ok, problems = validate_batch(_events({**GOOD[0], "version": "v1"}, {**GOOD[0], "timestamp": "2026-02-30T00:00:00"}),
                                  10)
    assert ok == [] and [(p.index, p.reason.split(",")[0]) for p in problems] == [
        (0, "version must be null or a serving version like 20261205T031500Z-1a2b3c"),
        (1, "timestamp '2026-02-30T00:00:00' is not a real date and time")]


def test_the_s3_sink_puts_one_object_under_the_raw_prefix():
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    with moto.mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="shop")
        sink = S3Sink("s3://shop/raw", client=s3)
        ok, _ = validate_batch(_events(*GOOD[:2]), 10)
        written = sink.append(ok)
        assert written.object is not None
        key = written.object.removeprefix("s3://shop/")
        assert re.fullmatch(r"raw/events_api/events-\d{8}T\d{6}Z-[0-9a-f]{16}\.jsonl", key)
        lines = s3.get_object(Bucket="shop", Key=key)["Body"].read().decode().splitlines()
    assert [json.loads(line)["event_type"] for line in lines] == ["impression", "click"]
    assert written.file is None and written.accepted == 2


def test_a_failed_write_leaves_nothing_and_answers_503(env, monkeypatch):
    client, _, _, tmp = env

    def failing_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("ecomrec_spark.serving.events.os.fsync", failing_fsync)
    with pytest.raises(OSError):
        LocalSink(tmp / "direct").append(validate_batch(_events(GOOD[0]), 10)[0])
    assert list((tmp / "direct" / "events_api").iterdir()) == []
    r = client.post("/v1/events", json=_events(GOOD[0]))
    assert r.status_code == 503 and r.json()["error"] == "events not written"
    assert list((tmp / "raw" / "events_api").iterdir()) == []


# ---------------------------------------------------------------------------------------------------------------
# the page through TestClient


def test_the_page_shows_every_models_list_and_a_products_lists(env):
    client, *_ = env
    html = client.get("/").text
    assert "Customer id" in html and "Product id" in html and "<script" not in html
    r = client.get("/", params={"customer_id": "C1"})
    assert r.status_code == 200
    for model in ("ltr", "ease", "popular"):
        assert f"<h3>{model}" in r.text
    assert r.text.count('class="pid"') == 3 + 4 + 2  # ease, ltr and popular lists of C1
    r = client.get("/", params={"product_id": "P1"})
    assert r.status_code == 200 and "A novel" in r.text and "4.50" in r.text and "3.50" in r.text  # score, lift
    r = client.get("/", params={"customer_id": "<script>alert(1)</script>"})
    assert r.status_code == 422 and "customer_id must be" in r.text and "<script>alert" not in r.text
    r = client.get("/", params={"product_id": "NOPE"})
    assert r.status_code == 404 and "is not in serving version" in r.text
    r = client.get("/", params={"customer_id": "stranger"})
    assert r.status_code == 200 and "fallback" in r.text


# ---------------------------------------------------------------------------------------------------------------
# no Spark in the API process


def test_creating_the_app_and_the_cli_serve_path_import_no_pyspark(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        import uvicorn
        calls = []
        uvicorn.run = lambda app, **kw: calls.append((type(app).__name__, kw["host"], kw["port"]))
        from ecomrec_spark.cli import main
        assert main(["serve", "--port", "8765", "--set", "paths.serving={tmp_path}", "--set",
                     "paths.raw={tmp_path / 'raw'}"]) == 0
        assert calls == [("FastAPI", "127.0.0.1", 8765)], calls
        from ecomrec_spark.serving.api import create_app
        from ecomrec_spark.config import load_settings
        create_app(load_settings(None, ["paths.serving={tmp_path}"]))
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("pyspark", "py4j", "delta", "xgboost"))
        assert not loaded, loaded
        print("spark-free")
    """)
    done = subprocess.run([PY, "-c", code], check=False, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0 and "spark-free" in done.stdout, done.stderr[-3000:]


def test_the_serve_extra_is_not_shipped_to_emr_and_the_page_is_package_data():
    import tomllib

    from ecomrec_spark.aws.packaging import runtime_requirements

    def name(requirement: str) -> str:
        return re.split(r"[^A-Za-z0-9_.-]", requirement, maxsplit=1)[0].lower()

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    extra = {name(r) for r in project["project"]["optional-dependencies"]["serve"]}
    assert {"fastapi", "uvicorn", "jinja2", "prometheus-client"} <= extra
    shipped = {name(r) for part in runtime_requirements() for r in part}
    assert not shipped & extra, shipped & extra  # the Spark jobs on EMR stay lean
    assert project["tool"]["setuptools"]["package-data"]["ecomrec_spark.serving"] == ["templates/*.html"]


# ---------------------------------------------------------------------------------------------------------------
# a real uvicorn server, urllib and headless Chromium


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    publish_by_hand(tmp / "serving" / SQLITE_FILE, V1)
    port = _free_port()
    log = (tmp / "server.log").open("w")
    proc = subprocess.Popen([PY, "-m", "ecomrec_spark.cli", "serve", "--port", str(port),
                             "--set", f"paths.serving={tmp / 'serving'}", "--set", f"paths.raw={tmp / 'raw'}",
                             "--set", "serving.k=5"], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(f"{base}/healthz", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ecomrec serve did not come up:\n{(tmp / 'server.log').read_text()[-3000:]}")
            time.sleep(0.2)
        yield base, tmp
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_the_real_server_answers_health_and_a_list(server):
    base, _ = server
    status, body = _get(f"{base}/healthz")
    assert status == 200 and json.loads(body)["version"] == V1
    status, body = _get(f"{base}/v1/customers/C1/recommendations?model=ease&k=3")
    assert status == 200
    assert [i["product_id"] for i in json.loads(body)["items"]] == ["P3", "P1", "P5"]
    status, body = _get(f"{base}/v1/customers/bad$id/recommendations")
    assert status == 422 and json.loads(body)["error"] == "invalid request"


def test_headless_chromium_renders_the_page_with_the_list(server, tmp_path):
    browser = chromium()
    base, _ = server
    url = f"{base}/?customer_id=C1"
    flags = [browser, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*flags, "--dump-dom", url], check=False, capture_output=True, text=True, timeout=120)
    cells = re.findall(r'<td class="pid">([^<]+)</td>', dom.stdout)
    assert cells == ["P2", "P3", "P4", "P5", "P3", "P1", "P5", "P1", "P2"], dom.stderr[-2000:]  # ltr, ease, popular
    shot = tmp_path / "page.png"
    done = subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1200,900", url],
                          check=False, capture_output=True, text=True, timeout=120)
    assert shot.is_file(), done.stderr[-2000:]
    width, height, colours, ink = colours_and_ink(shot)
    assert (width, height) == (1200, 900)
    assert len(colours) > 50  # text, the header and the tables, not one flat colour
    assert colours[bytes((0x2B, 0x6C, 0xB0))] > 10_000  # the blue header was painted
    assert ink > 0.02
