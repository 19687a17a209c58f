"""The ETL benchmark's Spark/pandas agreement check, on a small generated input (~20,000 rows)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import etl  # noqa: E402

ROWS = 20_000


def test_spark_library_and_pandas_agree_on_the_benchmark_etl(spark, cfg, tmp_path):
    src = tmp_path / "input.parquet"
    assert etl.generate_input(spark, ROWS, src)
    assert etl.input_ready(src, ROWS) and not etl.generate_input(spark, ROWS, src)  # cached on the second call

    report = etl.run_agreement(spark, src, tmp_path / "check", cfg["transform"])

    assert report["ok"], "\n".join(report["mismatches"])
    assert report["kept"] + report["outliers"] == ROWS and report["outliers"] > 0
    assert report["categories"] == etl.N_CATEGORIES
    # nulls were imputed, and the category without freight fell back to the global mean
    assert report["price_imputed"] > 0 and report["freight_imputed"] > 0
    assert report["global_fallback_categories"] == [etl.NO_FREIGHT_CATEGORY]


def test_grouped_quantiles_match_numpy_inverted_cdf():
    import numpy as np

    rng = np.random.default_rng(7)
    codes = rng.integers(0, 5, 1_000)
    values = np.round(rng.lognormal(3, 1, 1_000), 1)  # rounded, so ties occur
    values[rng.random(1_000) < 0.05] = np.nan
    (q1, q3), _ = etl.grouped_quantiles(codes, values, 6, (0.25, 0.75))
    for g in range(5):
        v = values[(codes == g) & ~np.isnan(values)]
        assert q1[g] == np.quantile(v, 0.25, method="inverted_cdf")
        assert q3[g] == np.quantile(v, 0.75, method="inverted_cdf")
    assert np.isnan(q1[5]) and np.isnan(q3[5])  # a group without values
