"""One writer per lake: a lease every writing command takes before it starts Spark, and gives back at the end.

Why: Delta keeps each table whole when two jobs write at once, but the loser dies with a Py4J
"conflicting commit" stack trace after minutes of work, and two stages interleaving (an ingest
and a transform) can leave tables from different runs.  So the second writer is refused at
once, before its JVM starts, with a message naming the holder.

The lease is one small JSON object beside the lake's layers, ``<paths.lake>/_writer_lease.json``:
``{"owner": {"host", "pid", "run_id", "command"}, "acquired_at", "heartbeat_at", "expires_at"}``
(times are UTC epoch seconds).  The holder's heartbeat thread moves ``expires_at`` forward every
``HEARTBEAT_SECONDS``; a holder that stops (killed, machine gone) lets it lapse after ``TTL_SECONDS``.

* **Local lakes**: created with ``O_CREAT | O_EXCL`` (exactly one creator wins), renewed by
  writing a temporary file and ``os.replace`` (readers see the old or the new text whole).
* **S3 lakes** (``s3://``/``s3a://``): ``PutObject`` with ``If-None-Match: *`` (S3's conditional
  write: exactly one creator wins), renewed and deleted with ``If-Match: <ETag>``, so a holder
  whose lease was taken over can neither renew nor delete the new one.  boto3 uses the default
  credential chain; ``fs.s3a.endpoint`` from the Spark config, when set, is the endpoint (a
  local S3 API in tests).

A lease that is still held is never taken.  ``--break-lock`` takes over one whose ``expires_at``
has passed.  One case needs no flag: a holder on this same host whose process no longer exists
(``kill -9``, a crash) cannot write any more, so its lease is taken over with a warning; this is
what lets a killed local run simply be run again.

Delta's own guarantee still holds underneath; on EMR with writers on more than one cluster,
configure Delta's DynamoDB LogStore as well (README, "Run on EMR").
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

LEASE_FILE = "_writer_lease.json"
TTL_SECONDS = 300.0
HEARTBEAT_SECONDS = 30.0


class LeaseHeld(RuntimeError):
    """Another writer holds the lake's lease (or held it and its lease has not expired)."""


@dataclass(frozen=True)
class Holder:
    """What a lease says about its owner."""

    doc: Mapping[str, Any]

    @property
    def run_id(self) -> str:
        return str((self.doc.get("owner") or {}).get("run_id", ""))

    def expired(self, now: float) -> bool:
        return float(self.doc.get("expires_at") or 0) <= now

    def dead_here(self) -> bool:
        """The owner ran on this host and its process is gone."""
        owner = self.doc.get("owner") or {}
        if owner.get("host") != socket.gethostname():
            return False
        try:
            os.kill(int(owner.get("pid")), 0)  # type: ignore[arg-type]  # None: TypeError, caught below
        except ProcessLookupError:
            return True
        except (PermissionError, TypeError, ValueError):  # alive under another user, or unreadable: not provably dead
            return False
        return False

    def describe(self) -> str:
        owner = self.doc.get("owner") or {}
        stamp = lambda key: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(self.doc.get(key) or 0)))  # noqa: E731
        return (f"`ecomrec {owner.get('command')}` (run {owner.get('run_id')}, pid {owner.get('pid')} on "
                f"{owner.get('host')}), holding it since {stamp('acquired_at')}, last heartbeat "
                f"{stamp('heartbeat_at')}, expiring {stamp('expires_at')}")


class Backend(Protocol):
    """Compare-and-swap on one small object; a token identifies the version written (an ETag, or the run id)."""

    where: str

    def create(self, text: str) -> str | None: ...             # None: it exists already
    def read(self) -> tuple[dict[str, Any], str] | None: ...     # None: there is none
    def replace(self, text: str, token: str) -> str | None: ...  # None: it is no longer ``token``
    def delete(self, token: str) -> bool: ...


class LocalBackend:
    def __init__(self, path: Path):
        self.path, self.where = path, str(path)

    def create(self, text: str) -> str | None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return None
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        return json.loads(text)["owner"]["run_id"]

    def read(self) -> tuple[dict[str, Any], str] | None:
        try:
            doc = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except ValueError:  # a creator between O_EXCL and its write: treat as held, never as free
            doc = {"owner": {"run_id": "?"}, "expires_at": time.time() + TTL_SECONDS}
        return doc, Holder(doc).run_id

    def replace(self, text: str, token: str) -> str | None:
        current = self.read()
        if current is None or current[1] != token:
            return None
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}")
        tmp.write_text(text)
        os.replace(tmp, self.path)
        return token

    def delete(self, token: str) -> bool:
        current = self.read()
        if current is None or current[1] != token:
            return False
        self.path.unlink(missing_ok=True)
        return True


