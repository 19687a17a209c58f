"""The HTML report: chart primitives on hand-built numbers, then the page from a small demo run.

The page is built from a small planted run (every ``run-all`` stage, through the CLI
for the review, insights, catalog and report stages); it must hold every section,
every chart must draw marks, nothing may be fetched from the network, and headless
Chromium must render it to a screenshot that is not blank.
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess

import pytest
from headless import FLAGS, chromium, colours_and_ink

from ecomrec_spark import lake as lk
from ecomrec_spark.cli import main
from ecomrec_spark.report import svg
from ecomrec_spark.report.build import SECTION_IDS, Tables, data_quality, review_prediction

# run-all's stages that conftest.recommend_run did not run, in run-all's order (the review stages do not
# read the recommendation tables, so running them after those changes nothing)
REMAINING_STAGES = ("train-review", "score-reviews", "insights", "ab-report", "register-tables", "report", "publish")


def _marks(chart: str) -> int:
    return len(re.findall(r'class="mark"', chart))


# --------------------------------------------------------------------------- charts

def test_nice_ticks_cover_the_range_in_round_steps():
    assert svg.nice_ticks(0, 87) == [0, 20, 40, 60, 80, 100]
    assert svg.nice_ticks(0, 0.42) == [0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert svg.nice_ticks(-3, 7)[0] <= -3 and svg.nice_ticks(-3, 7)[-1] >= 7
    assert svg.nice_ticks(5, 5)[-1] >= 5  # a flat series still gets an axis


def test_bar_charts_draw_one_mark_per_value_and_skip_missing_ones():
    chart = svg.hbar_chart("units", ["a", "b", "c", "d"], [3, None, 7.5, float("nan")])
    assert _marks(chart) == 2 and "a: 3" in chart and "c: 7.50" in chart
    grouped = svg.bar_chart("two series", ["x", "y", "z"], {"s1": [1, 2, 3], "s2": [4, None, 6]})
    assert _marks(grouped) == 5
    assert svg.hbar_chart("empty", [], []) is None
    assert svg.bar_chart("all missing", ["x"], {"s": [None]}) is None


def test_line_chart_keeps_gaps_and_heatmap_has_a_cell_per_pair():
    line = svg.line_chart("gappy", ["d1", "d2", "d3", "d4", "d5"], {"s": [1, 2, None, 4, 5]})
    assert line.count("<polyline") == 2  # two runs either side of the gap
    single = svg.line_chart("one point", ["d1"], {"s": [3]})
    assert single.count("<circle") == 1
    heat = svg.heatmap("confusion", ["1", "2"], ["1", "2"], [[5, 1], [0, 9]], "actual", "predicted")
    assert _marks(heat) == 4 and ">9<" in heat


def test_labels_are_escaped():
    chart = svg.hbar_chart("<b>", ["<script>alert(1)</script>"], [1])
    assert "<script>" not in chart and "&lt;script&gt;" in chart


# --------------------------------------------------------------------------- sections on hand-built tables

def test_prediction_section_sums_the_confusion_over_categories(spark, lake):
    rows = [("toys", 5, 5, 8), ("toys", 5, 4, 2), ("books", 5, 5, 3), ("books", 1, 2, 4), ("books", 1, 1, 1)]
    df = spark.createDataFrame(rows, "category string, actual int, predicted int, n long")
    lk.overwrite(df, str(lake), "gold", "insights_prediction_confusion")
    section = review_prediction(Tables(spark, str(lake)))
    html = "".join(section.blocks)
    heat = html[html.index("<svg"):html.index("</svg>")]
    # actual 5 / predicted 5 = 8 + 3; actual 1 / predicted 2 = 4
    assert "5 / 5: 11</title>" in heat and "1 / 2: 4</title>" in heat and "1 / 1: 1</title>" in heat
    # per-category exact accuracy: toys 8/10, books 4/8
    assert '<td>toys</td><td class="n">10</td><td class="n">0.800</td>' in html
    assert '<td>books</td><td class="n">8</td><td class="n">0.500</td>' in html


def test_quality_section_counts_each_reason_once_and_the_outliers(spark, lake):
    root = str(lake)
    q = spark.createDataFrame([("x", "f.csv", "missing order_id; bad timestamp in ts: 'soon'"),
                               ("y", "f.csv", "bad timestamp in ts: 'later'"), ("z", "g.csv", "missing order_id")],
                              "raw_text string, source_file string, reason string")
    lk.overwrite(q, root, "quarantine", "olist_orders")
    lines = spark.createDataFrame([("toys", 1.0)] * 6 + [("books", 2.0)] * 3, "category string, price double")
    outliers = spark.createDataFrame([("toys", 99.0), ("toys", 98.0)], "category string, price double")
    lk.overwrite(lines, root, "silver", "order_lines")
    lk.overwrite(outliers, root, "silver", "order_line_outliers")
    html = "".join(data_quality(Tables(spark, root)).blocks)
    assert '<td>olist_orders</td><td>missing order_id</td><td class="n">2</td>' in html
    assert '<td>olist_orders</td><td>bad timestamp in ts</td><td class="n">2</td>' in html  # quoted value dropped
    assert "<b>2</b><span>outlier lines removed</span>" in html
    assert "<b>0.18</b><span>share of order lines</span>" in html  # 2 / 11


# --------------------------------------------------------------------------- the page from a demo run

@pytest.fixture(scope="module")
def demo(recommend_run):
    """The remaining stages of a full run, through the CLI, on the planted lake of ``conftest.recommend_run``.

    That lake already holds ingest, transform and the recommendations with their evaluation; the
    review model (a one-point grid, two baselines), scoring, insights, catalog and report are added
    as ``run-all`` would, in its order.
    """
    sets = [*recommend_run["sets"], "review.compare_weighting=false",
            "review.baselines=[majority,logistic_regression]", "review.grid.max_depth=[3]",
            "review.grid.n_estimators=[40]", "review.grid.learning_rate=[0.3]", "review.grid.min_child_weight=[1.0]",
            "review.grid.subsample=[1.0]"]
    args = [a for s in sets for a in ("--set", s)]
    out, codes = io.StringIO(), {}
    with contextlib.redirect_stdout(out):
        for command in REMAINING_STAGES:
            codes[command] = main([command, *args])
    root = recommend_run["root"]
    return {"codes": codes, "stdout": out.getvalue(), "path": root / "reports" / "index.html", "root": root}


def test_the_insights_tables_are_queryable_in_the_local_catalog(spark, demo):
    totals = spark.sql("SELECT sum(revenue) AS r FROM ecomrec.insights_sales_trends "
                       "WHERE grain = 'month' AND dimension = 'total'").first()["r"]
    by_category = spark.sql("SELECT sum(revenue) AS r FROM ecomrec.insights_sales_trends "
                            "WHERE grain = 'month' AND dimension = 'category'").first()["r"]
    assert totals > 0 and abs(totals - by_category) < 1e-6 * totals  # every sold line has one category
    assert spark.sql("SELECT count(*) AS n FROM ecomrec.review_sentiment").first()["n"] > 0


def test_the_stages_write_the_report_and_print_its_path(demo):
    from ecomrec_spark.registry import NAMES as names
    done_before = ("ingest", "transform", "build-recommendations", "evaluate-recommendations")
    assert tuple(n for n in names if n not in done_before) == REMAINING_STAGES
    assert demo["codes"] == {c: 0 for c in REMAINING_STAGES}
    assert demo["path"].is_file()
    assert f"report: {demo['path']} ({len(SECTION_IDS)} sections" in demo["stdout"]


def test_every_section_is_there_and_every_chart_has_content(demo):
    html = demo["path"].read_text(encoding="utf-8")
    found = re.findall(r'<section id="([a-z-]+)" data-section=', html)
    assert found == list(SECTION_IDS)
    # Every input table exists after run-all: no "missing table" notes -- but the A/B section, since no
    # customer has posted events to the API in this run (tests/test_ab_test.py renders it from events).
    ab_body = html.split('data-section="ab-test"', 1)[1].split("</section>", 1)[0]
    assert "no gold/insights_ab_test" in ab_body
    assert 'class="note"' not in html.replace(ab_body, "")
    charts = re.findall(r'<svg [^>]*class="chart".*?</svg>', html, flags=re.S)
    assert len(charts) >= 25
    empty = [re.search(r"<title>(.*?)</title>", c).group(1) for c in charts if _marks(c) == 0]
    assert empty == []
    for section in (s for s in SECTION_IDS if s != "ab-test"):
        body = html.split(f'data-section="{section}"', 1)[1].split("</section>", 1)[0]
        assert "<svg" in body or "<table>" in body or 'class="kpi"' in body, section
    # self-contained: no scripts, no external resources
    assert "<script" not in html and not re.search(r'(src|href)="(https?:)?//', html)
    for text in ("xgboost_tuned", "logistic_regression", "NDCG@10", "Quarantine counts by reason",
                 "IQR outliers removed by category", "Revenue by month", "Holiday lift", "P(positive"):
        assert text in html, text


def test_headless_chromium_renders_a_page_that_is_not_blank(demo, tmp_path):
    browser = chromium()
    shot = tmp_path / "report.png"
    cmd = [browser, *FLAGS, f"--screenshot={shot}",
           "--window-size=1280,2400", demo["path"].resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert shot.is_file(), done.stderr[-2000:]
    width, height, colours, ink = colours_and_ink(shot)
    assert (width, height) == (1280, 2400)
    assert len(colours) > 100  # text, axes and coloured marks, not one flat colour
    assert ink > 0.03
    assert colours[bytes((0x2B, 0x6C, 0xB0))] > 5000  # the charts' first colour: the SVG marks were drawn
