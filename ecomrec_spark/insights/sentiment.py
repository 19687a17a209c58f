"""Sentiment of review text with MLlib: review scores as weak labels, TF-IDF and logistic regression.

The model reads the review's title and text (Portuguese for Olist, English for
Amazon) and predicts P(positive).  It needs no hand-labelled data: a review
scored 4 or 5 is a positive example, 1 or 2 a negative one, and 3 is left out
of training (it is still scored).

Pipeline (:func:`sentiment_pipeline`), each stage a plain MLlib stage, so the
fitted ``PipelineModel`` saves and loads in Spark ML's own format:

===================  ============================  ===================================================
stage                columns                       what it does
===================  ============================  ===================================================
SQLTransformer       ``text_all -> text_norm``     lower-case, accents stripped with ``translate``
RegexTokenizer       ``text_norm -> tokens``       split on anything but a letter (``\\p{L}``), 2+ letters
StopWordsRemover     ``tokens -> words``           Spark's Portuguese + English lists, negations kept
NGram(2)             ``words -> bigrams``          "nao recomendo", "chegou antes", ...
SQLTransformer       ``words, bigrams -> terms``   unigrams and bigrams together
CountVectorizer      ``terms -> tf``               ``vocab_size`` terms seen in at least ``min_df`` reviews
IDF                  ``tf -> features``
LogisticRegression   ``features -> probability``   binomial, L2 ``reg_param``, ``class_weight`` column
===================  ============================  ===================================================

(``features="word2vec"`` swaps the n-grams and TF-IDF for a seeded Word2Vec
average of the words.)  Negations (``não``, ``nunca``, ``not``, ``never``, ...)
are removed from the stop list: "recomendo" and "não recomendo" must not look
alike.

Held-out reviews are chosen by a seeded hash of ``review_id``, so the split is
the same whatever the partitioning, and a review repeated across orders never
sits on both sides.

Outputs of :func:`run_sentiment`:

- ``<lake>/models/sentiment/<version>/model/`` (PipelineModel), ``metadata.json``
  (parameters, metrics, counts), ``SHA256SUMS`` and ``<lake>/models/sentiment/latest``
  (the layout and checked load of :mod:`ecomrec_spark.model_store`);
- ``gold/review_sentiment``: one row per review with text: ``review_id, order_id,
  product_id, review_score, sentiment`` (P(positive)), ``sentiment_label``
  (positive >= 0.6, negative <= 0.4, else neutral), ``model_version``;
- ``gold/product_sentiment``: one row per product: ``n_reviews_with_text,
  mean_sentiment, share_negative, share_positive, mean_review_score, model_version``;
- ``gold/sentiment_metrics``: one row appended per run (held-out accuracy,
  ROC-AUC, PR-AUC, F1 per class, counts).

Example
-------
>>> model, metrics = train_sentiment(spark.read.format("delta").load(f"{lake}/silver/reviews"))  # doctest: +SKIP
>>> metrics["roc_auc"]                                                                          # doctest: +SKIP
0.97
>>> score_reviews(model, reviews).groupBy("sentiment_label").count().show()                     # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import (
    IDF,
    CountVectorizer,
    CountVectorizerModel,
    NGram,
    RegexTokenizer,
    SQLTransformer,
    StopWordsRemover,
    Word2Vec,
)
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from ecomrec_spark import columns as C
from ecomrec_spark import lake as lk
from ecomrec_spark import model_store

if TYPE_CHECKING:
    from ecomrec_spark.settings import Settings

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- names

TITLE = "title"
TEXT = "text"
TEXT_ALL = "text_all"  # title and text of a review, the pipeline's input
TEXT_NORM = "text_norm"
TOKENS = "tokens"
WORDS = "words"
BIGRAMS = "bigrams"
TERMS = "terms"
TF = "tf"
FEATURES = "features"
LABEL = "label"  # 1.0 positive (score >= 4), 0.0 negative (score <= 2)
WEIGHT = "class_weight"
IS_TEST = "is_test"
PROBABILITY = "probability"
SENTIMENT = "sentiment"  # P(positive)
SENTIMENT_LABEL = "sentiment_label"
MODEL_VERSION = "model_version"
POSITIVE, NEGATIVE, NEUTRAL = "positive", "negative", "neutral"

REVIEW_SENTIMENT = "review_sentiment"
PRODUCT_SENTIMENT = "product_sentiment"
SENTIMENT_METRICS = "sentiment_metrics"
MODEL_DIR = model_store.SENTIMENT
MODEL_SUBDIR = "model"

# ---------------------------------------------------------------- text rules

POSITIVE_MIN_SCORE = 4
NEGATIVE_MAX_SCORE = 2
TOKEN_PATTERN = r"[^\p{L}]+"  # gaps: anything that is not a letter in any script
MIN_TOKEN_LENGTH = 2
# Lower-case accented letters and their plain forms, position by position (Portuguese, Spanish, French).
ACCENTED = "áàâãäåéèêëíìîïóòôõöúùûüçñý"
PLAIN = "aaaaaaeeeeiiiiooooouuuucny"
# Words that carry sentiment although the default lists call them stop words ("no" is also Portuguese
# "em + o"; keeping it costs a little noise).  "don" is what the tokenizer leaves of "don't".
KEEP_WORDS = ("não", "nao", "nunca", "nem", "jamais", "sem", "not", "no", "nor", "never", "don", "cannot")
STOP_WORD_LANGUAGES = ("portuguese", "english")
FEATURE_KINDS = ("tfidf", "word2vec")
SPLIT_BUCKETS = 1_000_000

_ACCENT_TABLE = str.maketrans(ACCENTED, PLAIN)


class NotEnoughTextError(ValueError):
    """The reviews cannot train a sentiment model (no text, or only one side of the weak labels)."""


# ---------------------------------------------------------------- the pipeline

def strip_accents(word: str) -> str:
    """The driver-side twin of the pipeline's ``translate``: ``"não" -> "nao"`` (lower-case input)."""
    return word.translate(_ACCENT_TABLE)


