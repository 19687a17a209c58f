"""Benchmark: the online API (``ecomrec serve``) under load, on SQLite, on DynamoDB (moto), and Spark for contrast.

What it measures
----------------
Throughput and p50/p95/p99 latency per endpoint of a real ``ecomrec serve`` process (FastAPI,
one uvicorn worker, on 127.0.0.1) over the demo's serving store, the one ``make demo``
publishes to ``paths.serving`` (``./serving/serving.sqlite`` with ``conf/local.yaml``):

1. the ids to request are read from the store's live version itself (plain sqlite3): up to
   ``--max-ids`` customers, products, products with a similar list and products with a
   bought-together list (so neither list endpoint answers an empty list or a 404), plus
   unknown but valid customer ids for 5 % of the recommendation requests (the popularity
   fallback path; ``/metrics`` confirms how many fallbacks the server served);
2. **SQLite**: ``ecomrec serve --conf ... --port <free port>`` as a subprocess; after
   ``/healthz`` answers, each endpoint gets its own block: ``--warmup`` uncounted requests,
   then ``--requests`` (recommendations) or ``--other-requests`` (each other endpoint) at
   ``--concurrency``: ``GET /v1/customers/{id}/recommendations``, ``/v1/products/{id}/similar``,
   ``/v1/products/{id}/bought-together``, ``/v1/products/{id}/review-score``, ``/v1/popular``;
3. **DynamoDB**: a moto server (this file with a hidden ``--moto-port``, a separate process with
   per-request logging off) on a free loopback port with fake credentials; the live version's
   documents are copied from SQLite into a ``DynamoStore`` with the store's own
   begin/write/commit/set_live (the documents publish would write; no Spark), then the same
   loop runs against ``ecomrec serve --set serving.store=dynamodb ...`` with
   ``--dynamo-requests`` / ``--dynamo-other-requests``.  moto is an in-memory Python emulator:
   this measures the API's DynamoDB path plus moto, not AWS latency;
4. **Spark**, for contrast: ``ecomrec recommend --customer-id <id> --model <default> --k 10``
   timed ``--spark-runs`` times as a subprocess (JVM start + Spark session + Delta read per
   lookup; needs the demo lake at ``paths.lake``); median wall time, requests/s = 1 / median.

Every block counts non-2xx answers and transport errors (a 404 is an error, never dropped),
reports latency over all requests, and the CPU the API process (and moto) and the load
generator spent per request (psutil), so a saturated client shows.  The Markdown goes
between ``<!-- serve:start -->`` and ``<!-- serve:end -->`` in ``BENCHMARKS.md``
(:func:`bench.sections.write_section`; ``--no-write`` skips it), the raw numbers to
``bench/out/serve/result.json``, the servers' logs beside it.  Nothing is tuned towards the
target (p99 <= 20 ms and >= 500 requests/s for recommendations on SQLite, 2 cores): the
line says whether it was met, with the numbers.

The load generator
------------------
A closed loop: ``--concurrency`` threads in this process, each with its own ``httpx.Client``
(one keep-alive connection), sending its next request when the previous answer is in, until
the block's fixed count is used up.  Chosen by measuring on the 2-core machine against the
same server (recommendations, 3,000 requests at concurrency 16, load generator CPU per request):

* ``httpx.Client`` in 16 threads: ~0.6 ms of client CPU per request (~0.45 once the clients are kept
  across blocks, as here), the most throughput;
* ``httpx.AsyncClient`` with 16 asyncio workers: ~1.8 ms per request, about half the throughput
  (the client, not the server, was the limit);
* 2 processes x 8 threads: no gain over one process, since the one uvicorn worker uses at most
  one core and one client process needs ~0.6 of the other; a second client process only competes
  with the server for the CPU;
* for reference, a hand-written asyncio socket client (0.13 ms per request, not used: too far from
  what a real caller runs) got ~10-20 % more requests/s out of the same server: on 2 cores the
  load generator's own CPU still costs the server some throughput, and the CPU columns show how much.

Usage::

    .venv/bin/python bench/serve.py        # the demo store (run `make demo` first); about 5 minutes on 2 cores
    .venv/bin/python bench/serve.py --requests 2000 --other-requests 500 --dynamo-requests 500 \\
        --dynamo-other-requests 200 --skip-spark --no-write --set paths.serving=/tmp/store   # a quick check
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import itertools
import json
import math
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python bench/serve.py` from anywhere
    sys.path.insert(0, str(REPO))

from bench.sections import machine_line, write_section  # noqa: E402
from ecomrec_spark.config import is_local_path, load_config, local_path  # noqa: E402
from ecomrec_spark.serving import keys  # noqa: E402
from ecomrec_spark.serving.store import SQLITE_FILE, DynamoStore, SQLiteStore  # noqa: E402

OUT = REPO / "bench" / "out" / "serve"
HOST = "127.0.0.1"
SEED = 42
UNKNOWN_SHARE = 0.05  # of the recommendation requests: customers the store has never seen
REQUEST_TIMEOUT = 10.0  # seconds; a slower answer is a transport error, counted
START_TIMEOUT = 90.0  # seconds for a server to come up
TARGET_P99_MS, TARGET_RPS = 20.0, 500.0
TARGET_ENDPOINT = "recommendations"
DYNAMO_PREFIX = "bench-serve"
DYNAMO_REGION = "us-east-1"
# moto accepts any credentials; fixed fake ones keep boto3 from looking for real ones (or an instance role)
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": DYNAMO_REGION,
            "AWS_EC2_METADATA_DISABLED": "true"}
REAL_AWS_ONLY = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
# (name, path, the id pool that fills {id}); popular needs no id
ENDPOINTS = (("recommendations", "/v1/customers/{id}/recommendations", "customers"),
             ("similar", "/v1/products/{id}/similar", "similar"),
             ("bought-together", "/v1/products/{id}/bought-together", "together"),
             ("review-score", "/v1/products/{id}/review-score", "products"),
             ("popular", "/v1/popular", None))
FALLBACKS_METRIC = "ecomrec_recommendation_fallbacks_total"


# ================================================================================================
# The store: live version and the ids to request
# ================================================================================================

def live_version(db: Path) -> tuple[str, dict[str, Any]]:
    """The live version and its info, or exit saying to run ``make demo``."""
    hint = "run `make demo` first (it publishes the demo store), or point --conf/--set paths.serving at a store"
    if not db.is_file():
        sys.exit(f"bench/serve.py: no serving store at {db}; {hint}")
    store = SQLiteStore(db, readonly=True)
    live = store.live()
    if live is None:
        sys.exit(f"bench/serve.py: the serving store {db} has no live version; {hint}")
    record = next(v for v in store.versions() if v.version == live)
    return live, dict(record.info)


def _keys(conn: sqlite3.Connection, version: str, prefix: str, non_empty: str | None = None,
          prefixed: bool = False) -> list[str]:
    """The ids under ``<prefix>#`` in ``version`` (a range scan of the items primary key; the whole keys
    when ``prefixed``), optionally only those whose document has a non-empty ``non_empty`` list."""
    start = prefix + keys.SEP
    end = prefix + chr(ord(keys.SEP) + 1)
    where = f" AND json_array_length(value, '$.{non_empty}') > 0" if non_empty else ""
    rows = conn.execute(f"SELECT key FROM items WHERE version = ? AND key >= ? AND key < ?{where} ORDER BY key",
                        (version, start, end))
    return [key if prefixed else key[len(start):] for (key,) in rows]


def read_ids(db: Path, version: str, cap: int) -> dict[str, Any]:
    """Up to ``cap`` ids per pool, sampled with a fixed seed; ``customers`` also holds the unknown ids."""
    rng = random.Random(SEED)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        # customer keys are customer#<id>#<model>: one id per customer, whatever the number of its lists
        customers = list(dict.fromkeys(keys.customer_of(k) for k in _keys(conn, version, keys.CUSTOMER, prefixed=True)))
        pools = {"customers": customers, "products": _keys(conn, version, keys.PRODUCT),
                 "similar": _keys(conn, version, keys.PRODUCT, "similar"),
                 "together": _keys(conn, version, keys.PRODUCT, "together")}
    finally:
        conn.close()
    totals = {name: len(ids) for name, ids in pools.items()}
    pools = {name: rng.sample(ids, min(cap, len(ids))) for name, ids in pools.items()}
    known = set(pools["customers"])
    # unknown ids are the share UNKNOWN_SHARE of the list, so cycling through it keeps that share of requests
    n_unknown = max(1, round(len(known) * UNKNOWN_SHARE / (1 - UNKNOWN_SHARE))) if known else 0
    unknown = [f"bench-unknown-{i:05d}" for i in range(n_unknown)]
    pools["customers"] = rng.sample(pools["customers"] + unknown, len(known) + n_unknown)
    return {"pools": pools, "totals": totals, "known_customers": len(known), "unknown_customers": n_unknown}


def urls(path: str, ids: Sequence[str] | None, n: int) -> list[str]:
    """``n`` request paths cycling through ``ids`` (already shuffled)."""
    if "{id}" not in path:
        return [path] * n
    if not ids:
        return []
    return [path.format(id=ids[i % len(ids)]) for i in range(n)]


# ================================================================================================
# Processes: the API, moto, and making sure neither outlives the bench
# ================================================================================================

def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# libc is loaded here, not in the child between fork and exec, where an import could deadlock
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM when the bench dies, even by SIGKILL (no finally block runs then)."""
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


