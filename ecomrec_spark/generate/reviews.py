"""Review scores from a known probability model, the reviews file and its truth table.

The score of an order follows an ordered-logit model: a latent satisfaction

    eta = 2.05 + 0.03 * min(days early, 20)
          - [late] * (0.3 + [days late > 3] * (2.2 * sensitivity(category) + 0.05 * min(days late, 30)))
          - [time-sensitive category] * [delivered more than 10 days after purchase] * 2.4
          - [total price < 60] * 3.0 * max(freight/price - 0.35, 0)
          + 0.25 * seller quality + category effect - 0.25 * customer grumpiness

Gift, toy and electronics buyers ("time-sensitive", about 28% of lines) wait
badly: lateness costs them more (sensitivity 1.6, others 0.6) and a delivery
slower than 10 days costs them a lot even when it is on time.  That, the
lateness threshold and the freight penalty that only cheap orders feel are
interactions and steps that a model linear in the features cannot express, so
a tree model has room to beat logistic regression (the planted-data test checks
that it does).

for delivered orders (-1.0 shipped, -2.0 canceled, -1.5 invoiced/processing),
and ``P(score <= m) = sigmoid(theta_m - eta)`` with fixed thresholds.  The
per-order probabilities ``p1..p5`` are written to ``_truth/review_probs``; the
drawn score is ``1 + #{m : u >= P(score <= m)}`` for a hashed uniform ``u``, so
``mean(max_k p_k)`` is the Bayes-optimal accuracy of any score classifier.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ecomrec_spark.generate.calendar import DAY, fmt_midnight, fmt_ts, idiv
from ecomrec_spark.generate.hashing import at, bits_uniform, hash64, hex_id, lit_array, randint, sigmoid, uniform
from ecomrec_spark.generate.plan import Plan
from ecomrec_spark.generate.tables import CATEGORIES, REVIEW_PHRASES, REVIEW_TITLES
from ecomrec_spark.generate.writer import csv_line, csv_text, maybe_quoted

THRESHOLDS = (-0.62, -0.26, 0.39, 1.475)
ETA_BASE = 2.05
ETA_UNDELIVERED = (None, -1.0, -2.0, -1.5, -1.5)  # by status index: shipped, canceled, invoiced, processing
DUPLICATE_REVIEW_SHARE = 0.03  # of returning customers' reviewed orders: reuse the first order's review_id
MESSAGE_SHARE = 0.40
TITLE_SHARE = 0.12
SEPARATORS = (", ", ". ", "\r\n", "\r\n", " ")
LATE_GRACE_DAYS = 3  # up to this many days late costs little
TIME_SENSITIVE = frozenset({"watches_gifts", "toys", "telephony", "electronics", "consoles_games", "baby",
                            "cool_stuff"})
LATE_SENSITIVITY = (0.6, 1.6)  # others, TIME_SENSITIVE
SLOW_DELIVERY_DAYS = 10  # time-sensitive buyers mind a delivery slower than this, late or not
CHEAP_ORDER = 60.0  # BRL: below this total price the freight share hurts


def with_review_model(plan: Plan, df: DataFrame) -> DataFrame:
    """Add ``eta, p1..p5, score, has_review, review_dup, review_day, answer_sec`` to the order core."""
    from ecomrec_spark.generate.orders import STATUS, has_review_of, status_of

    seed = plan.seed
    o, status = F.col("o"), F.col("status")
    delay = F.col("delay_days")
    early = F.least(F.greatest(-delay, F.lit(0.0)), F.lit(20.0))
    late = F.least(F.greatest(delay, F.lit(0.0)), F.lit(30.0))
    cat = at(lit_array([c.score_effect for c in CATEGORIES], "double"), F.col("main_k"))
    sensitivity = at(lit_array([LATE_SENSITIVITY[c.en in TIME_SENSITIVE] for c in CATEGORIES], "double"),
                     F.col("main_k"))
    late_penalty = F.lit(0.3) + F.when(late > F.lit(float(LATE_GRACE_DAYS)),
                                       F.lit(2.2) * sensitivity + F.lit(0.05) * late).otherwise(F.lit(0.0))
    slow = (F.col("delivered_sec") - F.col("purchase_sec")) > F.lit(SLOW_DELIVERY_DAYS * DAY)
    cheap = F.col("total_price").cast("double") < F.lit(CHEAP_ORDER * 100)  # total_price is in cents
    eta_delivered = (F.lit(ETA_BASE) + F.lit(0.03) * early
                     - F.when(F.col("is_late"), late_penalty).otherwise(F.lit(0.0))
                     - F.when(cheap, F.lit(3.0) * F.greatest(F.col("fr_ratio") - F.lit(0.35), F.lit(0.0)))
                       .otherwise(F.lit(0.0))
                     - F.when(slow & (sensitivity > F.lit(1.0)), F.lit(2.4)).otherwise(F.lit(0.0))
                     + F.lit(0.25) * F.col("q_seller") + cat - F.lit(0.25) * F.col("grump"))
    eta = F.when(status == F.lit(STATUS["delivered"]), eta_delivered)
    for i, value in enumerate(ETA_UNDELIVERED):
        if value is not None:
            eta = eta.when(status == F.lit(i), F.lit(value))
    df = df.withColumn("eta", eta)
    cum = [sigmoid(F.lit(t) - F.col("eta")) for t in THRESHOLDS]
    df = df.withColumns({f"cum{m + 1}": cum[m] for m in range(4)})
    cums = [F.col(f"cum{m + 1}") for m in range(4)]
    u = uniform(seed, "r:score", o)
    score = F.lit(1)
    for cm in cums:
        score = score + (u >= cm).cast("int")
    has_review = has_review_of(plan, o, status)
    first = F.col("o_first")
    dup = ((~F.col("is_first")) & has_review & has_review_of(plan, first, status_of(plan, first))
           & (uniform(seed, "r:dup", o) < F.lit(DUPLICATE_REVIEW_SHARE)))
    delivered_day = idiv(F.col("delivered_sec"), DAY)
    wait = F.floor(F.lit(3.0) * F.pow(uniform(seed, "r:day", o), F.lit(2.0))).cast("long")
    review_day = F.when(status == F.lit(STATUS["delivered"]), delivered_day + F.lit(1) + wait).otherwise(
        F.col("est_day") + F.lit(1) + randint(seed, "r:day", 5, o))
    df = df.withColumns({
        "p1": cums[0], "p2": cums[1] - cums[0], "p3": cums[2] - cums[1], "p4": cums[3] - cums[2],
        "p5": F.lit(1.0) - cums[3],
        "score": score.cast("int"),
        "has_review": has_review,
        "review_dup": dup,
        "review_day": review_day,
    })
    answer = F.col("review_day") * F.lit(DAY) + F.lit(1800) + F.floor(
        F.lit(3.0 * DAY) * F.pow(uniform(seed, "r:answer", o), F.lit(2.0))).cast("long")
    return df.withColumn("answer_sec", answer)


def _pick_text(table: Sequence[Sequence[str]], band: Column, index: Column) -> Column:
    """Phrase number ``index`` (taken modulo the group size) of group ``table[band]``."""
    flat = [p for group in table for p in group]
    offsets, acc = [], 0
    for group in table:
        offsets.append(acc)
        acc += len(group)
    n = at(lit_array([len(g) for g in table], "long"), band)
    return at(lit_array(flat), at(lit_array(offsets, "long"), band) + F.pmod(index, n))


def _group_size(table: Sequence[Sequence[str]], band: Column) -> Column:
    return at(lit_array([len(g) for g in table], "long"), band)


def reviews_lines(plan: Plan, core: DataFrame) -> DataFrame:
    """olist_order_reviews_dataset.csv lines (each ends in ``\\r`` so the file has CRLF)."""
    from ecomrec_spark.generate.orders import order_id

    seed = plan.seed
    o, score = F.col("o"), F.col("score")
    band = F.when(score <= F.lit(2), F.lit(0)).when(score == F.lit(3), F.lit(1)).otherwise(F.lit(2)).cast("long")
    review_id = hex_id(seed, "review", F.when(F.col("review_dup"), F.col("o_first")).otherwise(o))
    n_phrases = F.lit(1) + randint(seed, "r:nphr", 3, o)
    seps = lit_array(SEPARATORS)

    def sep(i: int) -> Column:
        return at(seps, randint(seed, f"r:sep{i}", len(SEPARATORS), o))

    # three different phrases of the sentiment band
    n = _group_size(REVIEW_PHRASES, band)
    i1 = randint(seed, "r:ph1", n, o)
    r2 = randint(seed, "r:ph2", n - F.lit(1), o)
    r3 = randint(seed, "r:ph3", n - F.lit(2), o)
    i2 = i1 + F.lit(1) + r2
    i3 = i1 + F.lit(1) + F.pmod(r2 + F.lit(1) + r3, n - F.lit(1))
    message = F.concat_ws(
        "", _pick_text(REVIEW_PHRASES, band, i1),
        F.when(n_phrases >= F.lit(2), F.concat(sep(2), _pick_text(REVIEW_PHRASES, band, i2))),
        F.when(n_phrases >= F.lit(3), F.concat(sep(3), _pick_text(REVIEW_PHRASES, band, i3))))
    message = F.when(uniform(seed, "r:hasmsg", o) < F.lit(MESSAGE_SHARE), message)
    title = F.when(uniform(seed, "r:hastitle", o) < F.lit(TITLE_SHARE), _pick_text(
        REVIEW_TITLES, band, randint(seed, "r:title", _group_size(REVIEW_TITLES, band), o)))
    qh = hash64(seed, "q:review", o)
    line = csv_line(maybe_quoted(review_id, bits_uniform(qh, 0)), maybe_quoted(order_id(plan, o), bits_uniform(qh, 10)),
                    score.cast("string"), csv_text(title), csv_text(message), fmt_midnight(F.col("review_day")),
                    fmt_ts(F.col("answer_sec")))
    return core.where(F.col("has_review")).select(F.concat(line, F.lit("\r")).alias("value"))


def review_truth(plan: Plan, core: DataFrame) -> DataFrame:
    """_truth/review_probs: true score probabilities of every order (review_score null without a review).

    ``_i`` (the order number) is the row index :func:`~ecomrec_spark.generate.writer.write_parquet_dir`
    sorts by and drops.
    """
    from ecomrec_spark.generate.orders import order_id
    from ecomrec_spark.generate.tables import ORDER_STATUSES

    return core.select(
        F.col("o").alias("_i"),
        order_id(plan, F.col("o")).alias("order_id"),
        *[F.col(f"p{k}") for k in range(1, 6)],
        F.when(F.col("has_review"), F.col("score")).alias("review_score"),
        F.col("has_review"),
        at(lit_array(ORDER_STATUSES), F.col("status")).alias("order_status"),
        F.col("delay_days"),
        F.col("is_late"),
    )
