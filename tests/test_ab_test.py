"""The A/B table: counts, rates, Wilson intervals and differences from hand-built events; its report section."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from ecomrec_spark import lake as lk
from ecomrec_spark.config import load_settings
from ecomrec_spark.insights.ab_test import TABLE, ab_report, ab_test_table
from ecomrec_spark.report.build import Tables, ab_test

# (variant, customer, event_type, how many such events)
EVENTS = [
    ("control", "c1", "impression", 5), ("control", "c2", "impression", 5), ("control", "c3", "impression", 10),
    ("control", "c1", "click", 5), ("control", "c1", "purchase", 1), ("control", "c2", "view", 2),
    ("alt", "a1", "impression", 25), ("alt", "a1", "click", 10), ("alt", "a2", "purchase", 4),
    ("empty", "e1", "click", 1),  # clicks but no impressions: no rates
    (None, "n1", "impression", 3),  # no variant: left out
]
SCHEMA = ("variant string, is_control boolean, control string, customers long, impressions long, clicks long, "
          "purchases long, ctr double, ctr_lo double, ctr_hi double, conversion double, conversion_lo double, "
          "conversion_hi double, ctr_diff double, ctr_diff_lo double, ctr_diff_hi double, conversion_diff double, "
          "conversion_diff_lo double, conversion_diff_hi double")
NONE12 = (None,) * 12
# Wilson: (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n), z = 1.959964; difference: d ± z·sqrt(Σ p(1-p)/n)
EXPECTED = [
    # control: 5/20 clicks -> 0.25 [0.111862, 0.468701]; 1/20 purchases -> 0.05 [0.008881, 0.236131]
    ("control", True, "control", 3, 20, 5, 1, 0.25, 0.111862, 0.468701, 0.05, 0.008881, 0.236131,
     None, None, None, None, None, None),
    # alt: 10/25 -> 0.4 [0.234033, 0.592605]; 4/25 -> 0.16 [0.064035, 0.346536];
    # ctr diff 0.4 - 0.25 = 0.15 ± 1.96·sqrt(.4·.6/25 + .25·.75/20) = ± 0.269985
    # conversion diff 0.16 - 0.05 = 0.11 ± 1.96·sqrt(.16·.84/25 + .05·.95/20) = ± 0.172555
    ("alt", False, "control", 2, 25, 10, 4, 0.4, 0.234033, 0.592605, 0.16, 0.064035, 0.346536,
     0.15, -0.119985, 0.419985, 0.11, -0.062555, 0.282555),
    ("empty", False, "control", 1, 0, 1, 0, *NONE12),
]


@pytest.fixture(scope="module")
def events(spark):
    counts = spark.createDataFrame(EVENTS, "variant string, user_id string, event_type string, n int")
    return counts.select("variant", "user_id", "event_type", F.explode(F.sequence(F.lit(1), F.col("n"))).alias("_i")
                         ).drop("_i")


def test_counts_rates_wilson_bounds_and_differences_to_the_configured_control(spark, events):
    # config order names the control; by name alone "alt" would come first
    got = ab_test_table(events, order=["control", "alt"])
    assertDataFrameEqual(got, spark.createDataFrame(EXPECTED, SCHEMA), rtol=1e-4)


def test_without_a_config_order_the_first_variant_by_name_is_the_control(spark, events):
    got = ab_test_table(events).select("variant", "is_control", "ctr_diff", "ctr_diff_lo", "ctr_diff_hi")
    # control 0.25 - alt 0.4 = -0.15, same half-width
    expected = [("alt", True, None, None, None), ("control", False, -0.15, -0.419985, 0.119985),
                ("empty", False, None, None, None)]
    assertDataFrameEqual(got, spark.createDataFrame(
        expected, "variant string, is_control boolean, ctr_diff double, ctr_diff_lo double, ctr_diff_hi double"),
        rtol=1e-4)


def test_bad_arguments_fail_before_spark_runs(events):
    with pytest.raises(ValueError, match="col_variant"):
        ab_test_table(events.drop("variant"))
    with pytest.raises(ValueError, match="z must be"):
        ab_test_table(events, z=-1.0)


def test_no_api_events_skips_and_the_report_section_says_why(spark, events, lake, tmp_path):
    settings = load_settings(None, [f"paths.lake={lake}", f"paths.raw={tmp_path / 'raw'}"])
    assert "no API events" in ab_report(spark, settings)["skipped"]
    html = "".join(ab_test(Tables(spark, lake)).blocks)
    assert html.startswith('<p class="note">no gold/insights_ab_test') and "<table>" not in html

    lk.overwrite(ab_test_table(events, ["control", "alt"]), lake, "gold", TABLE)
    html = "".join(ab_test(Tables(spark, lake)).blocks)
    assert 'class="note"' not in html and 'class="chart"' in html
    assert "<td>control (control)</td>" in html and "<td>[0.112, 0.469]</td>" in html  # control's CTR interval
    assert "<td>[-0.120, 0.420]</td>" in html  # alt's CTR difference to the control