CHILD_SETUP = _die_with_parent if _LIBC is not None else None


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def running(cmd: Sequence[str], log: Path, ready: Callable[[], bool], env: Mapping[str, str] | None = None
            ) -> Iterator[subprocess.Popen]:
    """Start ``cmd`` (output to ``log``), wait until ``ready()``, yield it; always terminate, then kill, it."""
    with open(log, "w") as out:
        proc = subprocess.Popen(list(cmd), cwd=REPO, env=dict(env) if env is not None else None, stdout=out,
                                stderr=subprocess.STDOUT, preexec_fn=CHILD_SETUP)
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not ready():
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text()[-3000:]
                    raise RuntimeError(f"{cmd[0]} {cmd[1]} did not come up (log {log}):\n{tail}")
                time.sleep(0.2)
            yield proc
        finally:
            _stop(proc)


def answers(url: str, want: int | None = None) -> Callable[[], bool]:
    """A readiness probe: ``url`` answers HTTP (with status ``want`` when given)."""
    import httpx

    def probe() -> bool:
        try:
            status = httpx.get(url, timeout=2).status_code
        except httpx.HTTPError:
            return False
        return want is None or status == want

    return probe


def ecomrec() -> list[str]:
    """The real CLI beside this interpreter (``.venv/bin/ecomrec``), else the module."""
    script = Path(sys.executable).with_name("ecomrec")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "ecomrec_spark.cli"]


