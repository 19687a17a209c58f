"""Generic transactions through a column mapping in config (UCI Online Retail is the example).

The mapping names the file's header for each canonical column; bronze uses the
canonical names so downstream code never sees the shop's own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecomrec_spark.sources.spec import Col, TableSpec

if TYPE_CHECKING:
    from ecomrec_spark.settings import TransactionsSource

# canonical name -> (kind, required)
CANONICAL = {
    "order_id": ("string", True),
    "product_id": ("string", True),
    "customer_id": ("string", False),
    "timestamp": ("timestamp", True),
    "quantity": ("int", True),
    "unit_price": ("double", True),
    "description": ("string", False),
    "category": ("string", False),
    "country": ("string", False),
}


def table_spec(conf: TransactionsSource) -> TableSpec:
    """Build the spec from ``sources.transactions`` of the settings."""
    cols = []
    for name, (kind, required) in CANONICAL.items():
        header = getattr(conf.columns, name)
        if header is None:
            if required:
                raise ValueError(f"sources.transactions.columns.{name} must name the file's column for {name}")
            continue
        cols.append(Col(header, kind, required=required, fmt=conf.timestamp_format, rename=name))
    return TableSpec("transactions", "transactions", conf.files, tuple(cols))
