"""Review-text sentiment: weak labels, the seeded held-out split, the MLlib pipeline, aggregation, the stage."""

from __future__ import annotations

import pytest
from pyspark.ml import PipelineModel
from pyspark.ml.feature import Word2Vec
from pyspark.ml.functions import vector_to_array
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from ecomrec_spark import lake as lk
from ecomrec_spark.insights import sentiment as S
from ecomrec_spark.settings import Settings

REVIEW_SCHEMA = ("source string, review_id string, order_id string, customer_id string, product_id string, "
                 "review_score int, title string, text string, review_ts timestamp, answer_ts timestamp")

# (title, text) of each review, Portuguese and English; ids r01.. follow this order (and decide the held-out split).
POSITIVE = [
    ("ótimo produto, chegou antes do prazo", None),
    ("Produto muito bom", "Recomendo, chegou antes do prazo"),
    (None, "Entrega rápida, tudo certo. Recomendo!"),
    (None, "Ótima qualidade, superou minhas expectativas"),
    ("Adorei", "Produto muito bom, bem embalado"),
    (None, "Chegou antes do prazo, ótima qualidade"),
    (None, "Vendedor confiável, entrega rápida"),
    (None, "Superou as expectativas, recomendo o vendedor"),
    ("Excelente", "Ótimo produto, bem embalado, recomendo"),
    (None, "Comprarei novamente, produto muito bom"),
    (None, "Great product, arrived early, recommend"),
    (None, "Great quality, fast delivery"),
    (None, "tudo certo, entrega rápida e produto ótimo"),
    (None, "Recomendo muito, ótima qualidade"),
    (None, "Chegou rápido e bem embalado"),
    (None, "Produto bom, superou minhas expectativas"),
    (None, "Great product, recommend it"),
    (None, "Entrega antes do prazo, vendedor confiável"),
]
NEGATIVE = [
    (None, "Não recebi o produto"),
    (None, "Produto veio quebrado"),
    ("Péssimo", "Não recomendo, produto veio com defeito"),
    (None, "Não recebi o produto, quero reembolso"),
    (None, "Produto veio quebrado e com defeito"),
    (None, "Entrega atrasada, não recebi ainda"),
    (None, "Péssimo atendimento, não recomendo"),
    ("Não recomendo", "Veio errado e quebrado"),
    (None, "Nunca chegou, quero o reembolso"),
    (None, "Defeito no produto, péssimo"),
    (None, "Not received, never arrived, refund please"),
    (None, "Broken product, do not recommend"),
    (None, "produto com defeito, não funciona"),
    (None, "Ainda não recebi, entrega atrasada"),
    (None, "Veio quebrado, péssima qualidade"),
    (None, "Never arrived, not recommend"),
]
NEUTRAL = [(None, "Produto ok, razoável pelo preço"), (None, "Poderia ser melhor")]
NO_TEXT = [(None, None), ("", "   "), (None, "...!!")]


def _reviews(spark):
    rows, i = [], 0
    for score_cycle, items in (((5, 4), POSITIVE), ((1, 2), NEGATIVE), ((3,), NEUTRAL), ((5, 1), NO_TEXT)):
        for j, (title, text) in enumerate(items):
            i += 1
            rows.append(("olist", f"r{i:02d}", f"o{i:02d}", f"c{i:02d}", None, score_cycle[j % len(score_cycle)],
                         title, text, None, None))
    return spark.createDataFrame(rows, REVIEW_SCHEMA)


N_POS, N_NEG = len(POSITIVE), len(NEGATIVE)
SETTINGS = {"min_df": 1, "vocab_size": 500, "max_iter": 50, "test_fraction": 0.25, "seed": 42}


@pytest.fixture(scope="module")
def reviews(spark):
    df = _reviews(spark).cache()
    yield df
    df.unpersist()


@pytest.fixture(scope="module")
def products(reviews):
    """Order -> product: ``o01 -> p1``, ``o10 -> p0`` (the last digit), so products share reviews."""
    return reviews.select("order_id", F.concat(F.lit("p"), F.substring("order_id", 3, 1)).alias("product_id"))


@pytest.fixture(scope="module")
def stage_run(spark, cfg, reviews, products, tmp_path_factory):
    """One run of the stage on a tiny lake (training twice would double the file's time)."""
    lake = str(tmp_path_factory.mktemp("sentiment") / "lake")
    lk.overwrite(reviews, lake, "silver", "reviews")
    lk.overwrite(products, lake, "gold", "order_features")
    settings = Settings.from_config({**cfg, "paths": {**cfg["paths"], "lake": lake}, "insights": {"sentiment": SETTINGS}})
    out = S.run_sentiment(spark, settings)
    model, meta = S.load_sentiment_model(spark, lake)  # PipelineModel.load of <lake>/models/sentiment/<version>/model
    return lake, out, model, meta


