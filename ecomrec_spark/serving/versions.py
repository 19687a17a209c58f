"""The serving store's versions: naming, the refused mark, pruning, ``--list`` and ``--rollback``.

Why apart from :mod:`.publish`: ``ecomrec publish --list`` and ``--rollback`` only read and move
the live pointer, so they run with no Spark and without even importing pyspark (like the API);
:mod:`.publish` builds the documents in Spark and uses these rules when it writes a version.

The rules:

* a version's name sorts by time, and a new one always sorts after every existing one;
* a version the quality gate refused stays complete (``--list`` shows it; its info's ``gate``
  starts with ``refused:``) but was never live, so ``--rollback`` skips it and the next
  successful switch drops it;
* after a switch, complete versions beyond ``serving.keep_versions`` are dropped (never the live
  one), and so are pending versions older than the new one (publishes that failed midway).
"""

from __future__ import annotations

import calendar
import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ecomrec_spark.serving.store import COMPLETE, PENDING, Store, StoreUnavailable, VersionInfo, new_version, open_store

if TYPE_CHECKING:
    from ecomrec_spark.settings import Settings

log = logging.getLogger(__name__)

REFUSED = "refused: "  # how a version's info records that the gate kept it from going live


class PublishError(ValueError):
    """The store is unreachable, a write came up short, or there is nothing to roll back to (exit 2)."""


@contextlib.contextmanager
def store_errors() -> Iterator[None]:
    """A missing or unreadable store is one line for the CLI, not a stack trace."""
    try:
        yield
    except StoreUnavailable as exc:
        raise PublishError(str(exc)) from None


def next_version(store: Store) -> str:
    """A new version name that sorts after every existing one (two publishes in one second stay ordered)."""
    try:
        existing = [v.version for v in store.versions()]
    except StoreUnavailable:  # DynamoDB before the first publish: no tables yet
        existing = []
    now = time.time()
    if existing:
        newest = calendar.timegm(time.strptime(max(existing)[:16], "%Y%m%dT%H%M%SZ"))
        now = max(now, newest + 1)
    return new_version(now)


def refused(v: VersionInfo) -> bool:
    """A version the gate kept from going live (it was never live, so rollback skips it)."""
    return str(v.info.get("gate", "")).startswith(REFUSED)


def prune(store: Store, keep: int, current: str) -> list[str]:
    """After a switch: drop complete versions beyond the newest ``keep`` (never the live one), and the
    refused and pending (failed) versions older than ``current``.  Returns them, oldest first."""
    live = store.live()
    versions = store.versions()  # newest first
    good = [v.version for v in versions if v.status == COMPLETE and not refused(v)]
    dropped = {v for v in good[keep:] if v != live}
    dropped |= {v.version for v in versions
                if v.version != live and v.version < current and (v.status == PENDING or refused(v))}
    for v in sorted(dropped):
        store.drop(v)
        log.info("dropped serving version %s", v)
    return sorted(dropped)


def rollback_target(store: Store) -> str | None:
    """The newest complete, never-refused version older than the live one (what ``--rollback`` switches to)."""
    live = store.live()
    return next((v.version for v in store.versions() if v.status == COMPLETE and not refused(v)
                 and (live is None or v.version < live)), None)


def live_metrics(store: Store, live: str | None) -> Mapping[str, Any] | None:
    if live is None:
        return None
    info = next((v.info for v in store.versions() if v.version == live), None)
    return (info or {}).get("metrics") or {}


def list_versions(settings: Settings) -> dict[str, Any]:
    """``{"store", "versions": [VersionInfo.as_dict(), ...]}``, newest first (no Spark)."""
    store = open_store(settings, readonly=True)
    with store_errors():
        return {"store": store.description, "versions": [v.as_dict() for v in store.versions()]}


def rollback(settings: Settings) -> dict[str, Any]:
    """Make the newest complete version older than the live one live, skipping refused ones (no Spark)."""
    with store_errors():
        current = open_store(settings, readonly=True).live()  # a missing store is an error, not a new empty file
        store = open_store(settings)
        target = rollback_target(store)
        if current is None or target is None:
            raise PublishError(f"nothing to roll back to in {store.description}: "
                               + ("no version is live; run `ecomrec publish`" if current is None else
                                  f"live version {current} is the oldest complete version kept "
                                  f"(serving.keep_versions = {settings.serving.keep_versions})"))
        store.set_live(target)
    log.info("rolled back %s from %s to %s", store.description, current, target)
    return {"store": store.description, "live": target, "rolled_back_from": current}
