"""Feedback events from ``POST /v1/events``: check a whole batch, then append it durably where ingest reads it.

Why this shape: the next training run must learn from what customers did with the lists, and
the A/B report must count impressions and clicks per variant, so every accepted event has to
reach ``<paths.raw>/events_api/`` intact and exactly once.  Hence:

* :func:`validate_batch` is pure: it checks every row (ids by the CLI's rules, the event type,
  an ISO-8601 timestamp, the optional variant and version) and returns either the normalised
  events or every problem with its row index.  One bad row rejects the batch, so a client
  never has to work out which half of a batch landed.
* :class:`LocalSink` writes one JSON Lines file per accepted batch under a temporary name in the
  same folder, flushes and ``fsync`` s it, then ``os.replace`` s it to
  ``events-<YYYYMMDDTHHMMSSZ>-<batch_id>.jsonl`` (and fsyncs the folder), so ingest, which globs
  ``events-*.jsonl*``, never sees half a file and an acknowledged batch survives a crash.
* :class:`S3Sink` does the same with one ``put_object`` (atomic by S3's design) under
  ``<prefix>/events_api/`` when ``paths.raw`` is on S3; credentials come from boto3's default chain.

Each line holds ``customer_id, product_id, event_type, timestamp, variant, version, batch_id,
received_at`` (timestamps ISO-8601 UTC with ``Z``); :mod:`ecomrec_spark.sources.events_api`
reads exactly this.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ecomrec_spark.identifiers import CUSTOMER_ID_PATTERN, PRODUCT_ID_PATTERN
from ecomrec_spark.serving.store import VERSION_PATTERN

log = logging.getLogger(__name__)

FOLDER = "events_api"
# the same vocabulary as ecomrec_spark.sources.events_api.EVENT_TYPES (a test keeps them equal)
EVENT_TYPES = ("impression", "click", "view", "cart", "purchase")
FIELDS = ("customer_id", "product_id", "event_type", "timestamp", "variant", "version")
REQUIRED = FIELDS[:4]
# what ingest's iso8601 columns accept (ecomrec_spark.ingest.parse.ISO_8601); no zone means UTC there too
ISO_8601 = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})?")
VARIANT_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,32}")  # a serving.variants name, or "override"


@dataclass(frozen=True)
class Problem:
    """Why a batch was refused: ``index`` is the row (``None`` for the batch as a whole)."""

    index: int | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "reason": self.reason}


def utc_text(value: dt.datetime) -> str:
    """``2026-12-05T03:20:00Z`` (with ``.ffffff`` only when there are fractions of a second)."""
    value = value.astimezone(dt.UTC) if value.tzinfo else value
    return value.replace(tzinfo=None).isoformat(timespec="microseconds" if value.microsecond else "seconds") + "Z"


def _timestamp(value: Any) -> str:
    if not isinstance(value, str) or not ISO_8601.fullmatch(value):
        raise ValueError(f"timestamp must be ISO-8601 like 2026-12-05T03:20:00Z, got {value!r}")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"timestamp {value!r} is not a real date and time") from None
    return utc_text(parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC))


def _row_problems(row: Any) -> tuple[dict[str, Any] | None, list[str]]:
    if not isinstance(row, Mapping):
        return None, [f"an event must be a JSON object, got {type(row).__name__}"]
    reasons = []
    unknown = sorted(set(row) - set(FIELDS), key=str)
    if unknown:
        reasons.append(f"unknown field(s) {', '.join(map(repr, unknown))} (allowed: {', '.join(FIELDS)})")
    for name in REQUIRED:
        if row.get(name) is None:
            reasons.append(f"missing {name}")
    out: dict[str, Any] = {}
    cid, pid, kind = row.get("customer_id"), row.get("product_id"), row.get("event_type")
    if cid is not None:
        if isinstance(cid, str) and CUSTOMER_ID_PATTERN.fullmatch(cid):
            out["customer_id"] = cid
        else:
            reasons.append(f"customer_id must be 1-64 letters, digits, '_', '-', '.' or ':', got {cid!r}")
    if pid is not None:
        if isinstance(pid, str) and PRODUCT_ID_PATTERN.fullmatch(pid):
            out["product_id"] = pid
        else:
            reasons.append(f"product_id must be 1-64 letters, digits, '_', '-' or '.', got {pid!r}")
    if kind is not None:
        if kind in EVENT_TYPES:
            out["event_type"] = kind
        else:
            reasons.append(f"event_type must be one of {', '.join(EVENT_TYPES)}, got {kind!r}")
    if row.get("timestamp") is not None:
        try:
            out["timestamp"] = _timestamp(row["timestamp"])
        except ValueError as exc:
            reasons.append(str(exc))
    variant, version = row.get("variant"), row.get("version")
    if variant is not None and not (isinstance(variant, str) and VARIANT_PATTERN.fullmatch(variant)):
        reasons.append(f"variant must be null or a variant name (1-32 letters, digits, '_' or '-'), got {variant!r}")
    if version is not None and not (isinstance(version, str) and VERSION_PATTERN.fullmatch(version)):
        reasons.append(f"version must be null or a serving version like 20261205T031500Z-1a2b3c, got {version!r}")
    out["variant"], out["version"] = variant, version
    return (None if reasons else {k: out[k] for k in FIELDS}), reasons


def validate_batch(body: Any, max_events: int) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Check a whole ``{"events": [...]}`` body; return ``(events, [])`` or ``([], problems)``.

    Pure: no I/O, no clock.  Every row is checked, so the problems list each bad row's index
    with all its reasons; with any problem no event is returned (nothing of the batch is written).

    >>> ok, bad = validate_batch({"events": [{"customer_id": "C1", "product_id": "P1", "event_type": "click",
    ...                                        "timestamp": "2026-12-05T04:20:00+01:00"}]}, 10)
    >>> ok[0]["timestamp"], bad
    ('2026-12-05T03:20:00Z', [])
    >>> validate_batch({"events": [{"customer_id": "C1"}]}, 10)[1][0].index
    0
    """
    if not isinstance(body, Mapping) or set(body) != {"events"}:
        return [], [Problem(None, 'the body must be a JSON object with exactly one key, "events" (a list of events)')]
    rows = body["events"]
    if not isinstance(rows, list) or not rows:
        return [], [Problem(None, '"events" must be a non-empty list')]
    if len(rows) > max_events:
        return [], [Problem(None, f"a batch holds at most {max_events} events (serving.max_events), got {len(rows)}")]
    events, problems = [], []
    for i, row in enumerate(rows):
        event, reasons = _row_problems(row)
        if reasons:
            problems.append(Problem(i, "; ".join(reasons)))
        elif event is not None:
            events.append(event)
    return ([], problems) if problems else (events, [])