def config_args(args: argparse.Namespace, extra: Sequence[str] = ()) -> list[str]:
    return ["--conf", args.conf, *itertools.chain.from_iterable(("--set", s) for s in [*args.sets, *extra])]


def aws_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in REAL_AWS_ONLY}
    return {**env, **FAKE_AWS}


@contextlib.contextmanager
def fake_aws() -> Iterator[None]:
    """This process's boto3 sees the fake credentials only while copying into moto."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(aws_env())
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def moto_main(port: int) -> None:
    """The hidden ``--moto-port`` mode: moto's threaded server until SIGTERM."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a log line per request would cost moto's CPU
    ThreadedMotoServer(ip_address=HOST, port=port, verbose=False).start()
    threading.Event().wait()  # SIGTERM's default action ends the process; moto keeps nothing on disk


def copy_to_dynamo(db: Path, version: str, info: Mapping[str, Any], endpoint: str) -> dict[str, Any]:
    """Every document of ``version`` from SQLite into a DynamoStore at ``endpoint``, made live there."""
    start = time.perf_counter()
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        with fake_aws():
            store = DynamoStore(DYNAMO_PREFIX, DYNAMO_REGION, endpoint)
            store.begin(version, {})
            rows = store.write(version, conn.execute("SELECT key, value FROM items WHERE version = ?", (version,)))
            store.commit(version, info)
            store.set_live(version)
    finally:
        conn.close()
    return {"rows": rows, "seconds": time.perf_counter() - start}


# ================================================================================================
# The load loop
# ================================================================================================

def cpu_seconds(pids: Mapping[str, int]) -> dict[str, float]:
    import psutil

    out = {}
    for name, pid in pids.items():
        t = psutil.Process(pid).cpu_times()
        out[name] = t.user + t.system
    return out


