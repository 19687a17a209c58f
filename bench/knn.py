"""KNN benchmark: LSH (``lsh_top_k`` with ``lsh_params``) against exact blocked top-k (``exact_top_k``).

What it measures
----------------
Customers and products are synthetic clustered, L2-normalised vectors
(dim 32 by default) generated in Spark with built-ins only: every coordinate
is a Box-Muller normal from ``xxhash64`` of (id or cluster, coordinate, seed),
``x = centre(cluster) + spread * noise``, normalised with ``aggregate`` /
``transform``, then ``array_to_vector``.  Clusters are skewed (cluster =
floor(C u**2)) and customers and products share the centres.  The inputs are
written once per size to ``bench/out/knn_<kind>_<n>.parquet`` and reused.

For each size ``customers x products`` three fresh processes run in turn (so
each peak memory is clean and every JVM starts cold):

* ``exact``: :func:`exact_top_k` (k=10) written to Parquet;
* ``params``: :func:`lsh_params` (target recall 0.95);
* ``lsh``: :func:`lsh_top_k` with those parameters written to Parquet, then
  recall@10 against the exact output.

A size followed by ``:exact`` runs the exact method alone (for sizes where the
LSH join would not fit the time budget).  Recorded per run: wall time (read
of the inputs to written output), shuffle bytes written and read (the Spark
UI's REST API, stages of the run's job group), peak RSS of the driver process
tree (python driver + JVM + python workers, psutil every 0.2 s), and the CPU
share of other processes on the machine during the run (system busy time minus
this process tree's).  Growth exponents are fitted on log-log axes against
customers x products.  The results go between ``<!-- knn:start -->`` and
``<!-- knn:end -->`` in ``BENCHMARKS.md``; the raw numbers to
``bench/out/knn_results.json``.

Usage::

    .venv/bin/python bench/knn.py [--sizes 10000x2500,20000x5000,40000x10000,1000000x10000:exact]
                                  [--dim 32] [--timeout 900] [--out BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # `python bench/knn.py` from anywhere
    sys.path.insert(0, str(REPO_ROOT))

from bench.etl import TreeRssSampler, machine_info, versions  # noqa: E402  (reuse the etl header helpers)
from bench.sections import write_section  # noqa: E402

log = logging.getLogger("bench.knn")

OUT_DIR = REPO_ROOT / "bench" / "out"
DEFAULT_MD = REPO_ROOT / "BENCHMARKS.md"
START_MARK, END_MARK = "<!-- knn:start -->", "<!-- knn:end -->"
SEED = 20241122
GENERATOR_VERSION = 1
TWO52 = 1 << 52
ROWS_PER_PARTITION = 250_000
K = 10
LSH_SEED = 42
DEFAULT_SIZES = "10000x2500,20000x5000,40000x10000,1000000x10000:exact"


# ================================================================================================
# Input
# ================================================================================================

def vectors_frame(spark, n: int, kind: str, dim: int, clusters: int, spread: float, seed: int = SEED):
    """``n`` clustered unit vectors as ``(<kind>_id string, features vector)``, lazily, built-ins only.

    Parameters
    ----------
    kind : {"customer", "product"}
        Id prefix (``c`` / ``p``) and the hash salts of the noise and cluster draw.
    dim, clusters, spread : int, int, float
        Vector size, number of shared cluster centres and noise scale relative to a centre.
    """
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import functions as F

    salt = {"customer": 1000, "product": 2000}[kind]

    def u(cols, s):
        h = F.xxhash64(*cols, F.lit(seed), F.lit(s))
        return (F.pmod(h, F.lit(TWO52)) + F.lit(0.5)) / F.lit(float(TWO52))

    def normal(cols, a, b):
        return F.sqrt(F.lit(-2.0) * F.log(u(cols, a))) * F.cos(F.lit(2 * math.pi) * u(cols, b))

    cl = F.col("_c")
    coords = [normal([cl, F.lit(j)], 1, 2) + F.lit(spread) * normal([F.col("id"), F.lit(j)], salt + 1, salt + 2)
              for j in range(dim)]
    parts = max(2, math.ceil(n / ROWS_PER_PARTITION))
    df = (spark.range(0, n, 1, parts)
          .withColumn("_c", F.floor(F.pow(u([F.col("id")], salt + 3), F.lit(2.0)) * F.lit(clusters)).cast("long"))
          .withColumn("_a", F.array(*coords))
          .withColumn("_norm", F.sqrt(F.aggregate("_a", F.lit(0.0), lambda acc, x: acc + x * x))))
    return df.select(F.format_string(f"{kind[0]}%09d", F.col("id")).alias(f"{kind}_id"),
                     array_to_vector(F.transform("_a", lambda x: x / F.col("_norm"))).alias("features"))


def input_path(kind: str, n: int) -> Path:
    return OUT_DIR / f"knn_{kind}_{n}.parquet"


def ensure_input(spark, kind: str, n: int, a: argparse.Namespace) -> float | None:
    """Write the input unless a matching one exists; seconds taken, or None when reused."""
    path = input_path(kind, n)
    meta = {"n": n, "dim": a.dim, "clusters": a.clusters, "spread": a.spread, "seed": SEED, "v": GENERATOR_VERSION}
    mfile = path / "_bench_meta.json"
    if (path / "_SUCCESS").is_file() and mfile.is_file() and json.loads(mfile.read_text()) == meta:
        return None
    t0 = time.perf_counter()
    vectors_frame(spark, n, kind, a.dim, a.clusters, a.spread).write.mode("overwrite").parquet(str(path))
    mfile.write_text(json.dumps(meta))
    return time.perf_counter() - t0


# ================================================================================================
# Measurement
# ================================================================================================

def bench_session(driver_memory: str, app: str):
    """``build_session`` with the UI on (for the REST API) and one BLAS thread per Python worker."""
    from ecomrec_spark.config import load_config
    from ecomrec_spark.session import build_session

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    return build_session(load_config(None), app, extra_conf={
        "spark.driver.memory": driver_memory, "spark.ui.enabled": "true", "spark.ui.showConsoleProgress": "false",
        "spark.local.dir": str(OUT_DIR / "spark-local"),
        # each task slot runs one Python worker; a multi-threaded BLAS in each would oversubscribe the cores
        "spark.executorEnv.OPENBLAS_NUM_THREADS": "1", "spark.executorEnv.OMP_NUM_THREADS": "1",
        "spark.executorEnv.MKL_NUM_THREADS": "1",
    })


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 (the local Spark UI)
        return json.loads(resp.read())


def shuffle_bytes(spark, group: str) -> dict[str, int]:
    """Shuffle bytes written/read by the completed stages of ``group``'s jobs (Spark UI REST API)."""
    sc = spark.sparkContext
    base = f"{sc.uiWebUrl}/api/v1/applications/{sc.applicationId}"
    for _ in range(60):  # the UI's status store is fed asynchronously by the listener bus
        jobs = [j for j in _get_json(f"{base}/jobs") if j.get("jobGroup") == group]
        if jobs and all(j["status"] in ("SUCCEEDED", "FAILED") for j in jobs):
            break
        time.sleep(0.5)
    stage_ids = {s for j in jobs for s in j["stageIds"]}
    stages = [s for s in _get_json(f"{base}/stages") if s["stageId"] in stage_ids and s["status"] == "COMPLETE"]
    return {"shuffle_write": sum(int(s.get("shuffleWriteBytes", 0)) for s in stages),
            "shuffle_read": sum(int(s.get("shuffleReadBytes", 0)) for s in stages),
            "jobs": len(jobs), "stages": len(stages)}


