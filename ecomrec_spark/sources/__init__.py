"""Input adapters: one module per source format, each a list of TableSpecs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecomrec_spark.sources import amazon, events, events_api, olist, transactions
from ecomrec_spark.sources.spec import TableSpec

if TYPE_CHECKING:
    from ecomrec_spark.settings import Sources


def specs_for(source: str, sources: Sources) -> tuple[TableSpec, ...]:
    """The table specs of one configured source (``sources``: the settings' ``sources`` section)."""
    if source == "olist":
        return olist.TABLES
    if source == "events":
        return events.TABLES
    if source == "amazon":
        return amazon.TABLES
    if source == events_api.SOURCE:
        return events_api.TABLES
    if source == "transactions":
        return (transactions.table_spec(sources.transactions),)
    raise ValueError(f"unknown source '{source}'; choose from olist, events, amazon, transactions, events_api")
