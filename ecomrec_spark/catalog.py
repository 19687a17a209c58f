"""Register the lake's silver and gold Delta tables in a catalog, and the ready Athena queries.

Two catalogs, one naming scheme:

- **Spark's own catalog** (:func:`register_local`): ``CREATE TABLE IF NOT EXISTS
  <db>.<name> USING DELTA LOCATION '<path>'``, so ``spark.sql("select * from
  ecomrec.recommendations")`` works.  A local session has Spark's in-memory catalog,
  so the registration lives as long as the session does: every job or query that
  wants the ``ecomrec`` names calls :func:`register_local` first (it is cheap and
  idempotent).  On EMR, with the Glue Data Catalog as the Hive metastore, the same
  call writes the tables into Glue, where they persist.
- **Athena** (:func:`athena_ddl`, :func:`run_athena_ddl`, :func:`register_athena`):
  native Delta tables, ``CREATE EXTERNAL TABLE <db>.<name> LOCATION 's3://…/'
  TBLPROPERTIES ('table_type'='DELTA')``, with no column list: Athena (engine v3,
  Glue catalog) reads the schema from the Delta log.  Tables that Spark registers
  through EMR's Glue metastore are not Athena-native; use this DDL for Athena.

Table names: a gold table keeps its folder name (``gold/recommendations`` ->
``ecomrec.recommendations``); a silver table gets a ``silver_`` prefix
(``silver/order_lines`` -> ``ecomrec.silver_order_lines``), so the two layers never
collide and the gold tables, which the queries and dashboards read, keep short
names.  Bronze and quarantine are not registered.

``sql/athena/*.sql`` holds ready queries written in the SQL that both Athena
(Trino) and Spark accept; :func:`load_queries` splits a file into named statements
and :func:`run_query_file` runs one locally.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyspark.sql import DataFrame, SparkSession

from ecomrec_spark import lake as lk
from ecomrec_spark import storage
from ecomrec_spark.aws.s3 import parse_s3_uri
from ecomrec_spark.config import ConfigError, is_local_path, local_path
from ecomrec_spark.identifiers import validate_identifier, validate_workgroup

if TYPE_CHECKING:
    from ecomrec_spark.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_DATABASE = "ecomrec"
CATALOG_LAYERS = ("silver", "gold")
SILVER_PREFIX = "silver_"
QUERY_DIR = Path(__file__).resolve().parents[1] / "sql" / "athena"
_UNSAFE_PATH = re.compile(r"['\\\x00-\x1f\x7f]")
_S3_SCHEME = re.compile(r"^s3[an]?://", re.IGNORECASE)
_DONE = ("SUCCEEDED", "FAILED", "CANCELLED")
_COMMENT = re.compile(r"--[^\n]*")

TableRef = tuple[str, str, str]  # (layer, folder name, path)


# --------------------------------------------------------------------------- names and quoting

def sql_path(path: str) -> str:
    """``path`` as a single-quoted SQL string literal; paths with quotes, backslashes or control characters are refused.

    Nothing is escaped: Spark and Athena escape differently, so a path that would
    need escaping is rejected instead.

    Examples
    --------
    >>> sql_path("s3://bucket/lake/gold/recommendations/")
    "'s3://bucket/lake/gold/recommendations/'"
    """
    if not path or _UNSAFE_PATH.search(path):
        raise ValueError(f"table location {path!r} cannot be used in SQL: it is empty or holds a quote, backslash "
                         "or control character; move the lake to a path without them")
    return f"'{path}'"


def table_name(layer: str, table: str) -> str:
    """Catalog name of ``<layer>/<table>``: gold as-is, silver with the ``silver_`` prefix.

    Examples
    --------
    >>> table_name("gold", "recommendations"), table_name("silver", "order_lines")
    ('recommendations', 'silver_order_lines')
    """
    if layer not in CATALOG_LAYERS:
        raise ValueError(f"layer {layer!r} is not registered in the catalog; use one of {CATALOG_LAYERS}")
    name = table if layer == "gold" else SILVER_PREFIX + table
    return validate_identifier(name, f"table (from folder {layer}/{table})")


# --------------------------------------------------------------------------- discovery

def lake_tables(spark: SparkSession, lake: str) -> list[TableRef]:
    """Every silver and gold Delta table under ``<lake>/<layer>/<table>``, silver first, by name.

    Folders that are not Delta tables are skipped.  Listing goes through Hadoop's
    FileSystem, so local folders, ``s3a://`` and (on EMR) ``s3://`` lakes all work.

    Parameters
    ----------
    spark : the session, for its Hadoop configuration.
    lake : the lake root (``paths.lake``).

    Returns
    -------
    list of ``(layer, table, path)`` with ``path`` as :func:`ecomrec_spark.lake.table_path` builds it.

    Examples
    --------
    >>> lake_tables(spark, "/data/lake")  # doctest: +SKIP
    [('silver', 'order_lines', '/data/lake/silver/order_lines'), ('gold', 'recommendations', ...)]
    """
    found: list[TableRef] = []
    for layer in CATALOG_LAYERS:
        root, fs = storage.hadoop_fs(spark, f"{lake.rstrip('/')}/{layer}")
        if not fs.exists(root):
            continue
        names = sorted(str(st.getPath().getName()) for st in fs.listStatus(root) if st.isDirectory())
        for table in names:
            path = lk.table_path(lake, layer, table)
            if lk.exists(spark, path):
                found.append((layer, table, path))
            else:
                log.debug("skipping %s: not a Delta table", path)
    log.info("found %d silver/gold Delta tables under %s", len(found), lake)
    return found


def listed_tables(lake: str, client: Any = None) -> list[TableRef]:
    """:func:`lake_tables` without Spark: a folder is a table when its ``_delta_log/`` holds a commit.

    A local lake is listed with :mod:`pathlib`; an ``s3://`` or ``s3a://`` lake with boto3's ListObjectsV2 (the
    default credential chain; ``AWS_ENDPOINT_URL_S3`` for another endpoint).  What ``ecomrec athena-ddl`` needs:
    the Athena DDL names folders only, Athena reads each schema from the Delta log itself.
    """
    found: list[TableRef] = []
    if is_local_path(lake):
        root = local_path(lake)
        for layer in CATALOG_LAYERS:
            folder = root / layer
            names = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
            found += [(layer, t, lk.table_path(lake, layer, t)) for t in names
                      if any((folder / t / "_delta_log").glob("*.json"))]
        return found
    bucket, key = parse_s3_uri(_S3_SCHEME.sub("s3://", lake))
    pages = _s3_client(client).get_paginator("list_objects_v2")
    for layer in CATALOG_LAYERS:
        prefix = f"{key.rstrip('/')}/{layer}/".lstrip("/")
        names = sorted(p["Prefix"][len(prefix):].rstrip("/") for page in
                       pages.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/") for p in page.get("CommonPrefixes", []))
        for t in names:
            log_prefix = f"{prefix}{t}/_delta_log/"
            if any(o["Key"].endswith(".json") for page in pages.paginate(Bucket=bucket, Prefix=log_prefix)
                   for o in page.get("Contents", [])):
                found.append((layer, t, lk.table_path(lake, layer, t)))
    return found


def _s3_client(client: Any) -> Any:
    """``client``, or boto3's S3 client from the default chain (``AWS_ENDPOINT_URL_S3`` for another endpoint)."""
    if client is not None:
        return client
    import boto3

    return boto3.client("s3")