class CpuShare:
    """CPU used by other processes during a run, as a share of the machine's cores."""

    def __init__(self) -> None:
        import psutil

        self._me = psutil.Process()
        self._t0 = time.perf_counter()
        self._sys0 = self._busy()
        self._tree0 = self._tree()

    @staticmethod
    def _busy() -> float:
        import psutil

        t = psutil.cpu_times()
        return sum(t) - t.idle - getattr(t, "iowait", 0.0)

    def _tree(self) -> float:
        import psutil

        total = 0.0
        for p in [self._me, *self._me.children(recursive=True)]:
            try:
                c = p.cpu_times()
                total += c.user + c.system
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return total

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self._t0
        cores = os.cpu_count() or 1
        other = max(0.0, (self._busy() - self._sys0) - (self._tree() - self._tree0))
        return {"other_cpu_share": other / (wall * cores) if wall > 0 else 0.0, "load1": os.getloadavg()[0]}


# ================================================================================================
# Workers
# ================================================================================================

def _timed(spark, group: str, fn) -> dict[str, Any]:
    sampler = TreeRssSampler()
    sampler.start()
    sampler.reset()
    cpu = CpuShare()
    spark.sparkContext.setJobGroup(group, group)
    t0 = time.perf_counter()
    try:
        extra = fn() or {}
    finally:
        secs = time.perf_counter() - t0
        peak = sampler.stop()
    spark.sparkContext.setJobGroup("idle", "idle")
    return {"seconds": secs, "peak_rss": peak, **cpu.stop(), **shuffle_bytes(spark, group), **extra}