def sentiment_stop_words(languages: tuple[str, ...] = STOP_WORD_LANGUAGES,
                         keep: tuple[str, ...] = KEEP_WORDS) -> list[str]:
    """Spark's default stop words of ``languages``, accents stripped, minus the words in ``keep``.

    Needs a running SparkContext (the lists live in the MLlib jar).

    Examples
    --------
    >>> "nao" in sentiment_stop_words(), "de" in sentiment_stop_words()  # doctest: +SKIP
    (False, True)
    """
    words: set[str] = set()
    for language in languages:
        words.update(strip_accents(w.lower()) for w in StopWordsRemover.loadDefaultStopWords(language))
    return sorted(words - {strip_accents(w) for w in keep})


TERMS_SQL = f"SELECT *, concat({WORDS}, {BIGRAMS}) AS {TERMS} FROM __THIS__"


def normalise_sql(input_col: str = TEXT_ALL) -> str:
    """The pipeline's first stage: lower case, accents folded (SQL, so it runs in the JVM)."""
    return f"SELECT *, translate(lower(`{input_col}`), '{ACCENTED}', '{PLAIN}') AS {TEXT_NORM} FROM __THIS__"


def sentiment_pipeline(vocab_size: int = 5000, min_df: float = 2, reg_param: float = 0.01, seed: int = 42, *,
                       max_iter: int = 100, features: str = "tfidf", ngrams: bool = True, vector_size: int = 100,
                       input_col: str = TEXT_ALL, label_col: str = LABEL, weight_col: str | None = WEIGHT) -> Pipeline:
    """Text -> tokens -> words (stop words out, negations kept) -> TF-IDF (or Word2Vec) -> LogisticRegression.

    Parameters
    ----------
    vocab_size : int
        Most frequent terms (unigrams and, with ``ngrams``, bigrams) kept by CountVectorizer.
    min_df : float
        A term must occur in at least this many training reviews (a fraction when below 1).
        With ``features="word2vec"`` it is Word2Vec's ``minCount`` (rounded up).
    reg_param : float
        L2 penalty of the logistic regression.
    seed : int
        Seed of the stages that draw random numbers (Word2Vec); TF-IDF and the
        logistic regression are deterministic.
    max_iter : int
        Iterations of the logistic regression (L-BFGS).
    features : {"tfidf", "word2vec"}
        TF-IDF over unigrams (+ bigrams), or the mean Word2Vec vector of the words.
    ngrams : bool
        Add word bigrams to the TF-IDF terms ("nao recomendo").
    vector_size : int
        Word2Vec dimension.
    input_col, label_col : str
        The review text and the 0/1 label.
    weight_col : str or None
        Row weight column used when fitting (class weights); None fits unweighted.

    Returns
    -------
    Pipeline
        Unfitted; ``fit`` needs ``input_col``, ``label_col`` (and ``weight_col``).

    Examples
    --------
    >>> model = sentiment_pipeline(vocab_size=2000, min_df=2).fit(train)  # doctest: +SKIP
    """
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 1:
        raise ValueError(f"vocab_size must be a positive integer, got {vocab_size!r}")
    if isinstance(min_df, bool) or not isinstance(min_df, (int, float)) or min_df <= 0:
        raise ValueError(f"min_df must be a positive number (a count, or a fraction below 1), got {min_df!r}")
    if isinstance(reg_param, bool) or not isinstance(reg_param, (int, float)) or reg_param < 0:
        raise ValueError(f"reg_param must be a number >= 0, got {reg_param!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
    if features not in FEATURE_KINDS:
        raise ValueError(f"features must be one of {FEATURE_KINDS}, got {features!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an integer, got {seed!r}")

    normalise = SQLTransformer(statement=normalise_sql(input_col))
    tokenizer = RegexTokenizer(inputCol=TEXT_NORM, outputCol=TOKENS, pattern=TOKEN_PATTERN, gaps=True,
                               minTokenLength=MIN_TOKEN_LENGTH, toLowercase=False)
    stop = StopWordsRemover(inputCol=TOKENS, outputCol=WORDS, stopWords=sentiment_stop_words(), caseSensitive=True)
    stages: list[Any] = [normalise, tokenizer, stop]
    if features == "tfidf":
        if ngrams:
            stages += [NGram(n=2, inputCol=WORDS, outputCol=BIGRAMS),
                       SQLTransformer(statement=TERMS_SQL)]
        stages += [CountVectorizer(inputCol=TERMS if ngrams else WORDS, outputCol=TF, vocabSize=vocab_size,
                                   minDF=float(min_df)),
                   IDF(inputCol=TF, outputCol=FEATURES)]
    else:
        stages.append(Word2Vec(inputCol=WORDS, outputCol=FEATURES, vectorSize=vector_size,
                               minCount=max(1, math.ceil(min_df)), seed=seed))
    lr = LogisticRegression(featuresCol=FEATURES, labelCol=label_col, family="binomial", regParam=float(reg_param),
                            elasticNetParam=0.0, maxIter=max_iter, probabilityCol=PROBABILITY)
    if weight_col:
        lr.setWeightCol(weight_col)
    stages.append(lr)
    return Pipeline(stages=stages)


# ---------------------------------------------------------------- rows

def review_text(col_title: str = TITLE, col_text: str = TEXT) -> Column:
    """Title and text joined by ``". "``, trimmed; null when the result has no letter at all."""
    def part(c: str) -> Column:
        t = F.trim(F.col(c).cast("string"))
        return F.when(t != F.lit(""), t)

    joined = F.concat_ws(". ", part(col_title), part(col_text))
    return F.when(joined.rlike(r"\p{L}"), joined)


def _require(df: DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; it has {df.columns}")


def weak_labels(reviews: DataFrame, col_score: str = C.REVIEW_SCORE, col_title: str = TITLE,
                col_text: str = TEXT) -> DataFrame:
    """Training rows: ``review_id, order_id, text_all, label`` for reviews with text and a score other than 3.

    ``label`` is 1.0 for a score of 4 or 5 and 0.0 for 1 or 2; a review whose title
    and text hold no letter, or whose score is 3 or null, is left out.

    Examples
    --------
    >>> rows = weak_labels(spark.read.format("delta").load(f"{lake}/silver/reviews"))  # doctest: +SKIP
    >>> rows.groupBy("label").count().show()                                          # doctest: +SKIP
    """
    _require(reviews, [C.REVIEW_ID, C.ORDER_ID, col_score, col_title, col_text], "reviews")
    score = F.col(col_score)
    label = (F.when(score >= F.lit(POSITIVE_MIN_SCORE), F.lit(1.0))
             .when(score <= F.lit(NEGATIVE_MAX_SCORE), F.lit(0.0)))
    return (reviews.select(C.REVIEW_ID, C.ORDER_ID, review_text(col_title, col_text).alias(TEXT_ALL),
                           label.cast("double").alias(LABEL))
            .where(F.col(TEXT_ALL).isNotNull() & F.col(LABEL).isNotNull()))


def with_split(rows: DataFrame, test_fraction: float = 0.2, seed: int = 42) -> DataFrame:
    """Add ``is_test``: a seeded hash of ``review_id`` below ``test_fraction``.

    The flag depends only on the review id and the seed, never on partitioning
    or row order, so a re-run holds out the same reviews.
    """
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    bucket = F.pmod(F.xxhash64(F.lit(seed).cast("long"), F.col(C.REVIEW_ID).cast("string")), F.lit(SPLIT_BUCKETS))
    return rows.withColumn(IS_TEST, (bucket.cast("double") / F.lit(float(SPLIT_BUCKETS))) < F.lit(float(test_fraction)))


def class_weights(n_positive: int, n_negative: int, enabled: bool | None = None,
                  imbalance: float = 1.5) -> tuple[float, float]:
    """``(w_positive, w_negative)``: ``n / (2 n_k)`` when ``enabled``, or when ``None`` and one class
    outnumbers the other by more than ``imbalance`` times; ``(1.0, 1.0)`` otherwise."""
    if n_positive <= 0 or n_negative <= 0:
        raise ValueError(f"class weights need both classes, got {n_positive} positive and {n_negative} negative")
    if enabled is None:
        enabled = max(n_positive, n_negative) > imbalance * min(n_positive, n_negative)
    if not enabled:
        return 1.0, 1.0
    n = n_positive + n_negative
    return n / (2.0 * n_positive), n / (2.0 * n_negative)


# ---------------------------------------------------------------- training and evaluation

def _f1(tp: int, fp: int, fn: int) -> float:
    return 2.0 * tp / (2.0 * tp + fp + fn) if tp else 0.0


def evaluate_sentiment(model: PipelineModel, test: DataFrame) -> dict[str, float | None]:
    """Held-out ``accuracy, roc_auc, pr_auc, f1_positive, f1_negative``.

    Accuracy and the F1 of each class come from one aggregate of the confusion
    counts; ROC-AUC and PR-AUC from MLlib's ``BinaryClassificationEvaluator``
    (None when the held-out rows hold only one class).
    """
    pred = model.transform(test).select(LABEL, "rawPrediction", "prediction").persist()
    try:
        cells = {(float(r[LABEL]), float(r["prediction"])): int(r["n"]) for r in
                 pred.groupBy(LABEL, "prediction").agg(F.count(F.lit(1)).alias("n")).collect()}
        tp, fn = cells.get((1.0, 1.0), 0), cells.get((1.0, 0.0), 0)
        tn, fp = cells.get((0.0, 0.0), 0), cells.get((0.0, 1.0), 0)
        n = tp + fn + tn + fp
        out: dict[str, float | None] = {
            "accuracy": (tp + tn) / n if n else None,
            "f1_positive": _f1(tp, fp, fn) if n else None,
            "f1_negative": _f1(tn, fn, fp) if n else None,
            "roc_auc": None, "pr_auc": None,
        }
        if tp + fn and tn + fp:
            bc = BinaryClassificationEvaluator(labelCol=LABEL, rawPredictionCol="rawPrediction")
            out["roc_auc"] = bc.evaluate(pred, {bc.metricName: "areaUnderROC"})
            out["pr_auc"] = bc.evaluate(pred, {bc.metricName: "areaUnderPR"})
        else:
            log.warning("held-out reviews hold only one class (%d positive, %d negative); ROC-AUC and PR-AUC are "
                        "undefined", tp + fn, tn + fp)
    finally:
        pred.unpersist()
    return out


def train_sentiment(reviews: DataFrame, test_fraction: float = 0.2, seed: int = 42, *,
                    pipeline: Pipeline | None = None, class_weights_enabled: bool | None = None
                    ) -> tuple[PipelineModel, dict[str, Any]]:
    """Fit the sentiment pipeline on weak labels and measure it on held-out reviews.

    Parameters
    ----------
    reviews : DataFrame
        Silver reviews (``review_id, order_id, review_score, title, text``).
    test_fraction : float
        Share of review ids held out (by a seeded hash, see :func:`with_split`).
    seed : int
        Seed of the split (and of the default pipeline).
    pipeline : Pipeline, optional
        Default :func:`sentiment_pipeline` with ``seed``; it must read
        ``text_all``, ``label`` and ``class_weight``.
    class_weights_enabled : bool, optional
        Balance the classes with ``n / (2 n_k)``; None decides from the counts
        (:func:`class_weights`).

    Returns
    -------
    (PipelineModel, dict)
        The fitted model and ``n_train, n_test, n_train_positive, n_train_negative,
        n_test_positive, n_test_negative, class_weights, weight_positive,
        weight_negative, accuracy, roc_auc, pr_auc, f1_positive, f1_negative,
        vocabulary_size, test_fraction, seed``.

    Raises
    ------
    NotEnoughTextError
        No training review with text, or only positive or only negative ones.
    """
    rows = with_split(weak_labels(reviews), test_fraction, seed)  # validates before any Spark action
    pipeline = pipeline or sentiment_pipeline(seed=seed)
    rows = rows.persist()
    try:
        counts = {(bool(r[IS_TEST]), float(r[LABEL])): int(r["n"])
                  for r in rows.groupBy(IS_TEST, LABEL).agg(F.count(F.lit(1)).alias("n")).collect()}
        n_pos, n_neg = counts.get((False, 1.0), 0), counts.get((False, 0.0), 0)
        t_pos, t_neg = counts.get((True, 1.0), 0), counts.get((True, 0.0), 0)
        if n_pos + n_neg == 0:
            raise NotEnoughTextError("no training review has text and a score other than 3 "
                                     f"({t_pos + t_neg} held out); nothing to learn sentiment from")
        if n_pos == 0 or n_neg == 0:
            side = "negative" if n_pos == 0 else "positive"
            raise NotEnoughTextError(f"the training reviews with text are all {side} ({n_pos} positive, "
                                     f"{n_neg} negative); a classifier needs both")
        w_pos, w_neg = class_weights(n_pos, n_neg, class_weights_enabled)
        train = rows.where(~F.col(IS_TEST)).withColumn(
            WEIGHT, F.when(F.col(LABEL) == F.lit(1.0), F.lit(w_pos)).otherwise(F.lit(w_neg)))
        log.info("training sentiment on %d reviews (%d positive, %d negative; weights %.3f/%.3f), %d held out",
                 n_pos + n_neg, n_pos, n_neg, w_pos, w_neg, t_pos + t_neg)
        model = pipeline.fit(train)
        if not t_pos + t_neg:
            log.warning("no held-out review (test_fraction %s); metrics are undefined", test_fraction)
        scores = evaluate_sentiment(model, rows.where(F.col(IS_TEST)))
    finally:
        rows.unpersist()
    vocab = [s for s in model.stages if isinstance(s, CountVectorizerModel)]
    metrics: dict[str, Any] = {
        "n_train": n_pos + n_neg, "n_test": t_pos + t_neg, "n_train_positive": n_pos, "n_train_negative": n_neg,
        "n_test_positive": t_pos, "n_test_negative": t_neg, "class_weights": (w_pos, w_neg) != (1.0, 1.0),
        "weight_positive": w_pos, "weight_negative": w_neg, **scores,
        "vocabulary_size": len(vocab[0].vocabulary) if vocab else None,
        "test_fraction": float(test_fraction), "seed": seed,
    }
    log.info("sentiment held-out metrics: %s", {k: metrics[k] for k in ("accuracy", "roc_auc", "pr_auc",
                                                                         "f1_positive", "f1_negative")})
    return model, metrics


# ---------------------------------------------------------------- scoring

def score_reviews(model: PipelineModel, reviews: DataFrame, positive_at: float = 0.6, negative_at: float = 0.4,
                  col_score: str = C.REVIEW_SCORE, col_title: str = TITLE, col_text: str = TEXT) -> DataFrame:
    """Per review with text: ``review_id, order_id, product_id, review_score, sentiment, sentiment_label``.

    ``sentiment`` is P(positive); the label is ``positive`` at ``>= positive_at``,
    ``negative`` at ``<= negative_at`` and ``neutral`` in between.  Reviews
    without a letter of text are not scored.  ``product_id`` is null when the
    source keys reviews by order (Olist).
    """
    if not 0.0 <= negative_at <= positive_at <= 1.0:
        raise ValueError(f"need 0 <= negative_at <= positive_at <= 1, got negative_at={negative_at}, "
                         f"positive_at={positive_at}")
    _require(reviews, [C.REVIEW_ID, C.ORDER_ID, col_score, col_title, col_text], "reviews")
    product = F.col(C.PRODUCT_ID) if C.PRODUCT_ID in reviews.columns else F.lit(None).cast("string")
    rows = (reviews.select(C.REVIEW_ID, C.ORDER_ID, product.alias(C.PRODUCT_ID),
                           F.col(col_score).alias(C.REVIEW_SCORE), review_text(col_title, col_text).alias(TEXT_ALL))
            .where(F.col(TEXT_ALL).isNotNull()))
    p = vector_to_array(F.col(PROBABILITY)).getItem(1)
    s = F.col(SENTIMENT)
    label = (F.when(s >= F.lit(positive_at), F.lit(POSITIVE)).when(s <= F.lit(negative_at), F.lit(NEGATIVE))
             .otherwise(F.lit(NEUTRAL)))
    return (model.transform(rows).withColumn(SENTIMENT, p)
            .select(C.REVIEW_ID, C.ORDER_ID, C.PRODUCT_ID, C.REVIEW_SCORE, SENTIMENT, label.alias(SENTIMENT_LABEL)))


def product_sentiment(scored: DataFrame, lines: DataFrame) -> DataFrame:
    """Per product: ``product_id, n_reviews_with_text, mean_sentiment, share_negative, share_positive,
    mean_review_score``.

    A review reaches every distinct product of its order through ``lines``
    (gold ``order_features`` or silver ``order_lines``); a review without an
    order (Amazon) counts for its own ``product_id``.
    """
    _require(scored, [C.ORDER_ID, C.PRODUCT_ID, C.REVIEW_SCORE, SENTIMENT, SENTIMENT_LABEL], "scored reviews")
    _require(lines, [C.ORDER_ID, C.PRODUCT_ID], "order lines")
    cols = [C.PRODUCT_ID, C.REVIEW_SCORE, SENTIMENT, SENTIMENT_LABEL]
    order_products = (lines.select(C.ORDER_ID, C.PRODUCT_ID)
                      .where(F.col(C.ORDER_ID).isNotNull() & F.col(C.PRODUCT_ID).isNotNull()).distinct())
    via_order = scored.where(F.col(C.ORDER_ID).isNotNull()).drop(C.PRODUCT_ID).join(order_products, C.ORDER_ID)
    direct = scored.where(F.col(C.ORDER_ID).isNull() & F.col(C.PRODUCT_ID).isNotNull())

    def share(label: str) -> Column:
        return F.avg(F.when(F.col(SENTIMENT_LABEL) == F.lit(label), F.lit(1.0)).otherwise(F.lit(0.0)))

    return (via_order.select(*cols).unionByName(direct.select(*cols))
            .groupBy(C.PRODUCT_ID)
            .agg(F.count(F.lit(1)).alias("n_reviews_with_text"), F.avg(SENTIMENT).alias("mean_sentiment"),
                 share(NEGATIVE).alias("share_negative"), share(POSITIVE).alias("share_positive"),
                 F.avg(C.REVIEW_SCORE).alias("mean_review_score")))


# ---------------------------------------------------------------- model folder

def save_sentiment_model(spark: SparkSession, lake: str, version: str, model: PipelineModel,
                         metadata: Mapping[str, Any]) -> str:
    """Save the PipelineModel, ``metadata.json`` and the manifest, then move ``latest``; the version folder."""
    return model_store.save_models(spark, lake, version, {MODEL_SUBDIR: model}, metadata, model_dir=MODEL_DIR)


def load_sentiment_model(spark: SparkSession, lake: str, version: str | None = None
                         ) -> tuple[PipelineModel, dict[str, Any]]:
    """``(PipelineModel, metadata)`` of ``version`` (default: ``latest``), through the checked load.

    The saved SQL must be a statement :func:`sentiment_pipeline` builds (the stage runs it).
    """
    models, meta = model_store.load_models(spark, lake, version=version, model_dir=MODEL_DIR,
                                       sql_statements=(normalise_sql(), TERMS_SQL))
    return models[MODEL_SUBDIR], meta


# ---------------------------------------------------------------- the stage

METRICS_SCHEMA = ("model_version string, trained_at timestamp, n_train long, n_test long, n_train_positive long, "
                  "n_train_negative long, n_test_positive long, n_test_negative long, class_weights boolean, "
                  "accuracy double, roc_auc double, pr_auc double, f1_positive double, f1_negative double, "
                  "vocabulary_size int, params string")


def _order_lines(spark: SparkSession, root: str) -> DataFrame:
    for layer, table in (("gold", "order_features"), ("silver", "order_lines")):
        df = lk.read_optional(spark, root, layer, table)
        if df is not None:
            return df.select(C.ORDER_ID, C.PRODUCT_ID)
    log.warning("no gold/order_features or silver/order_lines; products come only from reviews that name one")
    return spark.createDataFrame([], f"{C.ORDER_ID} string, {C.PRODUCT_ID} string")


def run_sentiment(spark: SparkSession, settings: Settings) -> dict[str, Any]:
    """Train on silver reviews, save the model, write the gold sentiment tables; a small summary.

    Returns ``{"skipped": reason}`` when the lake has no reviews or no usable
    review text.  Settings come from ``settings.insights.sentiment``
    (:class:`ecomrec_spark.settings.Sentiment`, defaults included) and ``settings.paths.lake``.
    """
    s = settings.insights.sentiment
    params = s.model_dump()  # every key with its default: the model's metadata, version hash and metrics row
    root = settings.paths.lake
    pipeline = sentiment_pipeline(s.vocab_size, s.min_df, s.reg_param, s.seed, max_iter=s.max_iter,
                                  features=s.features, ngrams=s.ngrams,
                                  vector_size=s.vector_size)  # validates before Spark work
    reviews = lk.read_optional(spark, root, "silver", "reviews")
    if reviews is None:
        why = "no silver/reviews table (the configured sources have no reviews)"
        log.warning("sentiment skipped: %s", why)
        return {"skipped": why}
    try:
        model, metrics = train_sentiment(reviews, s.test_fraction, s.seed, pipeline=pipeline,
                                         class_weights_enabled=s.class_weights)
    except NotEnoughTextError as err:
        log.warning("sentiment skipped: %s", err)
        return {"skipped": str(err)}

    trained_at = dt.datetime.now(dt.UTC)
    version = model_store.new_version({"settings": params, "n_train": metrics["n_train"], "n_test": metrics["n_test"]},
                                  trained_at)
    metadata = {"settings": params, "metrics": metrics, "stop_words_kept": list(KEEP_WORDS),
                "code_version": model_store.code_version(), "trained_at": trained_at.isoformat()}
    folder = save_sentiment_model(spark, root, version, model, metadata)

    scored = score_reviews(model, reviews, s.positive_at, s.negative_at)
    tables = {REVIEW_SENTIMENT: lk.overwrite(scored.withColumn(MODEL_VERSION, F.lit(version)), root, "gold",
                                             REVIEW_SENTIMENT)}
    written = lk.read(spark, root, "gold", REVIEW_SENTIMENT)  # score once; aggregate the stored rows
    tables[PRODUCT_SENTIMENT] = lk.overwrite(
        product_sentiment(written, _order_lines(spark, root)).withColumn(MODEL_VERSION, F.lit(version)),
        root, "gold", PRODUCT_SENTIMENT)
    row = (version, trained_at.replace(tzinfo=None), *(metrics[k] for k in (
        "n_train", "n_test", "n_train_positive", "n_train_negative", "n_test_positive", "n_test_negative",
        "class_weights", "accuracy", "roc_auc", "pr_auc", "f1_positive", "f1_negative", "vocabulary_size")),
        json.dumps(params, sort_keys=True))
    tables[SENTIMENT_METRICS] = lk.append(spark.createDataFrame([row], METRICS_SCHEMA), root, "gold",
                                          SENTIMENT_METRICS)

    by_label = {r[SENTIMENT_LABEL]: int(r["n"]) for r in
                written.groupBy(SENTIMENT_LABEL).agg(F.count(F.lit(1)).alias("n")).collect()}
    n_products = lk.read(spark, root, "gold", PRODUCT_SENTIMENT).count()
    log.info("sentiment %s: %d reviews scored %s, %d products", version, sum(by_label.values()), by_label, n_products)
    return {"version": version, "model_path": folder, "metrics": metrics, "tables": tables,
            "reviews_scored": sum(by_label.values()), "by_label": by_label, "products": n_products}