def test_weak_labels_drop_score_three_and_empty_text(spark, reviews):
    got = S.weak_labels(reviews)
    assert got.columns == ["review_id", "order_id", "text_all", "label"]
    counts = {r["label"]: r["count"] for r in got.groupBy("label").count().collect()}
    assert counts == {1.0: N_POS, 0.0: N_NEG}
    first = spark.createDataFrame([
        ("r01", "o01", "ótimo produto, chegou antes do prazo", 1.0),
        ("r02", "o02", "Produto muito bom. Recomendo, chegou antes do prazo", 1.0),
        ("r19", "o19", "Não recebi o produto", 0.0),
    ], "review_id string, order_id string, text_all string, label double")
    assertDataFrameEqual(got.where(F.col("review_id").isin("r01", "r02", "r19")), first)
    excluded = [f"r{i:02d}" for i in range(N_POS + N_NEG + 1, N_POS + N_NEG + len(NEUTRAL) + len(NO_TEXT) + 1)]
    assert got.where(F.col("review_id").isin(excluded)).count() == 0


def test_split_is_deterministic_disjoint_and_partition_independent(reviews):
    rows = S.weak_labels(reviews)
    a = S.with_split(rows, 0.25, seed=42)
    b = S.with_split(rows.repartition(3, "label"), 0.25, seed=42)
    assertDataFrameEqual(a, b)
    test_ids = {r.review_id for r in a.where("is_test").select("review_id").collect()}
    train_ids = {r.review_id for r in a.where("NOT is_test").select("review_id").collect()}
    assert not test_ids & train_ids
    assert len(test_ids | train_ids) == N_POS + N_NEG
    assert 0 < len(test_ids) < N_POS + N_NEG
    other = {r.review_id for r in S.with_split(rows, 0.25, seed=7).where("is_test").collect()}
    assert other != test_ids
    with pytest.raises(ValueError, match="test_fraction"):
        S.with_split(rows, 1.0)


def test_stop_words_keep_negations(spark):
    stop = S.sentiment_stop_words()
    for word in ("nao", "não", "nunca", "not", "no", "never", "nem", "sem"):
        assert word not in stop, word
    for word in ("de", "o", "que", "the", "and", "voce"):
        assert word in stop, word
    pipeline = S.sentiment_pipeline(min_df=1)
    df = spark.createDataFrame([("r1", "Não recebi o produto"), ("r2", "I did NOT get it, never buying")],
                               "review_id string, text_all string")
    for stage in pipeline.getStages()[:4]:  # normalise, tokenise, stop words, bigrams: all plain Transformers
        df = stage.transform(df)
    expected = spark.createDataFrame([
        ("r1", ["nao", "recebi", "produto"], ["nao recebi", "recebi produto"]),
        ("r2", ["not", "get", "never", "buying"], ["not get", "get never", "never buying"]),
    ], "review_id string, words array<string>, bigrams array<string>")
    assertDataFrameEqual(df.select("review_id", "words", "bigrams"), expected)


def test_pipeline_rejects_bad_parameters():
    with pytest.raises(ValueError, match="vocab_size"):
        S.sentiment_pipeline(vocab_size=0)
    with pytest.raises(ValueError, match="features"):
        S.sentiment_pipeline(features="bert")


def test_word2vec_variant_uses_its_seed_and_fits(reviews):
    pipeline = S.sentiment_pipeline(min_df=1, seed=7, features="word2vec", vector_size=8, max_iter=10)
    w2v = pipeline.getStages()[3]
    assert isinstance(w2v, Word2Vec) and w2v.getSeed() == 7 and w2v.getInputCol() == "words"
    rows = S.weak_labels(reviews).withColumn("class_weight", F.lit(1.0))
    probs = pipeline.fit(rows).transform(rows).select(vector_to_array("probability").alias("p"))
    assert probs.where(F.abs(F.col("p")[0] + F.col("p")[1] - F.lit(1.0)) < F.lit(1e-9)).count() == N_POS + N_NEG


def test_class_weights_balance_only_when_imbalanced():
    assert S.class_weights(30, 10) == pytest.approx((40 / 60, 40 / 20))
    assert S.class_weights(12, 10) == (1.0, 1.0)
    assert S.class_weights(30, 10, enabled=False) == (1.0, 1.0)
    with pytest.raises(ValueError, match="both classes"):
        S.class_weights(5, 0)


def test_held_out_metrics_and_predictions(stage_run, reviews):
    _, out, model, _ = stage_run
    metrics = out["metrics"]
    split = S.with_split(S.weak_labels(reviews), 0.25, seed=42).cache()
    held_out = split.where("is_test")
    counts = {(r.is_test, r.label): r["count"] for r in split.groupBy("is_test", "label").count().collect()}
    assert {k: metrics[k] for k in ("n_train_positive", "n_train_negative", "n_test_positive", "n_test_negative")} == {
        "n_train_positive": counts[(False, 1.0)], "n_train_negative": counts[(False, 0.0)],
        "n_test_positive": counts[(True, 1.0)], "n_test_negative": counts[(True, 0.0)]}
    assert metrics["n_train"] + metrics["n_test"] == N_POS + N_NEG
    for name in ("accuracy", "roc_auc", "pr_auc", "f1_positive", "f1_negative"):
        assert metrics[name] == pytest.approx(1.0), name
    predicted = model.transform(held_out).select("review_id", F.col("prediction").alias("label"))
    assertDataFrameEqual(predicted, held_out.select("review_id", "label"))