def load(clients: Sequence[Any], paths: Sequence[str]) -> tuple[list[float], list[int | str], float]:
    """Send every path once, one thread per client (so ``len(clients)`` in flight); latency (s) and status
    (or transport error name) per request, and the wall time (s)."""
    import httpx

    n = len(paths)
    latency: list[float] = [0.0] * n
    status: list[int | str] = [0] * n
    counter = itertools.count()  # next() on it is atomic under the GIL: each index goes to one thread

    def worker(client: httpx.Client) -> None:
        while (i := next(counter)) < n:
            t = time.perf_counter()
            try:
                status[i] = client.get(paths[i]).status_code  # the body is read in full
            except httpx.HTTPError as exc:
                status[i] = type(exc).__name__
            latency[i] = time.perf_counter() - t

    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in clients]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latency, status, time.perf_counter() - start


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of a sorted list."""
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summarize(latency: Sequence[float], status: Sequence[int | str], wall: float) -> dict[str, Any]:
    ordered = sorted(latency)
    codes = Counter(str(s) for s in status)
    errors = sum(c for s, c in codes.items() if not (s.isdigit() and 200 <= int(s) < 300))
    return {"requests": len(ordered), "errors": errors, "statuses": dict(codes), "seconds": wall,
            "rps": len(ordered) / wall, "mean_ms": statistics.fmean(ordered) * 1e3,
            **{f"p{p}_ms": percentile(ordered, p) * 1e3 for p in (50, 95, 99)}, "max_ms": ordered[-1] * 1e3}


def fallbacks(base: str) -> float:
    """The API's count of popularity fallbacks served (``/metrics``)."""
    import httpx

    for line in httpx.get(f"{base}/metrics", timeout=REQUEST_TIMEOUT).text.splitlines():
        if line.startswith(FALLBACKS_METRIC + " "):
            return float(line.split()[1])
    return 0.0


def run_endpoints(base: str, pools: Mapping[str, Sequence[str]], counts: Mapping[str, int], args: argparse.Namespace,
                  pids: Mapping[str, int]) -> list[dict[str, Any]]:
    """One block per endpoint: warm-up, then the timed requests, with CPU per request of each process."""
    import httpx

    pids = {**pids, "client": os.getpid()}
    out = []
    with contextlib.ExitStack() as stack:
        # made once and kept: building a client (its SSL context) and connecting are not part of a request
        clients = [stack.enter_context(httpx.Client(base_url=base, timeout=REQUEST_TIMEOUT))
                   for _ in range(args.concurrency)]
        for name, path, pool in ENDPOINTS:
            paths = urls(path, pools.get(pool) if pool else None, args.warmup + counts[name])
            if not paths:
                out.append({"endpoint": name, "path": path, "skipped": "the store has no ids for it"})
                continue
            load(clients, paths[:args.warmup])
            out.append(timed_block(base, name, path, clients, paths[args.warmup:], pids))
    return out


def timed_block(base: str, name: str, path: str, clients: Sequence[Any], paths: Sequence[str],
                pids: Mapping[str, int]) -> dict[str, Any]:
    """One endpoint's counted requests, with the CPU each process spent per request."""
    before_fb, before_cpu = fallbacks(base), cpu_seconds(pids)
    latency, status, wall = load(clients, paths)
    cpu = {k: (v - before_cpu[k]) / len(latency) * 1e3 for k, v in cpu_seconds(pids).items()}
    row = {"endpoint": name, "path": path, **summarize(latency, status, wall), "cpu_ms_per_request": cpu}
    if name == TARGET_ENDPOINT:
        row["fallbacks"] = fallbacks(base) - before_fb
    print(f"  {name:<16} {row['requests']:>6} req {row['errors']:>5} errors {row['rps']:8.0f} req/s  "
          f"p50 {row['p50_ms']:6.1f}  p99 {row['p99_ms']:6.1f} ms", flush=True)
    return row


