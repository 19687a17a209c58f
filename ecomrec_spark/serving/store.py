"""The serving store: immutable versions of key -> JSON documents, and one pointer naming the live version.

Two implementations sit behind one interface (:class:`Store`):

* :class:`SQLiteStore`, the embedded default (``serving.store: sqlite``): one file,
  ``<paths.serving>/serving.sqlite``, in WAL mode so the API reads while publish writes;
* :class:`DynamoStore` on AWS (``serving.store: dynamodb``): a ``<prefix>-versions`` table
  (one item per version plus the ``live`` pointer item) and one ``<prefix>-items-<version>``
  table per version, so dropping a version is one ``DeleteTable`` and the API role can be
  read-only on ``<prefix>-*``.  Tables are on-demand (``PAY_PER_REQUEST``).

Keys (see :mod:`.keys`) are plain strings such as ``customer#C1`` or ``popular#overall``;
values are JSON text.  A version is written, then committed, then made live; switching is
one write of the pointer (an ``INSERT OR REPLACE`` / ``PutItem``), so readers see either the
old or the new version whole.  Nothing here imports Spark: the API process uses this module.
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ecomrec_spark.settings import Settings

try:  # the API's documents are parsed on every request: orjson (the [serve] extra) does it ~3x faster than json
    from orjson import loads as parse_document
except ImportError:  # the Spark jobs (EMR installs no [serve] extra) only write documents, never parse them
    parse_document = json.loads  # type: ignore[assignment]  # str/bytes in, the same documents out

VERSION_PATTERN = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6,12}$")
PENDING, COMPLETE = "pending", "complete"
SQLITE_FILE = "serving.sqlite"
BATCH = 500


class StoreUnavailable(RuntimeError):
    """The store is missing, unreadable or has no live version (the API answers 503)."""


class VersionError(ValueError):
    """A version name that is malformed, unknown or not complete."""


def check_version(version: str) -> str:
    """A version read from anywhere must match ``VERSION_PATTERN`` before it names a table or a row."""
    if not isinstance(version, str) or not VERSION_PATTERN.fullmatch(version):
        raise VersionError(f"{version!r} is not a serving version (expected e.g. 20261205T031500Z-1a2b3c)")
    return version


def new_version(now: float | None = None, suffix: str | None = None) -> str:
    """``YYYYMMDDTHHMMSSZ-<hex>``: sorts by time, unique per publish."""
    import os

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now if now is not None else time.time()))
    return check_version(f"{stamp}-{suffix or os.urandom(4).hex()}")


@dataclass(frozen=True)
class VersionInfo:
    version: str
    created_at: str
    status: str
    info: dict[str, Any] = field(default_factory=dict)
    live: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "created_at": self.created_at, "status": self.status, "live": self.live,
                **self.info}


class Store(Protocol):
    """What publish writes and the API reads."""

    description: str
    inline: bool                                     # reads are quick enough for the API's event loop

    def ping(self) -> None: ...                      # raise StoreUnavailable when unreachable
    def live(self) -> str | None: ...
    def set_live(self, version: str) -> None: ...
    def versions(self) -> list[VersionInfo]: ...     # newest first
    def begin(self, version: str, info: Mapping[str, Any]) -> None: ...
    def write(self, version: str, rows: Iterable[tuple[str, str]]) -> int: ...
    def commit(self, version: str, info: Mapping[str, Any]) -> None: ...
    def get(self, version: str, key: str) -> Any | None: ...
    def drop(self, version: str) -> None: ...


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def complete_versions(store: Store) -> list[VersionInfo]:
    return [v for v in store.versions() if v.status == COMPLETE]


def previous_version(store: Store) -> str | None:
    """The newest complete version older than the live one (what ``--rollback`` switches to)."""
    live = store.live()
    older = [v.version for v in complete_versions(store) if live is None or v.version < live]
    return older[0] if older else None


class SQLiteStore:
    """The embedded store: ``items(version, key, value)``, ``versions``, ``pointer`` in one SQLite file."""

    def __init__(self, path: str | Path, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self.description = f"sqlite:{self.path}"
        # a read is one primary-key lookup in a local file (~50 us): the API makes it on its event loop,
        # which saves the thread-pool hand-off that costs more than the read itself
        self.inline = True
        self._local = threading.local()  # one connection per thread (sqlite3 connections are not shared)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self.readonly:
            if not self.path.is_file():
                raise StoreUnavailable(f"no serving store at {self.path}; run `ecomrec publish` first")
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False, timeout=5)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(
                "CREATE TABLE IF NOT EXISTS versions (version TEXT PRIMARY KEY, created_at TEXT NOT NULL, "
                "status TEXT NOT NULL, info TEXT NOT NULL);"
                "CREATE TABLE IF NOT EXISTS pointer (name TEXT PRIMARY KEY, version TEXT NOT NULL);"
                "CREATE TABLE IF NOT EXISTS items (version TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, "
                "PRIMARY KEY (version, key)) WITHOUT ROWID;")
        self._local.conn = conn
        return conn

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        try:
            return self._conn().execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"serving store {self.path} is unreadable ({exc}); run `ecomrec publish`") from None

    def ping(self) -> None:
        self._query("SELECT 1 FROM pointer LIMIT 1")

    def live(self) -> str | None:
        rows = self._query("SELECT version FROM pointer WHERE name = 'live'")
        return check_version(rows[0][0]) if rows else None

    def set_live(self, version: str) -> None:
        check_version(version)
        conn = self._conn()
        with conn:  # one transaction: the pointer moves only to a complete version
            row = conn.execute("SELECT status FROM versions WHERE version = ?", (version,)).fetchone()
            if not row or row[0] != COMPLETE:
                raise VersionError(f"version {version} is not a complete published version")
            conn.execute("INSERT OR REPLACE INTO pointer (name, version) VALUES ('live', ?)", (version,))

    def versions(self) -> list[VersionInfo]:
        live = self.live()
        return [VersionInfo(v, c, s, json.loads(i), v == live) for v, c, s, i in
                self._query("SELECT version, created_at, status, info FROM versions ORDER BY version DESC")]

    def begin(self, version: str, info: Mapping[str, Any]) -> None:
        check_version(version)
        with self._conn() as conn:
            conn.execute("INSERT INTO versions VALUES (?, ?, ?, ?)", (version, _now(), PENDING, json.dumps(dict(info))))

    def write(self, version: str, rows: Iterable[tuple[str, str]]) -> int:
        """Insert every row in one transaction (a failed publish leaves nothing of the version behind)."""
        check_version(version)
        conn, n = self._conn(), 0
        with conn:
            batch: list[tuple[str, str, str]] = []
            for key, value in rows:
                batch.append((version, key, value))
                if len(batch) >= BATCH:
                    conn.executemany("INSERT INTO items VALUES (?, ?, ?)", batch)
                    n, batch = n + len(batch), []
            conn.executemany("INSERT INTO items VALUES (?, ?, ?)", batch)
            n += len(batch)
        return n

    def commit(self, version: str, info: Mapping[str, Any]) -> None:
        with self._conn() as conn:
            conn.execute("UPDATE versions SET status = ?, info = ? WHERE version = ?",
                         (COMPLETE, json.dumps(dict(info)), check_version(version)))

    def get(self, version: str, key: str) -> Any | None:
        rows = self._query("SELECT value FROM items WHERE version = ? AND key = ?", (version, key))
        return parse_document(rows[0][0]) if rows else None

    def drop(self, version: str) -> None:
        with self._conn() as conn:
            conn.execute("DELETE FROM items WHERE version = ?", (check_version(version),))
            conn.execute("DELETE FROM versions WHERE version = ?", (version,))


def _dynamo_resource(region: str | None, endpoint_url: str | None) -> Any:
    import boto3

    # a session of its own: boto3's default session and its resources must not be shared between threads
    return boto3.session.Session().resource("dynamodb", region_name=region, endpoint_url=endpoint_url)


def dynamo_partition_writer(table_name: str, region: str | None, endpoint_url: str | None) -> Callable[[Iterator], None]:
    """A ``foreachPartition`` function: each executor writes its rows with ``batch_writer`` (no row data on the driver).

    Credentials come from the executor's default chain (its instance role on EMR)."""

    def write_partition(rows: Iterator) -> None:
        table = _dynamo_resource(region, endpoint_url).Table(table_name)
        with table.batch_writer(overwrite_by_pkeys=["key"]) as batch:
            for row in rows:
                batch.put_item(Item={"key": row["key"], "value": row["value"]})

    return write_partition