def _worker(a: argparse.Namespace) -> dict[str, Any]:
    from ecomrec_spark.recommend.knn import exact_top_k, lsh_top_k, recall_at_k
    from ecomrec_spark.recommend.lsh_rule import lsh_params

    t0 = time.perf_counter()
    spark = bench_session(a.driver_memory, f"bench-knn-{a.worker}")
    session_s = time.perf_counter() - t0
    try:
        if a.worker == "generate":
            made = {}
            for nq, ni, _ in _sizes(a.sizes):
                for kind, n in (("customer", nq), ("product", ni)):
                    if f"{kind}_{n}" not in made:
                        made[f"{kind}_{n}"] = ensure_input(spark, kind, n, a)
            return {"inputs": made}
        nq, ni, _ = _sizes(a.sizes)[0]
        customers = spark.read.parquet(str(input_path("customer", nq)))
        products = spark.read.parquet(str(input_path("product", ni)))
        exact_out, lsh_out = OUT_DIR / f"knn_exact_{nq}x{ni}.parquet", OUT_DIR / f"knn_lsh_{nq}x{ni}.parquet"
        res: dict[str, Any] = {"method": a.worker, "customers": nq, "products": ni, "session_seconds": session_s,
                               "conf": {k: spark.conf.get(k) for k in ("spark.master", "spark.driver.memory",
                                                                        "spark.sql.shuffle.partitions")}}
        if a.worker == "exact":
            res.update(_timed(spark, "exact", lambda: exact_top_k(customers, products, K).write.mode("overwrite")
                              .parquet(str(exact_out))), broadcast_bytes=ni * (a.dim + 1) * 4)
            res["rows"] = spark.read.parquet(str(exact_out)).count()
            return res
        if a.worker == "params":
            holder: dict[str, Any] = {}

            def params() -> None:
                holder["p"] = lsh_params(products, customers, K, target_recall=a.target_recall, seed=LSH_SEED)

            res.update(_timed(spark, "params", params))
            res["params"] = {k: v for k, v in holder["p"].items() if k != "grid"}
            return res
        if a.worker == "lsh":
            p = json.loads(a.params)
            res.update(_timed(spark, "lsh", lambda: lsh_top_k(customers, products, K, p["bucket_length"],
                                                              p["num_tables"], p["threshold"], seed=p["seed"])
                              .write.mode("overwrite").parquet(str(lsh_out))))
            approx_df = spark.read.parquet(str(lsh_out))
            res["rows"] = approx_df.count()
            if (exact_out / "_SUCCESS").is_file():
                res["recall"] = recall_at_k(approx_df, spark.read.parquet(str(exact_out)), K)
            return res
        raise SystemExit(f"unknown worker {a.worker}")
    finally:
        spark.stop()


