"""The benchmarks' data: the demo generator's orders through ingest and transform, as ``make demo`` runs them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def build_demo_lake(spark: Any, cfg: Mapping[str, Any]) -> dict[str, int]:
    """generate -> ingest -> transform into ``cfg``'s ``paths.raw`` and ``paths.lake``; transform's row counts."""
    from ecomrec_spark.generate.dataset import generate_dataset
    from ecomrec_spark.ingest.run import ingest
    from ecomrec_spark.settings import Settings
    from ecomrec_spark.transform.run import transform

    generate_dataset(spark, cfg["paths"]["raw"], dict(cfg["generate"]))
    settings = Settings.from_config(cfg)
    ingest(spark, settings)
    return transform(spark, settings)