def test_score_reviews_labels_clear_cases(spark, stage_run):
    model = stage_run[2]
    new = spark.createDataFrame([
        ("olist", "n1", "x1", None, None, 5, None, "Ótimo produto, recomendo, chegou antes do prazo", None, None),
        ("olist", "n2", "x2", None, None, 1, "Péssimo", "Não recebi o produto, veio quebrado", None, None),
        ("amazon", "n3", None, None, "p9", 2, None, "Never arrived, not recommend", None, None),
        ("olist", "n4", "x4", None, None, 4, None, None, None, None),
    ], REVIEW_SCHEMA)
    got = S.score_reviews(model, new)
    assert got.columns == ["review_id", "order_id", "product_id", "review_score", "sentiment", "sentiment_label"]
    rows = {r.review_id: r for r in got.collect()}
    assert set(rows) == {"n1", "n2", "n3"}
    assert rows["n1"].sentiment > 0.6 and rows["n1"].sentiment_label == "positive"
    assert rows["n2"].sentiment < 0.4 and rows["n2"].sentiment_label == "negative"
    assert rows["n3"].sentiment_label == "negative" and rows["n3"].product_id == "p9"


def test_product_sentiment_against_hand_computed_values(spark):
    scored = spark.createDataFrame([
        ("a", "o1", None, 5, 0.9, "positive"),
        ("b", "o2", None, 1, 0.1, "negative"),
        ("c", "o3", None, 3, 0.5, "neutral"),
        ("d", None, "p3", 2, 0.2, "negative"),  # no order: counts for its own product
        ("e", "o9", None, 4, 0.8, "positive"),  # order without lines: no product
    ], "review_id string, order_id string, product_id string, review_score int, sentiment double, "
       "sentiment_label string")
    lines = spark.createDataFrame([
        ("o1", "p1"), ("o1", "p1"), ("o1", "p2"),  # two lines of p1 count the review once
        ("o2", "p1"), ("o3", "p2"), ("o4", "p3"),
    ], "order_id string, product_id string")
    expected = spark.createDataFrame([
        # p1: reviews a (0.9, +), b (0.1, -); p2: a (0.9, +), c (0.5, ~); p3: d (0.2, -)
        ("p1", 2, 0.5, 0.5, 0.5, 3.0),
        ("p2", 2, 0.7, 0.0, 0.5, 4.0),
        ("p3", 1, 0.2, 1.0, 0.0, 2.0),
    ], "product_id string, n_reviews_with_text long, mean_sentiment double, share_negative double, "
       "share_positive double, mean_review_score double")
    assertDataFrameEqual(S.product_sentiment(scored, lines), expected, rtol=1e-9)


def test_run_sentiment_writes_tables_and_a_loadable_model(spark, stage_run, reviews, products):
    lake, out, model, meta = stage_run
    assert "skipped" not in out
    assert isinstance(model, PipelineModel) and meta["version"] == out["version"]
    assert meta["metrics"]["n_test"] == out["metrics"]["n_test"]
    assert out["reviews_scored"] == N_POS + N_NEG + len(NEUTRAL)  # score 3 is scored, empty text is not
    review_table = lk.read(spark, lake, "gold", "review_sentiment")
    rescored = S.score_reviews(model, reviews).withColumn("model_version", F.lit(out["version"]))
    assertDataFrameEqual(review_table, rescored, rtol=1e-9)
    per_product = lk.read(spark, lake, "gold", "product_sentiment")
    expected_products = (review_table.drop("product_id").join(products.distinct(), "order_id").groupBy("product_id")
                         .agg(F.count(F.lit(1)).alias("n_reviews_with_text")))
    assertDataFrameEqual(per_product.select("product_id", "n_reviews_with_text"), expected_products)
    metrics = lk.read(spark, lake, "gold", "sentiment_metrics").select("model_version", "n_train", "n_test").collect()
    assert [tuple(r) for r in metrics] == [(out["version"], out["metrics"]["n_train"], out["metrics"]["n_test"])]


def test_run_sentiment_skips_without_reviews_or_text(spark, cfg, lake):
    settings = Settings.from_config({**cfg, "paths": {**cfg["paths"], "lake": lake}})
    assert "silver/reviews" in S.run_sentiment(spark, settings)["skipped"]
    no_text = spark.createDataFrame([("olist", "r1", "o1", None, None, 5, None, None, None, None)], REVIEW_SCHEMA)
    lk.overwrite(no_text, lake, "silver", "reviews")
    assert "no training review has text" in S.run_sentiment(spark, settings)["skipped"]