def _spawn(kind: str, sizes: str, a: argparse.Namespace, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run one worker in a fresh interpreter (own process group, killed after ``--timeout`` s)."""
    with tempfile.NamedTemporaryFile(prefix=f"bench-knn-{kind}-", suffix=".json", delete=False) as fh:
        result = Path(fh.name)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--sizes", sizes, "--result", str(result),
           "--driver-memory", a.driver_memory, "--dim", str(a.dim), "--clusters", str(a.clusters),
           "--spread", str(a.spread), "--target-recall", str(a.target_recall)]
    if params is not None:
        cmd += ["--params", json.dumps(params)]
    log.info("running %s worker (%s)", kind, sizes)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, start_new_session=True)
    try:
        code = proc.wait(timeout=a.timeout if kind != "generate" else None)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # our own worker's group: its JVM and Python workers
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        result.unlink(missing_ok=True)
        log.error("%s worker (%s) timed out after %s s", kind, sizes, a.timeout)
        return {"timeout": a.timeout}
    try:
        if code != 0:
            raise SystemExit(f"{kind} worker ({sizes}) failed with exit code {code}")
        out = json.loads(result.read_text())
    finally:
        result.unlink(missing_ok=True)
    out["process_seconds"] = time.perf_counter() - t0
    return out


def run_size(nq: int, ni: int, methods: str, a: argparse.Namespace) -> dict[str, Any]:
    """exact, then lsh_params, then lsh (each a fresh process) at one size; outputs removed afterwards."""
    size = f"{nq}x{ni}"
    run: dict[str, Any] = {"customers": nq, "products": ni, "exact": {"skipped": True}, "params": {"skipped": True},
                           "lsh": {"skipped": True}}
    run["exact"] = _spawn("exact", size, a)
    if methods == "both":
        run["params"] = _spawn("params", size, a)
        if "params" in run["params"]:
            run["lsh"] = _spawn("lsh", size, a, run["params"]["params"])
    if not a.keep_outputs:
        for m in ("exact", "lsh"):
            shutil.rmtree(OUT_DIR / f"knn_{m}_{size}.parquet", ignore_errors=True)
    log.info("%s: exact %s s, lsh_params %s s, lsh %s s, recall %s", size, run["exact"].get("seconds"),
             run["params"].get("seconds"), run["lsh"].get("seconds"), run["lsh"].get("recall"))
    return run


# ================================================================================================
# Report
# ================================================================================================

def _gib(b: float) -> str:
    return f"{b / 2**30:.2f} GiB"


def _mib(b: float) -> str:
    return f"{b / 2**20:,.1f} MiB"


def _k(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else (f"{n // 1000}k" if n % 1000 == 0 else f"{n:,}")


def fit_power(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float] | None:
    """Least-squares ``y = c * x**b`` on log-log axes: ``(c, b)``, or None with fewer than 2 usable points."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys, strict=True) if x > 0 and y > 0]
    if len(pts) < 2 or len({p[0] for p in pts}) < 2:
        return None
    mx, my = sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)
    b = sum((p[0] - mx) * (p[1] - my) for p in pts) / sum((p[0] - mx) ** 2 for p in pts)
    return math.exp(my - b * mx), b


def fit_affine(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float] | None:
    """Least-squares ``y = a + b * x``: ``(a, b)`` (fixed cost, cost per unit), or None with < 2 distinct x."""
    if len(xs) < 2 or len(set(xs)) < 2:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    return my - b * mx, b


def _done(run: Mapping[str, Any], m: str) -> bool:
    return "seconds" in run[m]


def _pairs(run: Mapping[str, Any]) -> int:
    return run["customers"] * run["products"]


def _size(run: Mapping[str, Any]) -> str:
    return f"{_k(run['customers'])} x {_k(run['products'])}"


