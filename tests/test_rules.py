"""Association rules (ecomrec_spark.recommend.rules): hand-computed toy data, the arules
Groceries data against an exact count in plain Python, parameter checks, category level."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from ecomrec_spark.recommend import rules as R

TOL = 1e-9


@pytest.fixture(scope="module")
def toy_lines(spark):
    # Six orders (o3 repeats milk, o2 has a null product, one line has no order):
    #   o1 {milk, bread, butter}  o2 {milk, bread}  o3 {milk, bread}
    #   o4 {milk, eggs}           o5 {bread, butter} o6 {eggs}
    rows = [("o1", "milk"), ("o1", "bread"), ("o1", "butter"),
            ("o2", "milk"), ("o2", "bread"), ("o2", None),
            ("o3", "milk"), ("o3", "bread"), ("o3", "milk"),
            ("o4", "milk"), ("o4", "eggs"),
            ("o5", "bread"), ("o5", "butter"),
            ("o6", "eggs"),
            (None, "caviar")]
    return spark.createDataFrame(rows, "order_id string, product_id string")


def test_baskets_distinct_sorted(toy_lines):
    b = R.baskets(toy_lines)
    assert b.columns == ["basket_id", "items"]
    got = {r["basket_id"]: r["items"] for r in b.collect()}
    assert got == {"o1": ["bread", "butter", "milk"], "o2": ["bread", "milk"], "o3": ["bread", "milk"],
                   "o4": ["eggs", "milk"], "o5": ["bread", "butter"], "o6": ["eggs"]}


def test_frequent_itemsets_by_hand(spark, toy_lines):
    # n = 6, min_support 0.3 -> min count ceil(1.8) = 2.
    # milk 4, bread 4, butter 2, eggs 2, {bread, milk} 3, {bread, butter} 2;
    # {milk, butter} 1 and {milk, eggs} 1 are below the count.
    fi = R.frequent_itemsets(R.baskets(toy_lines), 0.3)
    expected = spark.createDataFrame(
        [(["milk"], 4, 4 / 6), (["bread"], 4, 4 / 6), (["butter"], 2, 2 / 6), (["eggs"], 2, 2 / 6),
         (["bread", "milk"], 3, 3 / 6), (["bread", "butter"], 2, 2 / 6)],
        "items array<string>, freq long, support double")
    assertDataFrameEqual(fi, expected, rtol=1e-12, checkRowOrder=False)
    single = R.frequent_itemsets(R.baskets(toy_lines), 0.3, max_items=1)
    assert single.count() == 4


def test_rules_by_hand(spark, toy_lines):
    # n = 6, min count 2, min_confidence 0.5:
    #   milk  -> bread : freq 3, support 3/6, conf 3/4 = .75, lift .75/(4/6) = 1.125
    #   bread -> milk  : freq 3, support 3/6, conf 3/4 = .75, lift 1.125
    #   butter-> bread : freq 2, support 2/6, conf 2/2 = 1,   lift 1/(4/6)  = 1.5
    #   bread -> butter: freq 2, support 2/6, conf 2/4 = .5,  lift .5/(2/6) = 1.5
    rules = R.association_rules(R.baskets(toy_lines), 0.3, 0.5)
    assert rules.columns == R.RULE_COLUMNS
    assert dict(rules.dtypes) == {"level": "string", "antecedent": "array<string>", "consequent": "array<string>",
                                  "support": "double", "confidence": "double", "lift": "double",
                                  "antecedent_support": "double", "consequent_support": "double",
                                  "n_baskets": "bigint", "freq": "bigint"}
    expected = spark.createDataFrame([
        ("product", ["milk"], ["bread"], 3 / 6, 0.75, 1.125, 4 / 6, 4 / 6, 6, 3),
        ("product", ["bread"], ["milk"], 3 / 6, 0.75, 1.125, 4 / 6, 4 / 6, 6, 3),
        ("product", ["butter"], ["bread"], 2 / 6, 1.0, 1.5, 2 / 6, 4 / 6, 6, 2),
        ("product", ["bread"], ["butter"], 2 / 6, 0.5, 1.5, 4 / 6, 2 / 6, 6, 2),
    ], R.RULES_SCHEMA)
    assertDataFrameEqual(rules, expected, rtol=1e-12, checkRowOrder=False)
    # Spark's own `support` column is the rule support freq(A u C)/n, as documented.
    from pyspark.ml.fpm import FPGrowth
    m = FPGrowth(minSupport=0.3, minConfidence=0.5).fit(R.baskets(toy_lines).select("items"))
    spark_support = {(tuple(r["antecedent"]), tuple(r["consequent"])): r["support"]
                     for r in m.associationRules.collect()}
    assert spark_support[("butter",), ("bread",)] == pytest.approx(2 / 6)
    assert spark_support[("milk",), ("bread",)] == pytest.approx(3 / 6)

    stricter = R.association_rules(R.baskets(toy_lines), 0.3, 0.6)
    assert stricter.where(F.col("antecedent") == F.array(F.lit("bread"))).where(
        F.col("consequent") == F.array(F.lit("butter"))).count() == 0
    assert stricter.count() == 3


def test_rules_three_items_and_max_items(spark):
    # a,b,c together in 3 of 4 baskets: every 2->1 and 1->1 rule exists at conf >= .75.
    b = spark.createDataFrame([(["a", "b", "c"],), (["c", "b", "a"],), (["a", "b", "c", "a"],), (["a"],)],
                              "items array<string>")
    all_rules = R.association_rules(b, 0.5, 0.0)
    assert all_rules.count() == 9  # 3 two-item antecedents + 6 one-item ones
    ab_c = all_rules.where(F.col("antecedent") == F.array(F.lit("a"), F.lit("b"))).collect()
    assert len(ab_c) == 1 and ab_c[0]["consequent"] == ["c"]
    # {a,b,c} 3/4; {a,b} 3/4 -> conf 1; c in 3/4 -> lift 4/3
    assert ab_c[0]["support"] == pytest.approx(0.75) and ab_c[0]["confidence"] == pytest.approx(1.0)
    assert ab_c[0]["lift"] == pytest.approx(4 / 3) and ab_c[0]["antecedent_support"] == pytest.approx(0.75)
    pairs = R.association_rules(b, 0.5, 0.0, max_items=2)
    assert pairs.count() == 6
    assert pairs.where(F.size("antecedent") > 1).count() == 0


def test_no_baskets_gives_empty_frames(spark):
    empty = spark.createDataFrame([], "basket_id string, items array<string>")
    r = R.association_rules(empty, 0.1, 0.1)
    assert r.columns == R.RULE_COLUMNS and r.count() == 0
    fi = R.frequent_itemsets(empty, 0.1)
    assert fi.columns == ["items", "freq", "support"] and fi.count() == 0


# --------------------------------------------------------------------------- Groceries

def _exact_groceries(path, min_support: float, min_confidence: float):
    """Exact level-wise (Apriori) count in plain Python: {itemset: freq}, rules, n."""
    with open(path, encoding="utf-8") as fh:
        txns = [frozenset(line.rstrip("\n").split(",")) for line in fh]
    n = len(txns)
    min_count = math.ceil(min_support * n)  # MLlib's threshold
    counts = Counter(item for t in txns for item in t)
    frequent = {frozenset([i]): c for i, c in counts.items() if c >= min_count}
    level = set(frequent)
    k = 2
    while level:
        items_k = {i for s in level for i in s}
        cand = Counter()
        for t in txns:
            for combo in itertools.combinations(sorted(t & items_k), k):
                fs = frozenset(combo)
                if all(fs - {x} in level for x in fs):  # every (k-1)-subset frequent
                    cand[fs] += 1
        level = {s for s, c in cand.items() if c >= min_count}
        frequent.update({s: cand[s] for s in level})
        k += 1
    rules = {}
    for s, f in frequent.items():
        if len(s) < 2:
            continue
        for c in s:
            a = s - {c}
            conf = f / frequent[a]
            if conf >= min_confidence:
                rules[(tuple(sorted(a)), (c,))] = {
                    "support": f / n, "confidence": conf, "lift": conf / (frequent[frozenset([c])] / n),
                    "antecedent_support": frequent[a] / n, "consequent_support": frequent[frozenset([c])] / n,
                    "freq": f}
    return txns, frequent, rules, n


def test_groceries_exact(spark, shared_data):
    path = shared_data / "groceries" / "groceries.csv"
    min_support, min_confidence = 0.01, 0.1
    txns, exact_fi, exact_rules, n = _exact_groceries(path, min_support, min_confidence)

    # Published arules summary (PROVENANCE.md).
    assert n == 9835
    assert len({i for t in txns for i in t}) == 169
    assert sum(len(t) for t in txns) == 43367
    for item, count in [("whole milk", 2513), ("other vegetables", 1903), ("rolls/buns", 1809),
                        ("soda", 1715), ("yogurt", 1372)]:
        assert exact_fi[frozenset([item])] == count

    b = (spark.read.text(str(path))
         .select(F.monotonically_increasing_id().alias("basket_id"), F.split("value", ",").alias("items")))
    fi = R.frequent_itemsets(b, min_support)
    got_fi = {frozenset(r["items"]): (r["freq"], r["support"]) for r in fi.collect()}
    assert set(got_fi) == set(exact_fi)
    for s, (freq, support) in got_fi.items():
        assert freq == exact_fi[s], s
        assert abs(support - exact_fi[s] / n) <= TOL
    assert got_fi[frozenset(["whole milk"])][1] == pytest.approx(0.2555160142, abs=1e-9)

    rules = R.association_rules(b, min_support, min_confidence)
    rows = rules.collect()
    got = {(tuple(r["antecedent"]), tuple(r["consequent"])): r for r in rows}
    assert len(got) == len(rows)
    assert set(got) == set(exact_rules)
    assert len(exact_rules) > 100  # the check is not vacuous
    assert any(len(a) == 2 for a, _ in exact_rules)
    for key, r in got.items():
        want = exact_rules[key]
        assert r["level"] == "product" and r["n_baskets"] == n and r["freq"] == want["freq"], key
        for m in ("support", "confidence", "lift", "antecedent_support", "consequent_support"):
            assert abs(r[m] - want[m]) <= TOL, (key, m, r[m], want[m])
    # A rule often quoted from arules' apriori(Groceries, supp = 0.01, conf = 0.5).
    quoted = got[(("citrus fruit", "root vegetables"), ("other vegetables",))]
    assert quoted["support"] == pytest.approx(0.01037112, abs=1e-8)
    assert quoted["confidence"] == pytest.approx(0.5862069, abs=1e-7)
    assert quoted["lift"] == pytest.approx(3.029608, abs=1e-6)


# --------------------------------------------------------------------------- validation

@pytest.mark.parametrize("kwargs, match", [
    ({"min_support": 0.0, "min_confidence": 0.5}, "min_support"),
    ({"min_support": -0.1, "min_confidence": 0.5}, "min_support"),
    ({"min_support": 1.5, "min_confidence": 0.5}, "min_support"),
    ({"min_support": float("nan"), "min_confidence": 0.5}, "min_support"),
    ({"min_support": True, "min_confidence": 0.5}, "min_support"),
    ({"min_support": "0.1", "min_confidence": 0.5}, "min_support"),
    ({"min_support": 0.1, "min_confidence": -0.01}, "min_confidence"),
    ({"min_support": 0.1, "min_confidence": 1.01}, "min_confidence"),
    ({"min_support": 0.1, "min_confidence": None}, "min_confidence"),
    ({"min_support": 0.1, "min_confidence": 0.5, "max_items": 1}, "max_items"),
    ({"min_support": 0.1, "min_confidence": 0.5, "level": ""}, "level"),
])
def test_parameter_errors(spark, kwargs, match):
    b = spark.createDataFrame([(["a"],)], "items array<string>")
    with pytest.raises(ValueError, match=match):
        R.association_rules(b, **kwargs)


def test_other_input_errors(spark):
    b = spark.createDataFrame([(["a"],)], "items array<string>")
    with pytest.raises(ValueError, match="min_support"):
        R.frequent_itemsets(b, 0)
    with pytest.raises(ValueError, match="max_items"):
        R.frequent_itemsets(b, 0.5, max_items=0)
    with pytest.raises(ValueError, match="items"):
        R.association_rules(spark.createDataFrame([("a",)], "products string"), 0.5, 0.5)
    with pytest.raises(ValueError, match="basket_col"):
        R.baskets(spark.createDataFrame([("a",)], "product_id string"))
    with pytest.raises(ValueError, match="category_col"):
        R.category_baskets(spark.createDataFrame([("o", "a")], "order_id string, product_id string"))
    # Edges are allowed: support 1 and confidence 0 / 1.
    assert R.association_rules(b, 1, 0).count() == 0
    assert R.association_rules(b, 1.0, 1.0).count() == 0


# --------------------------------------------------------------------------- category level

def test_category_rules(spark):
    # Categories per order (unknown left out):
    #   o1 {dairy, bakery}   o2 {dairy, bakery}   o3 {dairy}
    #   o4 {bakery, drinks}  (o5 only unknown -> no basket)
    # n = 4, min_support 0.5 -> count 2: dairy 3, bakery 3, {bakery, dairy} 2.
    #   dairy  -> bakery: support 2/4, conf 2/3, lift (2/3)/(3/4) = 8/9
    #   bakery -> dairy : support 2/4, conf 2/3, lift 8/9
    lines = spark.createDataFrame([
        ("o1", "p1", "dairy"), ("o1", "p2", "dairy"), ("o1", "p3", "bakery"),
        ("o2", "p1", "dairy"), ("o2", "p4", "bakery"), ("o2", "p9", "unknown"),
        ("o3", "p2", "dairy"),
        ("o4", "p4", "bakery"), ("o4", "p5", "drinks"),
        ("o5", "p9", "unknown"),
    ], "order_id string, product_id string, category string")
    cb = R.category_baskets(lines)
    assert {r["basket_id"]: r["items"] for r in cb.collect()} == {
        "o1": ["bakery", "dairy"], "o2": ["bakery", "dairy"], "o3": ["dairy"], "o4": ["bakery", "drinks"]}
    rules = R.association_rules(cb, 0.5, 0.5, level="category")
    expected = spark.createDataFrame([
        ("category", ["dairy"], ["bakery"], 0.5, 2 / 3, 8 / 9, 0.75, 0.75, 4, 2),
        ("category", ["bakery"], ["dairy"], 0.5, 2 / 3, 8 / 9, 0.75, 0.75, 4, 2),
    ], R.RULES_SCHEMA)
    assertDataFrameEqual(rules, expected, rtol=1e-12, checkRowOrder=False)
