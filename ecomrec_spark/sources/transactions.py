"""Generic transactions through a column mapping in config (UCI Online Retail is the example).

The mapping names the file's header for each canonical column; bronze uses the
canonical names so downstream code never sees the shop's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ecomrec_spark.sources.spec import Col, TableSpec

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


def table_spec(conf: Mapping[str, Any]) -> TableSpec:
    """Build the spec from ``sources.transactions`` of the config."""
    mapping = conf.get("columns", {})
    cols = []
    for name, (kind, required) in CANONICAL.items():
        header = mapping.get(name)
        if header is None:
            if required:
                raise ValueError(f"sources.transactions.columns.{name} must name the file's column for {name}")
            continue
        cols.append(Col(header, kind, required=required, fmt=conf.get("timestamp_format", "yyyy-MM-dd HH:mm:ss"), rename=name))
    return TableSpec("transactions", "transactions", conf.get("files", "*.csv*"), tuple(cols))
