"""Counter-based random numbers as Spark column expressions.

Every random number of the generator is a pure function of ``(seed, salt,
entity index...)``: a 64-bit ``xxhash64`` mapped to a double in ``[0, 1)``.
Nothing depends on ``F.rand`` or on how rows are partitioned, so the same seed
gives the same value for the same row on any cluster layout.

All helpers return :class:`pyspark.sql.Column` objects and build no data.  They
are written so that each input column appears once in the resulting expression:
callers materialise intermediate values as columns, which keeps the generated
Java code small (and JIT-compiled).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pyspark.sql import Column
from pyspark.sql import functions as F

_TWO53 = float(1 << 53)
CHOICE_BUCKETS = 8192
_ARRAYS: dict = {}


_SEP = "\u0001"


def _text(v: Any, dtype: str | None) -> str:
    if isinstance(v, str):
        if _SEP in v:
            raise ValueError("lit_array: strings must not contain \\u0001")
        return v
    if dtype == "double" or (dtype is None and isinstance(v, float)):
        return repr(float(v))
    return str(int(v))


def lit_array(values: Sequence, dtype: str | None = None) -> Column:
    """A constant array column from one string literal: ``cast(split(text, sep) as array<dtype>)``.

    Spark folds it into a single array literal when optimizing; building it costs one
    JVM call and the analyzer sees three nodes, not one node per element.

    Parameters
    ----------
    values : the elements (Python ints, floats or strings).
    dtype : ``"int"``, ``"long"`` or ``"double"`` for numbers; inferred when omitted.
    """
    from pyspark import SparkContext

    values = tuple(values)
    if dtype is None:
        dtype = "string" if isinstance(values[0], str) else "double" if isinstance(values[0], float) else "int"
    key = (id(SparkContext._jvm), values, dtype)
    col = _ARRAYS.get(key)
    if col is None:
        if len(_ARRAYS) > 512:
            _ARRAYS.clear()
        text = _SEP.join(_text(v, dtype) for v in values)
        col = F.split(F.lit(text), _SEP, -1)
        if dtype != "string":
            col = col.cast(f"array<{dtype}>")
        _ARRAYS[key] = col
    return col


def at(array: Column, index: Column) -> Column:
    """``array[index]`` with a 0-based index (fails loudly under ANSI if out of range)."""
    return F.element_at(array, (index + F.lit(1)).cast("int"))


def hash64(seed: int, salt: str, *cols: Column) -> Column:
    """A signed 64-bit hash of the seed, a salt naming the draw, and the key columns."""
    return F.xxhash64(F.lit(int(seed)), F.lit(salt), *cols)


def uniform(seed: int, salt: str, *cols: Column) -> Column:
    """A double uniform on ``[0, 1)`` (53 random bits)."""
    return F.shiftrightunsigned(hash64(seed, salt, *cols), 11).cast("double") / F.lit(_TWO53)


def bits_uniform(h: Column, shift: int) -> Column:
    """A coarse uniform on ``[0, 1)`` from 10 bits of an existing hash ``h`` (cheap extra draws)."""
    return F.shiftright(h, shift).bitwiseAND(F.lit(1023)).cast("double") / F.lit(1024.0)


def randint(seed: int, salt: str, n: int | Column, *cols: Column) -> Column:
    """An integer uniform on ``[0, n)``; ``n`` is an int or a column (>= 1)."""
    n_col = n if isinstance(n, Column) else F.lit(int(n))
    return F.least(F.floor(uniform(seed, salt, *cols) * n_col), n_col - F.lit(1)).cast("long")


def normal(seed: int, salt: str, *cols: Column) -> Column:
    """A standard normal by Box-Muller from two hashed uniforms."""
    u1 = uniform(seed, salt + "#n1", *cols)
    u2 = uniform(seed, salt + "#n2", *cols)
    return F.sqrt(F.lit(-2.0) * F.log(F.lit(1.0) - u1)) * F.cos(F.lit(2.0 * math.pi) * u2)


def hex_id(seed: int, kind: str, *cols: Column) -> Column:
    """A 32-character lowercase hex id (md5) of the seed, a kind and the key columns."""
    return F.md5(F.concat_ws(":", F.lit(str(int(seed))), F.lit(kind), *[c.cast("string") for c in cols]))


def zipf_rank(n: Column, u: Column) -> Column:
    """A rank in ``[0, n)`` with ``P(r) ~ 1/(r+1)`` (Zipf, s=1): ``floor((n + 0.999)^u) - 1``."""
    return (F.floor(F.pow(n.cast("double") + F.lit(0.999), u)) - F.lit(1)).cast("long")


def choice_table(weights: Sequence[float], buckets: int = CHOICE_BUCKETS) -> list[int]:
    """A quantized inverse-CDF table: ``buckets`` entries, item ``i`` filling about
    ``buckets * w_i / sum(w)`` of them (at least one for a positive weight)."""
    total = float(sum(weights))
    if total <= 0 or any(w < 0 for w in weights):
        raise ValueError("choice_table needs non-negative weights with a positive sum")
    positive = [i for i, w in enumerate(weights) if w > 0]
    rest = buckets - len(positive)
    raw = {i: rest * weights[i] / total for i in positive}
    counts = {i: 1 + int(math.floor(r)) for i, r in raw.items()}
    left = buckets - sum(counts.values())
    for i in sorted(positive, key=lambda i: (-(raw[i] - math.floor(raw[i])), i))[:left]:
        counts[i] += 1
    table: list[int] = []
    for i in positive:
        table.extend([i] * counts[i])
    return table


_PACK = 10  # six-bit entries per long


def choice(weights: Sequence[float], u: Column) -> Column:
    """An index drawn with probability proportional to ``weights`` (to 1/8192) from one uniform.

    The inverse CDF is tabulated on the driver (:func:`choice_table`) and packed ten
    six-bit entries to a long, so the constant stays small in every task (at most 64
    items); the expression is one array lookup and a shift.
    """
    if len(weights) > 64:
        raise ValueError("choice() supports at most 64 items")
    table = choice_table(tuple(weights))
    packed = [sum(table[i + r] << (6 * r) for r in range(_PACK) if i + r < len(table))
              for i in range(0, len(table), _PACK)]
    b = F.floor(u * F.lit(float(len(table)))).cast("long")
    word = at(lit_array(packed, "long"), F.floor(b.cast("double") / F.lit(float(_PACK))))
    shift = (F.pmod(b, F.lit(_PACK)) * F.lit(6)).cast("int")
    return F.call_function("shiftright", word, shift).bitwiseAND(F.lit(63)).cast("int")


def sigmoid(x: Column) -> Column:
    """The logistic function."""
    return F.lit(1.0) / (F.lit(1.0) + F.exp(-x))