def reading(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Growth exponents (against customers x products), marginal costs, and where LSH would beat exact."""
    both = [r for r in runs if _done(r, "exact") and _done(r, "lsh")]
    ex_all = [r for r in runs if _done(r, "exact")]
    out = ["Growth, fitted against the number of (customer, product) pairs: exponent of `cost ~ pairs^b` on "
           "log-log axes, and the marginal time per pair of `time = fixed + per_pair x pairs` (least squares):", ""]
    if len(both) < 2:
        return out + ["Too few sizes completed with both methods to fit a growth exponent."]

    def exps(rows, m, key) -> str:
        fit = fit_power([_pairs(r) for r in rows], [r[m][key] for r in rows])
        return f"b = {fit[1]:.2f}" if fit else "no fit (zero)"

    span = f"{_k(min(_pairs(r) for r in both))}-{_k(max(_pairs(r) for r in both))} pairs"
    aff_l = fit_affine([_pairs(r) for r in both], [r["lsh"]["seconds"] for r in both])
    aff_e = fit_affine([_pairs(r) for r in ex_all], [r["exact"]["seconds"] for r in ex_all])
    out += [
        f"- LSH ({len(both)} sizes, {span}): time {exps(both, 'lsh', 'seconds')}, shuffle written "
        f"{exps(both, 'lsh', 'shuffle_write')}, peak RSS {exps(both, 'lsh', 'peak_rss')}; "
        f"lsh_params time {exps(both, 'params', 'seconds')}; "
        f"marginal {aff_l[1] * 1e9:.0f} ns per pair (fixed {aff_l[0]:.1f} s).",
        f"- exact, same sizes: time {exps(both, 'exact', 'seconds')}, peak RSS {exps(both, 'exact', 'peak_rss')}; "
        f"all {len(ex_all)} exact sizes ({_k(min(_pairs(r) for r in ex_all))}-{_k(max(_pairs(r) for r in ex_all))} "
        f"pairs): time {exps(ex_all, 'exact', 'seconds')}, peak RSS {exps(ex_all, 'exact', 'peak_rss')}, marginal "
        f"{aff_e[1] * 1e9:.1f} ns per pair (fixed {aff_e[0]:.1f} s). Its shuffle is only the small exchange of "
        "the item collect, flat in size; the item matrix travels as a broadcast instead (column 'params').",
    ]
    share = [r["params"]["params"]["est_candidates_per_query"] / r["products"] for r in both]
    span_share = f"{min(share):.2f}x" if f"{min(share):.2f}" == f"{max(share):.2f}" else \
        f"{min(share):.2f}x-{max(share):.2f}x"
    out.append(f"\nWhy: the parameters lsh_params found cheapest for recall@10 >= the target left "
               f"{span_share} the catalogue as join candidates per query (summed over the "
               "tables, before `distinct`). With one random projection per table a bucket holds a fixed share of "
               "the catalogue, so the candidate share does not fall as the catalogue grows, and every candidate "
               "pair goes through a shuffle, a `distinct` and a distance UDF, against a multiply-add in BLAS "
               "for the exact method.")
    wins = [r for r in both if r["lsh"]["seconds"] < r["exact"]["seconds"]]
    if wins:
        first = min(wins, key=_pairs)
        total = first["lsh"]["seconds"] + first["params"]["seconds"]
        out.append(f"\nLSH's top-k time beats exact from {_size(first)} on ({first['lsh']['seconds']:.1f} s vs "
                   f"{first['exact']['seconds']:.1f} s); with lsh_params added it takes {total:.1f} s.")
        return out
    ratio = [r["lsh"]["seconds"] / r["exact"]["seconds"] for r in both]
    text = (f"\n**LSH never beats exact in the measured range**: its top-k alone (without lsh_params) took "
            f"{min(ratio):.1f}x-{max(ratio):.1f}x exact's time.")
    pl = fit_power([_pairs(r) for r in both], [r["lsh"]["seconds"] for r in both])
    pe = fit_power([_pairs(r) for r in both], [r["exact"]["seconds"] for r in both])
    if pl and pe and pe[1] > pl[1]:
        cross = (pl[0] / pe[0]) ** (1.0 / (pe[1] - pl[1]))
        text += (f" Extrapolating (not measured): the power-law fits over the same sizes (LSH {pl[0]:.3g} x "
                 f"pairs^{pl[1]:.2f} s, exact {pe[0]:.3g} x pairs^{pe[1]:.2f} s) would cross near {cross:.1e} pairs")
    elif pl and pe:
        text += (f" Extrapolating (not measured): exact's fitted exponent ({pe[1]:.2f}) is not above LSH's "
                 f"({pl[1]:.2f}), so the power-law fits do not cross at larger sizes")
    if aff_l and aff_e and aff_l[1] < aff_e[1]:
        text += (f"; the linear fits (per-pair {aff_l[1] * 1e9:.1f} vs {aff_e[1] * 1e9:.1f} ns) would cross near "
                 f"{(aff_l[0] - aff_e[0]) / (aff_e[1] - aff_l[1]):.1e} pairs.")
    elif aff_l and aff_e:
        text += (f"; and LSH's marginal cost per pair ({aff_l[1] * 1e9:.0f} ns) is above exact's "
                 f"({aff_e[1] * 1e9:.1f} ns), so the linear fits diverge instead of crossing.")
    out.append(text)
    return out


def render(meta: Mapping[str, Any], runs: Sequence[Mapping[str, Any]], gen: Mapping[str, Any],
           a: argparse.Namespace) -> str:
    """The BENCHMARKS.md section."""
    m, v = meta["machine"], meta["versions"]
    conf = next((r[k]["conf"] for r in runs for k in ("exact", "lsh") if "conf" in r[k]), {})
    other = [r[k]["other_cpu_share"] for r in runs for k in ("exact", "params", "lsh") if _done(r, k)]
    lines = [
        START_MARK,
        "## KNN: LSH vs exact blocked top-k (`bench/knn.py`)",
        "",
        f"- Date: {meta['date']}",
        f"- Command: `{meta['command']}`",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {_gib(m['ram'])} RAM (/proc/meminfo MemTotal), "
        f"{_gib(m['available'])} available at start; {m['os']}",
        "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"- Spark: master `{conf.get('spark.master', '?')}`, spark.driver.memory {conf.get('spark.driver.memory', '?')}, "
        f"shuffle partitions {conf.get('spark.sql.shuffle.partitions', '?')}, ANSI true, one BLAS thread per Python "
        "worker. exact, lsh_params and LSH each run in a fresh process (cold JVM), in that order, per size.",
        f"- Data: clustered unit vectors, dim {a.dim}, {a.clusters} centres shared by customers and products "
        f"(skewed: cluster = floor({a.clusters} u^2)), noise {a.spread} x the centre scale; generated with Spark "
        f"built-ins (`xxhash64` Box-Muller, seed {SEED}) and read back from Parquet. k = 10.",
        f"- LSH: `lsh_params(products, customers, 10, target_recall={a.target_recall})` (200 sampled queries, "
        f"grid of 6 bucket lengths x 1-12 tables, seed {LSH_SEED}), then `lsh_top_k` with its output. exact: "
        "`exact_top_k` (block_rows 2048, 128 MiB score budget per worker).",
        "- Time: read of the inputs to the top-k written as Parquet, session start excluded. Shuffle: bytes written "
        "by the run's stages (Spark UI REST API, job group of the run). Peak RSS: python driver + JVM + python "
        "workers (psutil every 0.2 s). Recall@10: `recall_at_k` of the LSH output against the exact one.",
        f"- Other load: the machine was shared with other jobs; other processes used {min(other, default=0):.0%}-"
        f"{max(other, default=0):.0%} of the {m['cores']} cores during the timed runs (column 'other CPU'), so "
        "absolute times are pessimistic; both methods ran under similar load.",
        "",
        "| customers x products | pairs | method | time s | shuffle written | peak RSS | recall@10 | params | "
        "candidates / query | other CPU |",
        "|---|---:|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in runs:
        size, pairs = _size(r), f"{_pairs(r):.1e}"
        e, p, l_ = r["exact"], r["params"], r["lsh"]
        if _done(r, "exact"):
            lines.append(f"| {size} | {pairs} | exact | {e['seconds']:.1f} | {_mib(e['shuffle_write'])} | "
                         f"{_gib(e['peak_rss'])} | 1 (reference) | broadcast {_mib(e['broadcast_bytes'])} | "
                         f"{r['products']:,} | {e['other_cpu_share']:.0%} |")
        else:
            lines.append(f"| {size} | {pairs} | exact | timed out (> {e.get('timeout')} s) | | | | | | |")
        if p.get("skipped"):
            lines.append(f"| {size} | {pairs} | LSH | not run (time budget) | | | | | | |")
            continue
        if _done(r, "params"):
            pp = p["params"]
            lines.append(f"| {size} | {pairs} | lsh_params | {p['seconds']:.1f} | {_mib(p['shuffle_write'])} | "
                         f"{_gib(p['peak_rss'])} | sample {pp['sample_recall']:.3f} (lower bound "
                         f"{pp['recall_lower_bound']:.3f}) | bucketLength {pp['bucket_length']:.3f}, "
                         f"{pp['num_tables']} tables, threshold {pp['threshold']:.3f} | "
                         f"{pp['est_candidates_per_query']:,.0f} (est.) | {p['other_cpu_share']:.0%} |")
        else:
            lines.append(f"| {size} | {pairs} | lsh_params | timed out (> {p.get('timeout')} s) | | | | | | |")
        if _done(r, "lsh"):
            rec = f"{l_['recall']:.4f}" if "recall" in l_ else "n/a"
            lines.append(f"| {size} | {pairs} | LSH | {l_['seconds']:.1f} | {_mib(l_['shuffle_write'])} | "
                         f"{_gib(l_['peak_rss'])} | {rec} | as above | | {l_['other_cpu_share']:.0%} |")
        elif not l_.get("skipped"):
            lines.append(f"| {size} | {pairs} | LSH | timed out (> {l_.get('timeout')} s) | | | | | | |")
    made = [f"{k}: {s:.1f} s" for k, s in gen.items() if s is not None]
    lines += ["", "Input generation (not timed above): " + (", ".join(made) if made else "reused from an earlier run")
              + ".", "", *reading(runs)]
    met = [r for r in runs if "recall" in r["lsh"]]
    if met:
        low = [f"{_size(r)} ({r['lsh']['recall']:.4f})" for r in met if r["lsh"]["recall"] < a.target_recall]
        worst = min(met, key=lambda r: r["lsh"]["recall"])
        lines.append(f"\nRecall@10 target {a.target_recall}: " + (
            f"met at every LSH size (lowest {worst['lsh']['recall']:.4f})." if not low else
            "not met at " + ", ".join(low) + "."))
    lines += ["", END_MARK]
    return "\n".join(lines) + "\n"


def write_markdown(path: Path, section: str) -> None:
    """Replace the knn section of ``path`` (append it when absent); other sections are left alone."""
    write_section("knn", section.strip("\n").split("\n")[1:-1], path)  # the lines between the markers


def _sizes(text: str) -> list[tuple[int, int, str]]:
    """``"10000x5000,1000000x10000:exact"`` -> ``[(10000, 5000, "both"), (1000000, 10000, "exact")]``."""
    out = []
    for part in text.split(","):
        spec, _, methods = part.partition(":")
        q, i = spec.lower().split("x")
        if methods not in ("", "exact"):
            raise SystemExit(f"bad size {part!r}: only ':exact' may follow a size")
        out.append((int(float(q)), int(float(i)), methods or "both"))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=DEFAULT_SIZES,
                    help="comma-separated customers x products; ':exact' after a size runs exact alone")
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--clusters", type=int, default=100)
    ap.add_argument("--spread", type=float, default=0.5)
    ap.add_argument("--target-recall", type=float, default=0.95)
    ap.add_argument("--timeout", type=int, default=900, help="seconds allowed per worker process")
    ap.add_argument("--out", default=str(DEFAULT_MD))
    ap.add_argument("--driver-memory", default="8g")
    ap.add_argument("--keep-outputs", action="store_true", help="keep the top-k outputs under bench/out")
    ap.add_argument("--render-only", action="store_true",
                    help="rewrite the section from bench/out/knn_results.json without measuring")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("--params", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s [{a.worker or 'bench'}] %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    if a.worker:
        Path(a.result).write_text(json.dumps(_worker(a)))
        return 0

    if a.render_only:  # rewrite the section from the saved results (no new measurement)
        saved = json.loads((OUT_DIR / "knn_results.json").read_text())
        write_markdown(Path(a.out), render(saved["meta"], saved["runs"], saved["gen"], a))
        return 0
    exe = os.path.relpath(sys.executable, Path.cwd()) if sys.executable.startswith(str(REPO_ROOT)) else sys.executable
    meta = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": shlex.join([exe, *sys.argv]), "machine": machine_info(), "versions": versions()}
    gen = _spawn("generate", a.sizes, a)["inputs"]
    runs = []
    for nq, ni, methods in _sizes(a.sizes):
        runs.append(run_size(nq, ni, methods, a))
        (OUT_DIR / "knn_results.json").write_text(json.dumps({"meta": meta, "runs": runs, "gen": gen}, indent=1))
    write_markdown(Path(a.out), render(meta, runs, gen, a))
    log.info("wrote the knn section of %s", a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