def write_athena_ddl(lake: str, out_path: str, database: str = DEFAULT_DATABASE, s3_lake: str | None = None,
                     client: Any = None) -> str:
    """``ecomrec athena-ddl`` with no SparkSession: list the lake (:func:`listed_tables`), write the DDL to a
    local file or an ``s3://`` object.  Returns the text."""
    tables = listed_tables(lake, client)
    statements = ddl_statements(None, lake, database, flavour="athena", s3_lake=s3_lake, tables=tables)  # type: ignore[arg-type]
    where = f"{lake} (rendered at its S3 copy {s3_lake})" if s3_lake else lake
    text = _script(statements, _athena_header(where))
    if is_local_path(out_path):
        target = local_path(out_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    else:
        bucket, key = parse_s3_uri(_S3_SCHEME.sub("s3://", out_path))
        _s3_client(client).put_object(Bucket=bucket, Key=key, Body=text.encode(), ContentType="text/plain; charset=utf-8")
    log.info("wrote Athena DDL for %d tables of %s to %s", len(tables), lake, out_path)
    return text


def _named(tables: Iterable[TableRef]) -> list[tuple[str, str, str, str]]:
    """``(name, layer, table, path)`` per table; two folders mapping to one name is an error."""
    out: list[tuple[str, str, str, str]] = []
    seen: dict[str, str] = {}
    for layer, table, path in tables:
        name = table_name(layer, table)
        if name in seen:
            raise ValueError(f"{layer}/{table} and {seen[name]} both map to catalog table {name!r}; rename one folder")
        seen[name] = f"{layer}/{table}"
        out.append((name, layer, table, path))
    return out


def _qualified(spark: SparkSession, path: str) -> str:
    """A fully qualified URI (``file:/abs/…``, ``s3a://bucket/…``) so catalog locations never depend on the cwd."""
    p, fs = storage.hadoop_fs(spark, path)
    return str(fs.makeQualified(p).toString())


def _s3_location(lake: str, layer: str, table: str, s3_lake: str | None) -> str:
    """The ``s3://`` folder Athena should read for ``<layer>/<table>``."""
    base = s3_lake if s3_lake else lake
    if not _S3_SCHEME.match(base):
        if s3_lake:
            raise ValueError(f"s3_lake {s3_lake!r} is not an s3:// URI; pass the S3 copy of the lake, "
                             "e.g. s3://my-bucket/lake")
        raise ValueError(f"lake {lake!r} is not in S3, so Athena cannot read it; pass s3_lake=s3://<bucket>/<prefix> "
                         "(the S3 copy of this lake) to render the DDL for that copy")
    base = _S3_SCHEME.sub("s3://", base.rstrip("/"))
    return lk.table_path(base, layer, table) + "/"


# --------------------------------------------------------------------------- DDL

def ddl_statements(spark: SparkSession, lake: str, database: str = DEFAULT_DATABASE, *, flavour: str = "spark",
                   s3_lake: str | None = None, tables: Sequence[TableRef] | None = None) -> list[str]:
    """The DDL statements (no trailing ``;``) that register the lake's tables.

    Parameters
    ----------
    spark : the session (lists the lake; qualifies local paths).
    lake : the lake root whose tables are registered.
    database : the catalog database.
    flavour : ``"spark"`` (``CREATE TABLE … USING DELTA LOCATION``, the lake's own paths) or
        ``"athena"`` (``CREATE EXTERNAL TABLE … TBLPROPERTIES ('table_type'='DELTA')`` on ``s3://``).
    s3_lake : Athena only: the S3 copy of a local lake; locations become ``<s3_lake>/<layer>/<table>/``.
    tables : already listed tables (default: :func:`lake_tables`).

    Examples
    --------
    >>> ddl_statements(spark, "s3a://bucket/lake", flavour="athena")[1]  # doctest: +SKIP
    "CREATE EXTERNAL TABLE IF NOT EXISTS ecomrec.silver_order_lines LOCATION 's3://bucket/lake/silver/order_lines/' ..."
    """
    validate_identifier(database, "database")
    if flavour not in ("spark", "athena"):
        raise ValueError(f"flavour {flavour!r} is not known; use 'spark' or 'athena'")
    if flavour == "athena":
        _s3_location(lake, "gold", "x", s3_lake)  # fail before listing the lake
    named = _named(lake_tables(spark, lake) if tables is None else tables)
    out = [f"CREATE DATABASE IF NOT EXISTS {database}"]
    for name, layer, table, path in named:
        if flavour == "athena":
            loc = sql_path(_s3_location(lake, layer, table, s3_lake))
            out.append(f"CREATE EXTERNAL TABLE IF NOT EXISTS {database}.{name} LOCATION {loc} "
                       "TBLPROPERTIES ('table_type'='DELTA')")
        else:
            out.append(f"CREATE TABLE IF NOT EXISTS {database}.{name} USING DELTA "
                       f"LOCATION {sql_path(_qualified(spark, path))}")
    return out


def _script(statements: Sequence[str], header: str) -> str:
    return "\n".join([header, ""] + [s + ";" for s in statements]) + "\n"


def athena_ddl(spark: SparkSession, lake: str, database: str = DEFAULT_DATABASE, s3_lake: str | None = None) -> str:
    """Athena DDL script creating native Delta tables for every silver and gold table.

    No column list: Athena reads the schema from the Delta log (engine v3, Glue catalog).
    For a local or ``hdfs://`` lake pass ``s3_lake``, the S3 copy the DDL should point at;
    ``s3a://`` lakes are rendered as ``s3://``.

    Examples
    --------
    >>> print(athena_ddl(spark, "./lake", s3_lake="s3://bucket/lake"))  # doctest: +SKIP
    -- Athena DDL ...
    CREATE DATABASE IF NOT EXISTS ecomrec;
    CREATE EXTERNAL TABLE IF NOT EXISTS ecomrec.order_features LOCATION 's3://bucket/lake/gold/order_features/' ...
    """
    statements = ddl_statements(spark, lake, database, flavour="athena", s3_lake=s3_lake)
    where = f"{lake} (rendered at its S3 copy {s3_lake})" if s3_lake else lake
    return _script(statements, _athena_header(where))


def _athena_header(where: str) -> str:
    return ("-- Athena DDL (engine v3, Glue Data Catalog): native Delta tables, schema read from the Delta log.\n"
            f"-- Tables of {where}.\n"
            "-- Written by `ecomrec athena-ddl`; run it in the Athena console or with "
            "ecomrec_spark.catalog.run_athena_ddl.")


def local_ddl(spark: SparkSession, lake: str, database: str = DEFAULT_DATABASE) -> str:
    """Spark SQL DDL script (``CREATE TABLE IF NOT EXISTS … USING DELTA LOCATION …``) for the lake's tables.

    These are the statements :func:`register_local` runs; each is idempotent.

    Examples
    --------
    >>> for stmt in split_statements(local_ddl(spark, lake)):  # doctest: +SKIP
    ...     spark.sql(stmt)
    """
    header = "-- Spark SQL DDL: register the lake's silver and gold Delta tables in the session catalog."
    return _script(ddl_statements(spark, lake, database, flavour="spark"), header)


def write_ddl(spark: SparkSession, lake: str, out_path: str, *, database: str = DEFAULT_DATABASE,
              s3_lake: str | None = None, flavour: str = "athena") -> str:
    """Write :func:`athena_ddl` (or, with ``flavour="spark"``, :func:`local_ddl`) to ``out_path``; returns the text.

    ``out_path`` may be local or an ``s3a://``/``s3://`` URI (written through Hadoop FS).

    Examples
    --------
    >>> write_ddl(spark, settings.paths.lake, "reports/athena_ddl.sql", s3_lake="s3://bucket/lake")  # doctest: +SKIP
    """
    if flavour == "athena":
        text = athena_ddl(spark, lake, database, s3_lake)
    elif flavour == "spark":
        text = local_ddl(spark, lake, database)
    else:
        raise ValueError(f"flavour {flavour!r} is not known; use 'athena' or 'spark'")
    storage.write_text(spark, out_path, text)
    log.info("wrote %s DDL for %s to %s", flavour, lake, out_path)
    return text


# --------------------------------------------------------------------------- local registration

def _registered_location(spark: SparkSession, database: str, name: str) -> str | None:
    """The catalog location of ``database.name``, or None when no such table is registered.

    Read from the catalog itself, not the Delta log, so a table whose folder is gone still answers.
    """
    if not spark.catalog.tableExists(f"{database}.{name}"):
        return None
    external = spark._jsparkSession.sharedState().externalCatalog()
    return str(external.getTable(database, name).location().toString())


def register_local(spark: SparkSession, lake: str, database: str = DEFAULT_DATABASE) -> list[str]:
    """Register every silver and gold Delta table in the session's catalog; returns the qualified names.

    Runs ``CREATE DATABASE IF NOT EXISTS`` and one ``CREATE TABLE IF NOT EXISTS …
    USING DELTA LOCATION`` per table.  Re-running is a no-op; a table already
    registered at another location is dropped (only the catalog entry: the tables
    are external, their data stays) and registered again at the lake's path.

    Locally the catalog is Spark's in-memory one, so the names last for the session:
    call this before querying ``ecomrec.*``.  On EMR with the Glue metastore they persist.

    Parameters
    ----------
    spark : the session (Delta catalog configured).
    lake : the lake root.
    database : the database to create and register into.

    Examples
    --------
    >>> register_local(spark, settings.paths.lake)  # doctest: +SKIP
    ['ecomrec.silver_order_lines', ..., 'ecomrec.recommendations']
    >>> spark.sql("select count(*) from ecomrec.recommendations")  # doctest: +SKIP
    """
    validate_identifier(database, "database")
    tables = lake_tables(spark, lake)
    statements = ddl_statements(spark, lake, database, flavour="spark", tables=tables)
    spark.sql(statements[0])
    registered: list[str] = []
    for (name, _layer, _table, path), stmt in zip(_named(tables), statements[1:], strict=True):
        want = _qualified(spark, path)
        have = _registered_location(spark, database, name)
        if have is not None and have.rstrip("/") != want.rstrip("/"):
            log.info("%s.%s points at %s; re-registering at %s", database, name, have, want)
            spark.sql(f"DROP TABLE {database}.{name}")
        spark.sql(stmt)
        registered.append(f"{database}.{name}")
    log.info("registered %d tables in %s: %s", len(registered), database, ", ".join(registered))
    return registered


# --------------------------------------------------------------------------- Athena through boto3

def run_athena_ddl(statements: Sequence[str], database: str, output_s3: str, workgroup: str = "primary",
                   client: Any = None, wait: bool = True, *, timeout_s: float = 300.0,
                   poll_s: float = 0.5, max_poll_s: float = 10.0) -> list[str]:
    """Submit each statement to Athena with ``start_query_execution``, in order; returns the query ids.

    ``CREATE DATABASE`` runs in the ``default`` database's context (``database`` may
    not exist yet), everything else in ``database``.  With ``wait`` each statement
    must succeed before the next is sent (polling ``get_query_execution`` with
    doubling back-off up to ``max_poll_s``); a FAILED or CANCELLED statement, or one
    still running after ``timeout_s``, raises ``RuntimeError``.  Credentials come
    from boto3's default chain (role, environment, profile).

    Parameters
    ----------
    statements : DDL or queries; a trailing ``;`` is dropped.
    database : the Glue database of the query context.
    output_s3 : where Athena writes results, e.g. ``s3://bucket/athena-results/``.
    workgroup : the Athena workgroup (engine v3 for Delta tables).
    client : a boto3 Athena client (default ``boto3.client("athena")``).
    wait : poll each statement to completion before sending the next.

    Examples
    --------
    >>> ddl = split_statements(athena_ddl(spark, lake, s3_lake="s3://bucket/lake"))  # doctest: +SKIP
    >>> run_athena_ddl(ddl, "ecomrec", "s3://bucket/athena-results/")  # doctest: +SKIP
    ['4f1c…', …]
    """
    validate_identifier(database, "database")
    if not isinstance(output_s3, str) or not output_s3.startswith("s3://") or len(output_s3) <= len("s3://"):
        raise ValueError(f"output_s3 {output_s3!r} must be an s3:// URI such as s3://my-bucket/athena-results/")
    validate_workgroup(workgroup)
    cleaned = [s.strip().rstrip(";").strip() for s in statements]
    if not cleaned or not all(cleaned):
        raise ValueError("statements must be a non-empty list of non-empty SQL statements")
    if client is None:
        import boto3

        client = boto3.client("athena")
    ids: list[str] = []
    for stmt in cleaned:
        creates_db = re.match(r"(?i)^create\s+(database|schema)\b", _COMMENT.sub("", stmt).strip())
        context = "default" if creates_db else database
        resp = client.start_query_execution(QueryString=stmt, QueryExecutionContext={"Database": context},
                                            ResultConfiguration={"OutputLocation": output_s3}, WorkGroup=workgroup)
        qid = resp["QueryExecutionId"]
        ids.append(qid)
        log.info("athena query %s submitted: %s", qid, stmt[:120])
        if wait:
            _wait_query(client, qid, timeout_s, poll_s, max_poll_s)
    return ids


def _wait_query(client: Any, qid: str, timeout_s: float, poll_s: float, max_poll_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    delay = poll_s
    while True:
        status = client.get_query_execution(QueryExecutionId=qid)["QueryExecution"]["Status"]
        state = status["State"]
        if state == "SUCCEEDED":
            log.info("athena query %s succeeded", qid)
            return
        if state in _DONE:
            raise RuntimeError(f"athena query {qid} {state}: {status.get('StateChangeReason', 'no reason given')}")
        if time.monotonic() + delay > deadline:
            raise RuntimeError(f"athena query {qid} still {state} after {timeout_s:.0f} s; check the Athena console")
        time.sleep(delay)
        delay = min(delay * 2, max_poll_s)


def register_athena(spark: SparkSession, lake: str, output_s3: str, database: str = DEFAULT_DATABASE,
                    s3_lake: str | None = None, workgroup: str = "primary", client: Any = None) -> list[str]:
    """Create the lake's tables as Athena-native Delta tables in the Glue Data Catalog; returns the query ids.

    :func:`athena_ddl`'s statements sent through :func:`run_athena_ddl`.

    Examples
    --------
    >>> register_athena(spark, "s3a://bucket/lake", "s3://bucket/athena-results/")  # doctest: +SKIP
    """
    statements = ddl_statements(spark, lake, database, flavour="athena", s3_lake=s3_lake)
    return run_athena_ddl(statements, database, output_s3, workgroup, client)


def register_tables(spark: SparkSession, settings: Settings, athena: bool = False) -> dict[str, Any]:
    """``ecomrec register-tables``: :func:`register_local` of ``settings.paths.lake`` into ``settings.catalog``'s
    database; with ``athena`` (``--athena``) also :func:`register_athena` (``catalog.athena_output``,
    ``s3_lake``, ``workgroup``), checked to be set before any table is registered.

    Returns ``{"database", "tables"}`` and, with ``athena``, ``"athena_queries"`` (the query ids).

    Examples
    --------
    >>> register_tables(spark, load_settings("conf/local.yaml"))["tables"][:1]  # doctest: +SKIP
    ['ecomrec.silver_order_lines']
    """
    c = settings.catalog
    if athena and not c.athena_output:
        raise ConfigError("register-tables --athena needs catalog.athena_output (an s3:// folder for query results)")
    out: dict[str, Any] = {"database": c.database, "tables": register_local(spark, settings.paths.lake, c.database)}
    if athena:
        assert c.athena_output is not None  # checked above
        out["athena_queries"] = register_athena(spark, settings.paths.lake, c.athena_output, c.database, c.s3_lake,
                                                c.workgroup)
    return out


# --------------------------------------------------------------------------- ready queries

def split_statements(sql: str, keep_comments: bool = False) -> list[str]:
    """Split a SQL script on ``;`` outside quotes and ``--`` comments; empty statements are dropped.

    Comments are removed unless ``keep_comments`` (a comment then belongs to the statement after it).

    Examples
    --------
    >>> split_statements("-- setup\\nselect 1; -- a;b\\nselect ';'")
    ['select 1', "select ';'"]
    >>> split_statements("select 1; -- a;b\\nselect ';'", keep_comments=True)
    ['select 1', "-- a;b\\nselect ';'"]
    """
    out: list[str] = []
    buf: list[str] = []
    quote, comment = "", False
    for ch in sql:
        if comment:
            comment = ch != "\n"
            if not keep_comments and comment:
                continue
        elif quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"`":
            quote = ch
        elif ch == "-" and buf and buf[-1] == "-":
            comment = True
            if not keep_comments:
                buf.pop()
                continue
        elif ch == ";":
            out.append("".join(buf).strip())
            buf = []
            continue
        buf.append(ch)
    out.append("".join(buf).strip())
    return [s for s in out if _COMMENT.sub("", s).strip()]


def query_files(directory: str | Path = QUERY_DIR) -> list[Path]:
    """The ``*.sql`` files of ``sql/athena``, by name."""
    return sorted(Path(directory).glob("*.sql"))


def load_queries(path: str | Path, database: str = DEFAULT_DATABASE) -> list[tuple[str, str]]:
    """``(name, sql)`` per statement of a query file; names come from ``-- name: <name>`` lines.

    Table references are written ``ecomrec.<table>``; another ``database`` is substituted in.

    Examples
    --------
    >>> [name for name, _ in load_queries(QUERY_DIR / "sales_trends.sql")]
    ['monthly_sales', 'top_products_by_revenue']
    """
    validate_identifier(database, "database")
    path = Path(path)
    out: list[tuple[str, str]] = []
    for i, stmt in enumerate(split_statements(path.read_text(encoding="utf-8"), keep_comments=True), start=1):
        m = re.search(r"^--\s*name:\s*([a-z0-9_]+)", stmt, re.MULTILINE)
        name = m.group(1) if m else f"{path.stem}_{i}"
        if database != DEFAULT_DATABASE:
            stmt = re.sub(rf"\b{DEFAULT_DATABASE}\.(?=[a-z_])", f"{database}.", stmt)
        out.append((name, stmt))
    return out


def run_query_file(spark: SparkSession, path: str | Path, database: str = DEFAULT_DATABASE) -> dict[str, DataFrame]:
    """Each named query of a file as a lazy DataFrame on the session catalog (call :func:`register_local` first).

    Examples
    --------
    >>> register_local(spark, lake)  # doctest: +SKIP
    >>> run_query_file(spark, QUERY_DIR / "sales_trends.sql")["monthly_sales"].show()  # doctest: +SKIP
    """
    return {name: spark.sql(stmt) for name, stmt in load_queries(path, database)}
