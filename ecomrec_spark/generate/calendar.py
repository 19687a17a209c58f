"""Day weights, the order-to-day layout and timestamp formatting.

Orders are numbered ``0..N-1`` in time order.  The driver builds a small table
of day weights (weekly cycle x growth trend x Black-Friday week x December x a
little hashed noise) and assigns each day a contiguous block of order numbers by
the inverse CDF of the weights evaluated at the stratified points
``(o + 0.5) / N``; so the daily counts follow the weights exactly.  Within a day
an order's time of day is a monotone function of its position (with hashed
jitter), shaped to be quiet around 04:00 and busy in the afternoon, so
``order_purchase_timestamp`` is non-decreasing in the order number and every
file can be written in generation order without a sort.

Timestamps are carried as epoch seconds (``long``) and formatted with
arithmetic, so the output never depends on the session time zone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass

from pyspark.sql import Column
from pyspark.sql import functions as F

EPOCH = dt.date(1970, 1, 1)
DAY = 86400
# Monday .. Sunday
WEEKDAY_FACTOR = (1.10, 1.10, 1.05, 1.00, 0.95, 0.80, 0.85)
BLACK_FRIDAY_WEEK_FACTOR = 1.9
BLACK_FRIDAY_FACTOR = 4.0
DECEMBER_FACTOR = 1.35
CHRISTMAS_FACTOR = 0.8  # 23-25 December
LATE_DECEMBER_FACTOR = 0.95  # 26-31 December
TREND = (0.7, 1.3)  # linear growth from the first to the last day
NOISE_SIGMA = 0.08


def black_friday(year: int) -> dt.date:
    """The Friday after the fourth Thursday of November."""
    nov1 = dt.date(year, 11, 1)
    first_thu = nov1 + dt.timedelta(days=(3 - nov1.weekday()) % 7)
    return first_thu + dt.timedelta(days=22)


def is_peak(day: dt.date) -> bool:
    """True in Black-Friday week (Monday before it to Cyber Monday) and in December."""
    bf = black_friday(day.year)
    return day.month == 12 or (bf - dt.timedelta(days=4)) <= day <= (bf + dt.timedelta(days=3))


def _hash_normal(seed: int, i: int) -> float:
    raw = hashlib.sha256(f"{seed}:day:{i}".encode()).digest()
    u1 = (int.from_bytes(raw[:7], "big") + 0.5) / float(1 << 56)
    u2 = int.from_bytes(raw[7:14], "big") / float(1 << 56)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def day_weights(start: dt.date, end: dt.date, seed: int) -> list[float]:
    """Relative order volume for each day from ``start`` to ``end`` inclusive."""
    n = (end - start).days + 1
    out = []
    for i in range(n):
        day = start + dt.timedelta(days=i)
        w = TREND[0] + (TREND[1] - TREND[0]) * (i / (n - 1) if n > 1 else 0.5)
        w *= WEEKDAY_FACTOR[day.weekday()]
        bf = black_friday(day.year)
        if day == bf:
            w *= BLACK_FRIDAY_FACTOR
        elif (bf - dt.timedelta(days=4)) <= day <= (bf + dt.timedelta(days=3)):
            w *= BLACK_FRIDAY_WEEK_FACTOR
        elif day.month == 12:
            w *= CHRISTMAS_FACTOR if 23 <= day.day <= 25 else LATE_DECEMBER_FACTOR if day.day > 25 else DECEMBER_FACTOR
        w *= math.exp(NOISE_SIGMA * _hash_normal(seed, i))
        out.append(w)
    return out


@dataclass(frozen=True)
class Layout:
    """Which order numbers fall on which day, and the chunks Spark explodes.

    Attributes
    ----------
    day0 : epoch day number of the first day.
    day_first, day_count : first order number and number of orders of each day.
    peak : 1 for a Black-Friday-week or December day, else 0.
    chunk_first, chunk_count, chunk_day : contiguous order ranges (at most one day each).
    """

    day0: int
    day_first: tuple[int, ...]
    day_count: tuple[int, ...]
    peak: tuple[int, ...]
    chunk_first: tuple[int, ...]
    chunk_count: tuple[int, ...]
    chunk_day: tuple[int, ...]


def order_layout(n_orders: int, start: dt.date, end: dt.date, seed: int, max_chunk: int) -> Layout:
    """Split ``n_orders`` over the days by the inverse CDF of the day weights.

    Parameters
    ----------
    n_orders : total orders N.
    start, end : first and last day (inclusive).
    seed : seeds the day noise.
    max_chunk : largest number of orders one Spark row explodes into.
    """
    weights = day_weights(start, end, seed)
    total = sum(weights)
    bounds, acc = [0], 0.0
    for w in weights:
        acc += w
        bounds.append(min(n_orders, int(math.floor(n_orders * acc / total + 0.5))))
    bounds[-1] = n_orders
    day_first = tuple(bounds[:-1])
    day_count = tuple(bounds[i + 1] - bounds[i] for i in range(len(weights)))
    chunk_first, chunk_count, chunk_day = [], [], []
    for d, (first, count) in enumerate(zip(day_first, day_count, strict=True)):
        pos = 0
        while pos < count:
            size = min(max_chunk, count - pos)
            chunk_first.append(first + pos)
            chunk_count.append(size)
            chunk_day.append(d)
            pos += size
    peak = tuple(int(is_peak(start + dt.timedelta(days=i))) for i in range(len(weights)))
    return Layout((start - EPOCH).days, day_first, day_count, peak, tuple(chunk_first), tuple(chunk_count),
                  tuple(chunk_day))


def time_of_day(pos: Column) -> Column:
    """Seconds after midnight for a position ``pos`` in ``[0, 1)`` of the day's orders.

    ``g(x) = x + a (sin(2 pi (x - phi)) + sin(2 pi phi)) / (2 pi)`` is monotone for
    ``a < 1`` with ``g(0) = 0`` and ``g(1) = 1``; the order density ``1/g'`` is lowest
    at ``phi`` (04:00) and highest twelve hours later.
    """
    a, phi = 0.75, 4.0 / 24.0
    wave = F.sin(F.lit(2 * math.pi) * (pos - F.lit(phi))) + F.lit(math.sin(2 * math.pi * phi))
    g = pos + F.lit(a / (2 * math.pi)) * wave
    return F.least(F.greatest(F.floor(g * F.lit(float(DAY))), F.lit(0)), F.lit(DAY - 1)).cast("long")


def idiv(x: Column, d: int) -> Column:
    """Floor division of a non-huge long column by a positive constant."""
    return F.floor(x / F.lit(float(d))).cast("long")


def fmt_date(day: Column) -> Column:
    """``yyyy-MM-dd`` of an epoch day number."""
    return F.date_add(F.lit(EPOCH), day.cast("int")).cast("string")


def fmt_ts(sec: Column) -> Column:
    """``yyyy-MM-dd HH:mm:ss`` of epoch seconds (UTC, independent of the session time zone)."""
    day = idiv(sec, DAY)
    sod = sec - day * F.lit(DAY)
    hh = idiv(sod, 3600)
    mm = idiv(sod - hh * F.lit(3600), 60)
    ss = sod - hh * F.lit(3600) - mm * F.lit(60)

    def two(x: Column) -> Column:
        return F.lpad(x.cast("string"), 2, "0")

    return F.concat(fmt_date(day), F.lit(" "), two(hh), F.lit(":"), two(mm), F.lit(":"), two(ss))


def fmt_midnight(day: Column) -> Column:
    """``yyyy-MM-dd 00:00:00`` of an epoch day number (Olist's date-only columns)."""
    return F.concat(fmt_date(day), F.lit(" 00:00:00"))