def batch_lines(events: Sequence[Mapping[str, Any]], batch_id: str, received_at: str) -> bytes:
    """The JSON Lines bytes of one batch: each event plus its ``batch_id`` and ``received_at``."""
    return b"".join(json.dumps({**{k: e[k] for k in FIELDS}, "batch_id": batch_id, "received_at": received_at},
                               ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n" for e in events)


def batch_name(batch_id: str, now: float) -> str:
    return f"events-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))}-{batch_id}.jsonl"


@dataclass(frozen=True)
class Written:
    """Where an accepted batch landed: ``file`` (local path) or ``object`` (``s3://`` URI)."""

    batch_id: str
    accepted: int
    file: str | None = None
    object: str | None = None


class Sink(Protocol):
    description: str

    def append(self, events: Sequence[Mapping[str, Any]]) -> Written: ...


def _new_batch() -> tuple[str, float, str]:
    now = time.time()
    return os.urandom(8).hex(), now, utc_text(dt.datetime.fromtimestamp(now, dt.UTC).replace(microsecond=0))


class LocalSink:
    """One fsynced JSON Lines file per batch in ``<raw>/events_api/``, renamed into place whole."""

    def __init__(self, raw: str | Path):
        self.folder = Path(raw) / FOLDER
        self.description = f"file:{self.folder}"

    def append(self, events: Sequence[Mapping[str, Any]]) -> Written:
        batch_id, now, received = _new_batch()
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.folder / batch_name(batch_id, now)
        temp = self.folder / f".{final.name}.tmp"  # hidden and not *.jsonl: ingest's glob and Spark skip it
        try:
            with open(temp, "wb") as fh:
                fh.write(batch_lines(events, batch_id, received))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temp, final)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.folder, os.O_RDONLY)
        try:  # the rename itself is durable only once the folder is synced
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        log.info("events: batch %s, %d event(s) -> %s", batch_id, len(events), final)
        return Written(batch_id, len(events), file=str(final))


class S3Sink:
    """One ``put_object`` per batch to ``s3://<bucket>/<prefix>/events_api/``."""

    def __init__(self, raw: str, client: Any = None):
        scheme, _, rest = raw.partition("://")
        if scheme not in ("s3", "s3a", "s3n") or not rest.split("/", 1)[0]:
            raise ValueError(f"paths.raw {raw!r} is not an s3:// URI")
        self.bucket, _, prefix = rest.partition("/")
        self.prefix = "/".join(p for p in (prefix.strip("/"), FOLDER) if p)
        self.description = f"s3://{self.bucket}/{self.prefix}/"
        self._client, self._lock = client, threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:  # boto3 clients are thread-safe once made; making one is not
            if self._client is None:
                import boto3

                self._client = boto3.client("s3")  # the default credential chain (the API's role on AWS)
            return self._client

    def append(self, events: Sequence[Mapping[str, Any]]) -> Written:
        batch_id, now, received = _new_batch()
        key = f"{self.prefix}/{batch_name(batch_id, now)}"
        self.client.put_object(Bucket=self.bucket, Key=key, Body=batch_lines(events, batch_id, received),
                               ContentType="application/x-ndjson")
        log.info("events: batch %s, %d event(s) -> s3://%s/%s", batch_id, len(events), self.bucket, key)
        return Written(batch_id, len(events), object=f"s3://{self.bucket}/{key}")


def open_sink(raw: str) -> Sink:
    """The sink for ``paths.raw``: S3 for ``s3://`` (or ``s3a://``), otherwise a local folder."""
    if re.match(r"^s3[an]?://", raw):
        return S3Sink(raw)
    from ecomrec_spark.config import local_path

    return LocalSink(local_path(raw))
