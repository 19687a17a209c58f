"""``ecomrec ab-report``: the A/B variants compared on the feedback events the API took back.

Why: ``serving.variants`` sends each customer one variant of the served lists;
whether one variant does better is only known from what customers did with
what they were shown.  The API appends those events (``POST /v1/events``),
ingest and transform put them in ``silver/events`` with their ``variant``
(``source = 'events_api'``), and this module turns them into
``gold/insights_ab_test``, one row per variant.

Definitions (per variant, counting API events that name the variant; events
without one, and those of variant ``override`` -- the API's name for a list a
``model=`` parameter chose, i.e. debugging, not an arm of the test -- are left
out and counted in the summary):

- ``impressions``, ``clicks``, ``purchases``: events of that type;
  ``customers``: distinct customers with any event.
- **click-through** ``ctr = clicks / impressions`` and **conversion**
  ``conversion = purchases / impressions``: per *impression*, so both are
  proportions of the same trials and the intervals are binomial.  A variant
  with no impressions has no rates (null).  When a shop posts more clicks or
  purchases than impressions (it did not post every impression), the
  successes are capped at the impressions so the rates stay proportions; the
  table keeps the counts as posted.
- ``*_lo``/``*_hi``: the 95% **Wilson score interval** of the rate,
  ``(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)`` with ``z = 1.96``;
  unlike the normal interval it stays inside [0, 1] and is sane for small
  counts and rates near 0.
- ``*_diff`` with ``*_diff_lo``/``*_diff_hi``: the variant's rate minus the
  **control**'s, with a 95% normal-approximation interval
  ``d ± z·sqrt(p₁(1-p₁)/n₁ + p₀(1-p₀)/n₀)``; null on the control row (with
  both rates at 0 or 1 it has no width: read it beside the Wilson intervals).  The
  control is the first variant of ``serving.variants`` (config order) that has
  impressions, else the first by name.  An interval that excludes 0 is a
  difference at the 5% level -- for one pre-planned comparison; the events are
  treated as independent trials, which repeat impressions to one customer are not
  quite, so read borderline intervals with care.

Everything is built-in Spark column functions on the aggregated rows; no row
of events reaches the driver.

Example
-------
>>> table = ab_test_table(events, order=["control", "ranker"])           # doctest: +SKIP
>>> table.select("variant", "ctr", "ctr_lo", "ctr_hi").show()           # doctest: +SKIP
+-------+----+------+------+
|variant| ctr|ctr_lo|ctr_hi|
|control|0.25|0.1119|0.4687|
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from ecomrec_spark import columns as C
from ecomrec_spark import lake as lk
from ecomrec_spark.insights.analytics import TABLE_PREFIX
from ecomrec_spark.serving.variants import OVERRIDE
from ecomrec_spark.sources.events_api import SOURCE as API_SOURCE

if TYPE_CHECKING:
    from ecomrec_spark.settings import Settings

log = logging.getLogger(__name__)

TABLE = TABLE_PREFIX + "ab_test"
Z95 = 1.959963984540054  # two-sided 95%: the standard normal's 97.5% quantile
VARIANT = "variant"
AB_COLUMNS = ["variant", "is_control", "control", "customers", "impressions", "clicks", "purchases",
              "ctr", "ctr_lo", "ctr_hi", "conversion", "conversion_lo", "conversion_hi",
              "ctr_diff", "ctr_diff_lo", "ctr_diff_hi", "conversion_diff", "conversion_diff_lo", "conversion_diff_hi"]


def _trials(trials: Column) -> Column:
    """The trial count as a double, null when there are none (so ANSI mode never sees a division by zero)."""
    return F.when(trials > 0, trials.cast("double"))


def _rate(successes: Column, trials: Column) -> Column:
    """successes / trials, successes capped at trials; null without trials."""
    n = _trials(trials)
    return F.least(successes.cast("double"), n) / n


def wilson_interval(successes: Column, trials: Column, z: float = Z95) -> tuple[Column, Column]:
    """The Wilson score interval ``(lo, hi)`` of a binomial proportion; null without trials.

    Example
    -------
    >>> lo, hi = wilson_interval(F.lit(10), F.lit(100))  # doctest: +SKIP
    >>> spark.range(1).select(lo, hi).first()             # doctest: +SKIP
    Row(lo=0.0552..., hi=0.1744...)
    """
    n = _trials(trials)
    p = _rate(successes, trials)
    z2 = F.lit(z * z)
    denom = F.lit(1.0) + z2 / n
    center = (p + z2 / (F.lit(2.0) * n)) / denom
    half = F.lit(z) * F.sqrt(p * (F.lit(1.0) - p) / n + z2 / (F.lit(4.0) * n * n)) / denom
    # p = 0 or 1 gives an exact 0 or 1 in theory; clamp the rounding (greatest/least skip nulls: keep them null)
    return (F.when(n.isNotNull(), F.greatest(F.lit(0.0), center - half)),
            F.when(n.isNotNull(), F.least(F.lit(1.0), center + half)))


def difference_interval(s1: Column, n1: Column, s0: Column, n0: Column,
                        z: float = Z95) -> tuple[Column, Column, Column]:
    """``p1 - p0`` and its normal-approximation interval ``(diff, lo, hi)``; null when either side has no trials."""
    p1, p0 = _rate(s1, n1), _rate(s0, n0)
    diff = p1 - p0
    se = F.sqrt(p1 * (F.lit(1.0) - p1) / _trials(n1) + p0 * (F.lit(1.0) - p0) / _trials(n0))
    return diff, diff - F.lit(z) * se, diff + F.lit(z) * se


def ab_test_table(events: DataFrame, order: Sequence[str] = (), *, z: float = Z95, col_variant: str = VARIANT,
                  col_event_type: str = C.EVENT_TYPE, col_user: str = C.USER_ID) -> DataFrame:
    """Per-variant impressions, click-through and conversion with 95% intervals, and the difference to the control.

    Parameters
    ----------
    events : DataFrame
        API feedback events with ``variant``, ``event_type`` and ``user_id``;
        events without a variant are left out.
    order : sequence of str
        Variant names in config order (``serving.variants``); the first of them
        with impressions is the control, else the first variant by name.
    z : float
        The normal quantile of the intervals (default two-sided 95%).
    col_variant, col_event_type, col_user : str
        Column names, for frames that name them otherwise.

    Returns
    -------
    DataFrame
        :data:`AB_COLUMNS`, one row per variant (definitions in the module docstring).

    Example
    -------
    >>> ab_test_table(api_events, ["control", "ranker"]).show()  # doctest: +SKIP
    """
    if not 0 < z < 10:
        raise ValueError(f"z must be a normal quantile in (0, 10), e.g. {Z95} for 95%; got {z}")
    missing = [c for c in (col_variant, col_event_type, col_user) if c not in events.columns]
    if missing:
        raise ValueError(f"events lack column(s) {missing}; pass col_variant/col_event_type/col_user for other names")
    kind = F.col(col_event_type)
    per = (events.where(F.col(col_variant).isNotNull())
           .groupBy(F.col(col_variant).alias(VARIANT))
           .agg(F.countDistinct(col_user).alias("customers"),
                F.count_if(kind == "impression").alias("impressions"),
                F.count_if(kind == "click").alias("clicks"),
                F.count_if(kind == "purchase").alias("purchases")))
    names = list(dict.fromkeys(order))
    position = (F.array_position(F.array(*[F.lit(n) for n in names]), F.col(VARIANT)) if names
                else F.lit(0).cast("long"))
    rank = F.struct((F.col("impressions") == 0).alias("no_trials"),
                    F.when(position > 0, position).otherwise(F.lit(len(names) + 1)).alias("position"),
                    F.col(VARIANT).alias("name"))
    control = per.agg(F.min_by(F.col(VARIANT), rank).alias("control"))
    ctrl = per.select(F.col(VARIANT).alias("control"), F.col("impressions").alias("_n0"),
                      F.col("clicks").alias("_c0"), F.col("purchases").alias("_p0"))
    joined = per.crossJoin(F.broadcast(control)).join(F.broadcast(ctrl), "control", "left")
    n, n0 = F.col("impressions"), F.col("_n0")
    is_control = F.col(VARIANT) == F.col("control")
    out = joined.withColumn("is_control", is_control)
    for name, s, s0 in (("ctr", F.col("clicks"), F.col("_c0")), ("conversion", F.col("purchases"), F.col("_p0"))):
        lo, hi = wilson_interval(s, n, z)
        diff, dlo, dhi = difference_interval(s, n, s0, n0, z)
        out = out.select("*", _rate(s, n).alias(name), lo.alias(f"{name}_lo"), hi.alias(f"{name}_hi"),
                         *[F.when(~is_control, c).alias(f"{name}_diff{suffix}")
                           for c, suffix in ((diff, ""), (dlo, "_lo"), (dhi, "_hi"))])
    return out.select(*AB_COLUMNS)


def _finite(value: Any) -> Any:
    """A summary number for the CLI: null rates become NaN, which formats as ``nan``."""
    return float("nan") if value is None else value


def ab_report(spark: SparkSession, settings: Settings) -> dict[str, Any]:
    """Write ``gold/insights_ab_test`` from the API events in ``silver/events``; return a per-variant summary.

    Returns ``{"skipped": reason}`` when the lake has no API events that name a
    variant (nothing posted yet, or ``events_api`` missing from ``ingest.sources``).

    Example
    -------
    >>> ab_report(spark, load_settings("conf/local.yaml"))["variants"][0]["variant"]  # doctest: +SKIP
    'control'
    """
    root = settings.paths.lake
    hint = ("POST events to the API (/v1/events), then run `ecomrec ingest` (with events_api in ingest.sources) "
            "and `ecomrec transform`")
    events = lk.read_optional(spark, root, "silver", "events")
    if events is None or C.SOURCE not in events.columns or VARIANT not in events.columns:
        log.warning("ab-report skipped: no API events in silver/events")
        return {"skipped": f"no API events in {lk.table_path(root, 'silver', 'events')}; {hint}"}
    api = events.where(F.col(C.SOURCE) == API_SOURCE)
    arms = api.where(F.col(VARIANT) != OVERRIDE)  # null variants drop out here too
    counts = api.agg(F.count(F.lit(1)).alias("total"), F.count_if(F.col(VARIANT).isNull()).alias("no_variant"),
                     F.count_if(F.col(VARIANT) == OVERRIDE).alias("override")).first()  # one aggregate row
    assert counts is not None, "an aggregate without groupBy returns exactly one row"
    total, no_variant, override = counts["total"], counts["no_variant"], counts["override"]
    if total == no_variant + override:
        log.warning("ab-report skipped: %d API events, none names an A/B variant", total)
        return {"skipped": f"{total} API events in silver/events, none names an A/B variant "
                           f"({no_variant} without one, {override} '{OVERRIDE}'); {hint}"}
    order = [v.name for v in settings.serving.variants]  # config order: the first is the control
    path = lk.overwrite(ab_test_table(arms, order), root, "gold", TABLE)
    written = lk.read(spark, root, "gold", TABLE)
    variants = [r.asDict() for r in written.orderBy(F.col("is_control").desc(), VARIANT).collect()]  # one row a variant
    log.info("ab-report: %d API events (%d without a variant, %d '%s') -> %s, %d variant(s)", total, no_variant,
             override, OVERRIDE, path, len(variants))
    return {
        "events": total, "events_without_variant": no_variant, "events_override": override, "table": path,
        "control": variants[0]["control"] if variants else None,
        "variants": [{k: _finite(v[k]) if isinstance(v[k], float) or v[k] is None else v[k] for k in AB_COLUMNS}
                     for v in variants],
    }

