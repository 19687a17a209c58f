"""Input adapters: one module per source format, each a list of TableSpecs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ecomrec_spark.sources import amazon, events, events_api, olist, transactions
from ecomrec_spark.sources.spec import TableSpec


def specs_for(source: str, cfg: Mapping[str, Any]) -> tuple[TableSpec, ...]:
    """The table specs of one configured source."""
    if source == "olist":
        return olist.TABLES
    if source == "events":
        return events.TABLES
    if source == "amazon":
        return amazon.TABLES
    if source == events_api.SOURCE:
        return events_api.TABLES
    if source == "transactions":
        return (transactions.table_spec(cfg.get("sources", {}).get("transactions", {})),)
    raise ValueError(f"unknown source '{source}'; choose from olist, events, amazon, transactions, events_api")
