"""The live version as a running API sees it: the store's pointer, re-read every ``serving.refresh_seconds``.

Why a pointer cache and nothing more: publish switches versions with one atomic write of the
pointer, and the API must follow without a restart.  Reading the pointer on every request would
add a store round trip to each lookup; reading it once would pin the API to the version it
started with.  So :class:`LivePointer` re-reads it when its copy is older than
``refresh_seconds`` and, only when the version changed, reads that version's info (default
model, served models, k).  Documents are always read under the version of the request's
:class:`Live` snapshot, so a request never mixes two versions and nothing of an old version is
served after the switch is seen.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ecomrec_spark.identifiers import SERVE_MODELS
from ecomrec_spark.serving.store import Store, StoreUnavailable, VersionError

log = logging.getLogger(__name__)

NO_LIVE = "the serving store {store} has no live version yet; run `ecomrec publish` to publish one"


@dataclass(frozen=True)
class Live:
    """One request's view: the store and the live version with its info."""

    store: Store
    version: str
    info: Mapping[str, Any] = field(default_factory=dict)
    fallback_k: int = 20
    created_at: str | None = None

    @property
    def published_at(self) -> str | None:
        """When the version was published (its info's ``published_at``, else the store's record time)."""
        return self.info.get("published_at") or self.created_at

    def get(self, key: str) -> Any | None:
        return self.store.get(self.version, key)

    @property
    def k(self) -> int:
        """Items kept per published list (the API's k is at most this, and at most 100)."""
        return int(self.info.get("k") or self.fallback_k)

    @property
    def models(self) -> tuple[str, ...]:
        """The models with published customer lists, in the CLI's order."""
        published = self.info.get("models")
        return tuple(published) if published else SERVE_MODELS

    @property
    def default_model(self) -> str:
        return str(self.info.get("default_model") or self.models[0])


class LivePointer:
    """Thread-safe cache of the live version, refreshed after ``refresh_seconds``."""

    def __init__(self, store: Store, refresh_seconds: float, fallback_k: int = 20,
                 clock: Callable[[], float] = time.monotonic,
                 on_switch: Callable[[str], None] | None = None):
        self.store, self.refresh_seconds, self.fallback_k = store, float(refresh_seconds), fallback_k
        self._clock, self._on_switch = clock, on_switch
        self._lock = threading.Lock()
        self._live: Live | None = None
        self._checked = float("-inf")

    @property
    def cached(self) -> Live | None:
        """The version last seen, without touching the store (``None`` before the first read)."""
        return self._live

    def current(self) -> Live:
        """The live version, re-reading the pointer when the cached one is older than ``refresh_seconds``.

        Raises :class:`StoreUnavailable` when the store cannot be read or has no live version.
        """
        live = self._live
        if live is not None and self._clock() - self._checked < self.refresh_seconds:
            return live
        with self._lock:  # one thread re-reads; the others wait for it rather than all hitting the store
            live = self._live
            if live is not None and self._clock() - self._checked < self.refresh_seconds:
                return live
            try:
                version = self.store.live()
            except VersionError as exc:
                raise StoreUnavailable(f"the live pointer of {self.store.description} is broken ({exc}); "
                                       "run `ecomrec publish --rollback` or `ecomrec publish`") from None
            if version is None:
                raise StoreUnavailable(NO_LIVE.format(store=self.store.description))
            if live is None or live.version != version:
                live = self._load(version)
                log.info("serving version %s is live (default model %s, models %s, k %d)",
                         version, live.default_model, ", ".join(live.models), live.k)
                if self._on_switch is not None:
                    self._on_switch(version)
            self._live, self._checked = live, self._clock()
            return live

    def _load(self, version: str) -> Live:
        record = next((v for v in self.store.versions() if v.version == version), None)
        if record is None:
            raise StoreUnavailable(f"the live version {version} has no record in {self.store.description}; "
                                   "run `ecomrec publish`")
        return Live(self.store, version, dict(record.info), self.fallback_k, record.created_at)