def bench_sqlite(args: argparse.Namespace, pools: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    port = free_port()
    base = f"http://{HOST}:{port}"
    cmd = [*ecomrec(), "serve", *config_args(args), "--host", HOST, "--port", str(port)]
    counts = {name: args.requests if name == TARGET_ENDPOINT else args.other_requests for name, _, _ in ENDPOINTS}
    with running(cmd, OUT / "server-sqlite.log", answers(f"{base}/healthz", 200)) as api:
        return run_endpoints(base, pools, counts, args, {"api": api.pid})


def bench_dynamo(args: argparse.Namespace, db: Path, version: str, info: Mapping[str, Any],
                 pools: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    moto_port, api_port = free_port(), free_port()
    endpoint, base = f"http://{HOST}:{moto_port}", f"http://{HOST}:{api_port}"
    sets = ["serving.store=dynamodb", f"serving.dynamodb.endpoint_url={endpoint}",
            f"serving.dynamodb.region={DYNAMO_REGION}", f"serving.dynamodb.table_prefix={DYNAMO_PREFIX}"]
    cmd = [*ecomrec(), "serve", *config_args(args, sets), "--host", HOST, "--port", str(api_port)]
    counts = {name: args.dynamo_requests if name == TARGET_ENDPOINT else args.dynamo_other_requests
              for name, _, _ in ENDPOINTS}
    with running([sys.executable, __file__, "--moto-port", str(moto_port)], OUT / "moto.log", answers(endpoint),
                 aws_env()) as moto:
        copied = copy_to_dynamo(db, version, info, endpoint)
        print(f"  copied {copied['rows']:,} documents into moto in {copied['seconds']:.1f} s", flush=True)
        with running(cmd, OUT / "server-dynamodb.log", answers(f"{base}/healthz", 200), aws_env()) as api:
            rows = run_endpoints(base, pools, counts, args, {"api": api.pid, "moto": moto.pid})
    return {"copy": copied, "endpoints": rows}


# ================================================================================================
# Spark, for contrast
# ================================================================================================

def bench_spark(args: argparse.Namespace, cfg: Mapping[str, Any], customer: str, model: str) -> dict[str, Any]:
    """``ecomrec recommend`` timed ``--spark-runs`` times as a subprocess (a cold JVM each time, as a user runs it)."""
    lake = cfg["paths"]["lake"]
    if is_local_path(lake) and not (local_path(lake) / "gold" / "recommendations").is_dir():
        return {"skipped": f"no demo lake at {local_path(lake)} (gold/recommendations); run `make demo` first"}
    cmd = [*ecomrec(), "recommend", *config_args(args), "--customer-id", customer, "--model", model, "--k", "10"]
    runs = []
    for i in range(args.spark_runs):
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900, check=False,
                              preexec_fn=CHILD_SETUP)
        runs.append(time.perf_counter() - start)
        if done.returncode != 0:
            return {"error": f"exit {done.returncode}: {done.stderr[-2000:]}", "command": cmd}
        print(f"  ecomrec recommend run {i + 1}: {runs[-1]:.1f} s", flush=True)
    median = statistics.median(runs)
    return {"command": cmd, "runs": runs, "median_s": median, "rps": 1 / median}


# ================================================================================================
# Report
# ================================================================================================

def _table(rows: Sequence[Mapping[str, Any]], cpu_names: Sequence[str]) -> list[str]:
    head = "CPU ms/req (" + " / ".join(cpu_names) + ")"
    out = [f"| endpoint | requests | errors | req/s | p50 ms | p95 ms | p99 ms | {head} |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "skipped" in r:
            out.append(f"| `{r['path']}` | - | - | - | - | - | - | {r['skipped']} |")
            continue
        errors = f"{r['errors']:,}"
        if r["errors"]:
            errors += " (" + ", ".join(f"{s}: {c:,}" for s, c in sorted(r["statuses"].items())
                                       if not s.startswith("2")) + ")"
        cpu = " / ".join(f"{r['cpu_ms_per_request'][n]:.2f}" for n in cpu_names)
        out.append(f"| `{r['path']}` | {r['requests']:,} | {errors} | {r['rps']:,.0f} | {r['p50_ms']:.1f} | "
                   f"{r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {cpu} |")
    return out


def _target(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    rec = next((r for r in rows if r["endpoint"] == TARGET_ENDPOINT and "skipped" not in r), None)
    if rec is None:
        return None
    met = rec["p99_ms"] <= TARGET_P99_MS and rec["rps"] >= TARGET_RPS and rec["errors"] == 0
    return {"met": met, "p99_ms": rec["p99_ms"], "rps": rec["rps"], "errors": rec["errors"], "cores": os.cpu_count()}


def _setup_lines(s: Mapping[str, Any], ids: Mapping[str, Any]) -> list[str]:
    share = ids["unknown_customers"] / (ids["known_customers"] + ids["unknown_customers"])
    total, sampled = ids["totals"], ids["sampled"]
    return [
        f"Store: `{s['store']}`, live version `{s['version']}` (default model `{s['default_model']}`, k {s['k']}). "
        f"Ids, read from that version: {ids['known_customers']:,} of {total['customers']:,} customers plus "
        f"{ids['unknown_customers']:,} unknown but valid ids, so {share:.1%} of the recommendation requests take the "
        f"popularity fallback; {sampled['products']:,} of {total['products']:,} products (review-score), "
        f"{sampled['similar']:,} of the {total['similar']:,} with a similar list, {sampled['together']:,} of the "
        f"{total['together']:,} with a bought-together list.", "",
        f"Server: `ecomrec serve`, 1 uvicorn worker ({s['uvicorn']}), on 127.0.0.1. Load: a closed loop at "
        f"concurrency {s['concurrency']} from one process ({s['client']}); each endpoint is its own block after "
        f"{s['warmup']} uncounted warm-up requests; latency is over every request, errors included. "
        f"In a closed loop mean latency = concurrency / throughput (Little's law): at concurrency {s['concurrency']}, "
        f"a p99 of {TARGET_P99_MS:.0f} ms needs well over {s['concurrency'] / TARGET_P99_MS * 1e3:,.0f} req/s.", ""]


def _dynamo_lines(d: Mapping[str, Any]) -> list[str]:
    if "skipped" in d:
        return [f"Skipped ({d['skipped']}).", ""]
    return [f"moto is an in-memory Python emulator of the DynamoDB API (a separate process on 127.0.0.1): this "
            "measures the API's DynamoDB path (boto3, one GetItem per lookup) plus moto, not AWS latency. "
            f"The live version's {d['copy']['rows']:,} documents were copied from the SQLite store with the "
            f"store's own write API in {d['copy']['seconds']:.0f} s.", "",
            *_table(d["endpoints"], ["api", "client", "moto"]), ""]


def _spark_lines(sp: Mapping[str, Any], s: Mapping[str, Any], rec: Mapping[str, Any] | None) -> list[str]:
    if "skipped" in sp:
        return [f"Not run: {sp['skipped']}.", ""]
    if "error" in sp:
        return [f"Failed: `{' '.join(sp['command'][1:])}` {sp['error']}", ""]
    out = [f"`ecomrec recommend --customer-id {s['spark_customer']} --model {s['default_model']} --k 10`, a fresh "
           "process per lookup (JVM start, Spark session, Delta read): runs "
           + ", ".join(f"{t:.1f}" for t in sp["runs"])
           + f" s; median {sp['median_s']:.1f} s = {sp['rps']:.3f} requests/s.", ""]
    if rec is not None:
        out += [f"Recommendations via API (SQLite) vs `ecomrec recommend` (Spark): {rec['rps'] / sp['rps']:,.0f}x "
                f"faster in requests/s ({rec['rps']:,.0f} vs {sp['rps']:.3f}); one lookup p50 {rec['p50_ms']:.1f} ms "
                f"vs {sp['median_s']:.1f} s.", ""]
    return out


def render(r: Mapping[str, Any]) -> list[str]:
    """The BENCHMARKS.md section."""
    s = r["setup"]
    rec = next((x for x in r["sqlite"] if x["endpoint"] == TARGET_ENDPOINT and "skipped" not in x), None)
    lines = ["## Online API: throughput and latency (`bench/serve.py`)", "",
             machine_line(f", load average {s['loadavg'][0]:.1f} at the start"), "",
             *_setup_lines(s, r["ids"]),
             "### SQLite store", "", *_table(r["sqlite"], ["api", "client"]), ""]
    if rec is not None:
        lines += [f"Fallbacks counted by the API's `/metrics` during the recommendations block: "
                  f"{rec['fallbacks']:,.0f}.", ""]
    lines += ["### DynamoDB on moto", "", *_dynamo_lines(r["dynamodb"]),
              "### `ecomrec recommend` (Spark), for contrast", "", *_spark_lines(r["spark"], s, rec)]
    t = r["target"]
    if t is not None:
        verdict = "met" if t["met"] else "NOT met"
        lines.append(f"Target (recommendations, SQLite store, 2 cores: p99 <= {TARGET_P99_MS:.0f} ms and >= "
                     f"{TARGET_RPS:.0f} requests/s, no errors): **{verdict}**: p99 {t['p99_ms']:.1f} ms, "
                     f"{t['rps']:,.0f} requests/s, {t['errors']:,} errors, on {t['cores']} cores.")
    return lines


def uvicorn_stack() -> str:
    """What uvicorn's ``auto`` loop and HTTP parser pick: uvloop and httptools when installed."""
    from importlib.util import find_spec

    loop = "uvloop" if find_spec("uvloop") else "asyncio"
    http = "httptools" if find_spec("httptools") else "h11"
    return f"{loop}, {http}"


# ================================================================================================
# Main
# ================================================================================================

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--conf", default=str(REPO / "conf" / "local.yaml"), help="run config (default conf/local.yaml)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="config override passed to ecomrec too, e.g. --set paths.serving=/tmp/store (repeatable)")
    ap.add_argument("--concurrency", type=int, default=16, help="requests in flight (client threads)")
    ap.add_argument("--requests", type=int, default=20_000, help="recommendations requests, SQLite store")
    ap.add_argument("--other-requests", type=int, default=5_000, help="requests per other endpoint, SQLite store")
    ap.add_argument("--dynamo-requests", type=int, default=5_000, help="recommendations requests, DynamoDB on moto")
    ap.add_argument("--dynamo-other-requests", type=int, default=1_000,
                    help="requests per other endpoint, DynamoDB on moto")
    ap.add_argument("--warmup", type=int, default=200, help="uncounted requests before each endpoint's block")
    ap.add_argument("--max-ids", type=int, default=2_000, help="ids sampled per pool (customers, products, ...)")
    ap.add_argument("--spark-runs", type=int, default=3, help="timed `ecomrec recommend` runs")
    ap.add_argument("--skip-spark", action="store_true", help="do not time `ecomrec recommend`")
    ap.add_argument("--skip-dynamodb", action="store_true", help="do not run the DynamoDB (moto) part")
    ap.add_argument("--no-write", action="store_true",
                    help="print the section but leave BENCHMARKS.md alone (result.json is still written)")
    ap.add_argument("--moto-port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    for name in ("concurrency", "requests", "other_requests", "dynamo_requests", "dynamo_other_requests", "max_ids"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup < 0 or args.spark_runs < 1:
        ap.error("--warmup must be >= 0 and --spark-runs >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.moto_port:
        moto_main(args.moto_port)
        return 0
    # a plain `kill` of the bench must still run the finally blocks that stop the servers
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cfg = load_config(args.conf, args.sets)
    if cfg["serving"]["store"] != "sqlite":
        sys.exit("bench/serve.py reads the demo's SQLite store: use a config with serving.store: sqlite "
                 "(the DynamoDB run is made from it)")
    db = local_path(cfg["paths"]["serving"]) / SQLITE_FILE
    version, info = live_version(db)
    ids = read_ids(db, version, args.max_ids)
    pools = ids["pools"]
    if not ids["known_customers"]:
        sys.exit(f"bench/serve.py: version {version} of {db} has no customer documents")
    OUT.mkdir(parents=True, exist_ok=True)
    known = next(c for c in pools["customers"] if not c.startswith("bench-unknown-"))
    default_model = str(info.get("default_model") or (info.get("models") or ["popular"])[0])
    setup = {"store": str(db), "version": version, "default_model": default_model, "k": info.get("k"),
             "concurrency": args.concurrency, "warmup": args.warmup, "uvicorn_workers": 1, "uvicorn": uvicorn_stack(),
             "client": f"{args.concurrency} threads, each with its own keep-alive httpx.Client kept across the blocks",
             "loadavg": os.getloadavg(), "spark_customer": known}
    print(f"store {db}, version {version}; {ids['known_customers']:,} customers + {ids['unknown_customers']:,} "
          f"unknown, {len(pools['products']):,} products", flush=True)

    print("SQLite store:", flush=True)
    sqlite_rows = bench_sqlite(args, pools)
    if args.skip_dynamodb:
        dynamo: dict[str, Any] = {"skipped": "--skip-dynamodb"}
    else:
        print("DynamoDB on moto:", flush=True)
        dynamo = bench_dynamo(args, db, version, info, pools)
    if args.skip_spark:
        spark: dict[str, Any] = {"skipped": "--skip-spark"}
    else:
        print("ecomrec recommend (Spark):", flush=True)
        spark = bench_spark(args, cfg, known, default_model)

    id_counts = {k: v for k, v in ids.items() if k != "pools"} | {"sampled": {k: len(v) for k, v in pools.items()}}
    result = {"setup": setup, "ids": id_counts, "sqlite": sqlite_rows, "dynamodb": dynamo, "spark": spark,
              "target": _target(sqlite_rows)}
    (OUT / "result.json").write_text(json.dumps(result, indent=1, default=str))
    lines = render(result)
    if not args.no_write:
        write_section("serve", lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