class DynamoStore:
    """DynamoDB: ``<prefix>-versions`` (version records and the ``live`` pointer), ``<prefix>-items-<version>``."""

    POINTER = "live"

    def __init__(self, table_prefix: str, region: str | None = None, endpoint_url: str | None = None):
        self.prefix, self.region, self.endpoint_url = table_prefix, region, endpoint_url
        self.description = f"dynamodb:{table_prefix}-*" + (f" at {endpoint_url}" if endpoint_url else "")
        self.inline = False  # a network round trip: the API reads from its thread pool, never on the event loop
        # boto3 resources are not thread-safe and the API reads from a thread pool: one resource per thread
        self._local = threading.local()

    @property
    def db(self) -> Any:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = _dynamo_resource(self.region, self.endpoint_url)
            self._local.tables = {}
        return db

    @property
    def versions_table(self) -> str:
        return f"{self.prefix}-versions"

    def items_table(self, version: str) -> str:
        return f"{self.prefix}-items-{check_version(version)}"

    def _table(self, name: str) -> Any:
        db, tables = self.db, self._local.tables
        if name not in tables:
            tables[name] = db.Table(name)
        return tables[name]

    def _call(self, fn: Callable[[], Any]) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                raise StoreUnavailable(f"no serving tables {self.prefix}-*; run `ecomrec publish` first") from None
            raise StoreUnavailable(f"DynamoDB {self.description}: {code or exc}") from None
        except BotoCoreError as exc:
            raise StoreUnavailable(f"DynamoDB {self.description} is unreachable ({exc})") from None

    def _create(self, name: str, key: str) -> None:
        """Create an on-demand table with one string hash key if it is missing, and wait until it is active."""
        client = self.db.meta.client
        try:
            client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                                KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
                                AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}])
        except client.exceptions.ResourceInUseException:
            pass
        client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 2, "MaxAttempts": 60})

    def ping(self) -> None:
        self._call(lambda: self.db.meta.client.describe_table(TableName=self.versions_table))

    def live(self) -> str | None:
        item = self._call(lambda: self._table(self.versions_table).get_item(Key={"version": self.POINTER})).get("Item")
        return check_version(item["live"]) if item else None

    def set_live(self, version: str) -> None:
        check_version(version)
        item = self._call(lambda: self._table(self.versions_table).get_item(Key={"version": version})).get("Item")
        if not item or item.get("status") != COMPLETE:
            raise VersionError(f"version {version} is not a complete published version")
        self._call(lambda: self._table(self.versions_table).put_item(Item={"version": self.POINTER, "live": version}))

    def versions(self) -> list[VersionInfo]:
        table = self._table(self.versions_table)
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {}
        while True:  # a handful of version records; Scan pages through them
            page = self._call(functools.partial(table.scan, **kwargs))
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                break
            kwargs = {"ExclusiveStartKey": page["LastEvaluatedKey"]}
        live = next((i["live"] for i in items if i["version"] == self.POINTER), None)
        out = [VersionInfo(i["version"], i["created_at"], i["status"], json.loads(i["info"]), i["version"] == live)
               for i in items if i["version"] != self.POINTER]
        return sorted(out, key=lambda v: v.version, reverse=True)

    def begin(self, version: str, info: Mapping[str, Any]) -> None:
        self._create(self.versions_table, "version")
        self._create(self.items_table(version), "key")
        self._table(self.versions_table).put_item(Item={"version": version, "created_at": _now(), "status": PENDING,
                                                        "info": json.dumps(dict(info))})

    def write(self, version: str, rows: Iterable[tuple[str, str]]) -> int:
        """Driver-side write (small lists); publish writes the big tables from the executors instead."""
        n = 0
        with self._table(self.items_table(version)).batch_writer(overwrite_by_pkeys=["key"]) as batch:
            for key, value in rows:
                batch.put_item(Item={"key": key, "value": value})
                n += 1
        return n

    def partition_writer(self, version: str) -> Callable[[Iterator], None]:
        return dynamo_partition_writer(self.items_table(version), self.region, self.endpoint_url)

    def commit(self, version: str, info: Mapping[str, Any]) -> None:
        self._table(self.versions_table).put_item(Item={"version": check_version(version), "created_at": _now(),
                                                        "status": COMPLETE, "info": json.dumps(dict(info))})

    def get(self, version: str, key: str) -> Any | None:
        table = self._table(self.items_table(version))
        item = self._call(lambda: table.get_item(Key={"key": key})).get("Item")
        return parse_document(item["value"]) if item else None

    def drop(self, version: str) -> None:
        client = self.db.meta.client
        try:
            client.delete_table(TableName=self.items_table(version))
        except client.exceptions.ResourceNotFoundException:
            pass
        self._table(self.versions_table).delete_item(Key={"version": version})


def open_store(settings: Settings, readonly: bool = False) -> Store:
    """The store ``serving.store`` names: SQLite under ``paths.serving``, or DynamoDB."""
    if settings.serving.store == "dynamodb":
        d = settings.serving.dynamodb
        return DynamoStore(d.table_prefix, d.region, d.endpoint_url)
    from ecomrec_spark.config import local_path

    serving = settings.paths.folder("serving", " (a local folder: serving.store is sqlite)")
    return SQLiteStore(local_path(serving) / SQLITE_FILE, readonly=readonly)