class S3Backend:
    def __init__(self, bucket: str, key: str, endpoint_url: str | None = None):
        import boto3

        self.bucket, self.key = bucket, key
        self.where = f"s3://{bucket}/{key}"
        self.client = boto3.session.Session().client("s3", endpoint_url=endpoint_url)

    @staticmethod
    def _conflict(exc: Exception) -> bool:
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        return code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409", "NoSuchKey", "404")

    def _put(self, text: str, **condition: str) -> str | None:
        from botocore.exceptions import ClientError

        try:
            out = self.client.put_object(Bucket=self.bucket, Key=self.key, Body=text.encode(),
                                         ContentType="application/json", **condition)
        except ClientError as exc:
            if self._conflict(exc):
                return None
            raise
        return str(out["ETag"])

    def create(self, text: str) -> str | None:
        return self._put(text, IfNoneMatch="*")

    def read(self) -> tuple[dict[str, Any], str] | None:
        from botocore.exceptions import ClientError

        try:
            out = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("NoSuchKey", "404"):
                return None
            raise
        try:
            doc = json.loads(out["Body"].read())
        except ValueError:
            doc = {"owner": {"run_id": "?"}, "expires_at": time.time() + TTL_SECONDS}
        return doc, str(out["ETag"])

    def replace(self, text: str, token: str) -> str | None:
        return self._put(text, IfMatch=token)

    def delete(self, token: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=token)
        except ClientError as exc:
            if self._conflict(exc):
                return False
            raise
        return True


def backend_for(lake: str, spark_conf: Mapping[str, Any] | None = None) -> Backend:
    """The lease object of the lake at ``lake`` (a local folder, ``file://``, ``s3://`` or ``s3a://``)."""
    from ecomrec_spark.config import ConfigError, is_local_path, local_path

    if is_local_path(lake):
        return LocalBackend(local_path(lake) / LEASE_FILE)
    if lake.startswith(("s3://", "s3a://")):
        from ecomrec_spark.aws.s3 import parse_s3_uri

        bucket, prefix = parse_s3_uri(lake)
        endpoint = (spark_conf or {}).get("spark.hadoop.fs.s3a.endpoint")
        if endpoint and "://" not in str(endpoint):
            endpoint = f"https://{endpoint}"
        return S3Backend(bucket, f"{prefix}/{LEASE_FILE}" if prefix else LEASE_FILE, endpoint or None)
    raise ConfigError(f"paths.lake = {lake}: the writer lease supports local folders, s3:// and s3a:// lakes")


class Lease:
    """A held lease: renewed by a daemon thread until :meth:`release`."""

    def __init__(self, backend: Backend, doc: dict[str, Any], token: str, ttl: float, heartbeat: float):
        self.backend, self.doc, self.token, self.ttl, self.heartbeat = backend, doc, token, ttl, heartbeat
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="ecomrec-lease-heartbeat", daemon=True)
        self._thread.start()

    @property
    def run_id(self) -> str:
        return self.doc["owner"]["run_id"]

    def renew(self) -> bool:
        now = time.time()
        doc = {**self.doc, "heartbeat_at": now, "expires_at": now + self.ttl}
        token = self.backend.replace(json.dumps(doc), self.token)
        if token is None:
            self.lost = True
            log.error("the writer lease %s is no longer ours (taken over with --break-lock after it expired?); "
                      "this run's writes may interleave with another writer's", self.backend.where)
            return False
        self.doc, self.token = doc, token
        return True

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat):
            try:
                if not self.renew():
                    return
            except Exception:  # a network blip: try again at the next beat, the TTL leaves room for several
                log.warning("could not renew the writer lease %s", self.backend.where, exc_info=True)

    def release(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if not self.lost and not self.backend.delete(self.token):
            log.warning("the writer lease %s was not ours any more at release", self.backend.where)


def acquire(backend: Backend, command: str, break_lock: bool = False, ttl: float = TTL_SECONDS,
            heartbeat: float = HEARTBEAT_SECONDS, run_id: str | None = None) -> Lease:
    """Take the lease or raise :class:`LeaseHeld` naming the holder (see the module notes for the rules)."""
    now = time.time()
    doc: dict[str, Any] = {"owner": {"host": socket.gethostname(), "pid": os.getpid(), "run_id": run_id or uuid.uuid4().hex[:12],
                     "command": command},
           "acquired_at": now, "heartbeat_at": now, "expires_at": now + ttl}
    for _ in range(3):  # a holder that vanishes between our create and our read: try again
        token = backend.create(json.dumps(doc))
        if token is not None:
            log.info("writer lease %s taken by run %s (%s)", backend.where, doc["owner"]["run_id"], command)
            return Lease(backend, doc, token, ttl, heartbeat)
        current = backend.read()
        if current is None:
            continue
        holder, held_token = Holder(current[0]), current[1]
        if holder.dead_here():
            why = "its process is gone from this host"
        elif break_lock and holder.expired(time.time()):
            why = "it expired (--break-lock)"
        else:
            hint = ("it has not expired, so --break-lock will not take it; wait for that run to finish"
                    if break_lock else
                    "wait for that run to finish; if it is gone, its lease lapses at the expiry time above, "
                    "then rerun with --break-lock")
            raise LeaseHeld(f"the lake is being written by another run: the writer lease {backend.where} is held by "
                            f"{holder.describe()}; {hint}")
        log.warning("taking over the writer lease %s from %s: %s", backend.where, holder.describe(), why)
        backend.delete(held_token)  # conditional: if someone else took it over first, this deletes nothing
    raise LeaseHeld(f"could not take the writer lease {backend.where}: other runs keep taking it; try again")


@contextmanager
def writer(lake: str, command: str, spark_conf: Mapping[str, Any] | None = None,
           break_lock: bool = False, run_id: str | None = None) -> Iterator[Lease]:
    """Hold the lake's writer lease for the block."""
    lease = acquire(backend_for(lake, spark_conf), command, break_lock, run_id=run_id)
    try:
        yield lease
    finally:
        lease.release()
