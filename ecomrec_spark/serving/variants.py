"""A/B variants: which model a customer's list comes from, decided by a salted, stable hash of the id.

Why a hash and not a random draw or a table: the API keeps no per-customer state, yet the same
customer must see the same variant on every request, on every API process and after a restart,
so the A/B report can attribute each click to one arm.  ``sha256(salt + ":" + customer_id)``
gives every id a fixed point in [0, 1); the ``serving.variants`` weights, normalised and laid
end to end, cut [0, 1) into one interval per variant.  Changing ``serving.salt`` reshuffles
every customer (a new experiment); changing the weights moves only the customers near the cuts.

>>> vs = parse_variants([{"name": "control", "model": "default", "weight": 1},
...                      {"name": "ranker", "model": "ltr", "weight": 1}])
>>> assign("C1", vs, "salt-1") == assign("C1", vs, "salt-1")
True
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT = "default"    # a variant model meaning "the version's default_model"
OVERRIDE = "override"  # the variant a response names when ``model=`` chose the list
_SCALE = float(2 ** 64)


@dataclass(frozen=True)
class Variant:
    """One arm: ``model`` is a served model name or ``"default"``; ``weight`` > 0 (normalised on use)."""

    name: str
    model: str
    weight: float


def parse_variants(rows: Iterable[Mapping[str, Any]] | None) -> tuple[Variant, ...]:
    """``serving.variants`` (already checked by :func:`ecomrec_spark.config.load_config`) as :class:`Variant` s."""
    out = tuple(Variant(str(r["name"]), str(r["model"]), float(r["weight"])) for r in rows or ())
    for v in out:
        if v.weight <= 0:
            raise ValueError(f"variant {v.name!r} has weight {v.weight}; weights must be > 0")
    return out


def bucket(customer_id: str, salt: str) -> float:
    """The customer's fixed point in [0, 1): the first 8 bytes of ``sha256(salt:customer_id)`` over 2**64."""
    digest = hashlib.sha256(f"{salt}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def _cuts(variants: Sequence[Variant]) -> list[float]:
    total = sum(v.weight for v in variants)
    cuts, acc = [], 0.0
    for v in variants[:-1]:
        acc += v.weight / total
        cuts.append(acc)
    return cuts  # the last interval ends at 1.0 exactly, so no id falls past it through rounding


def assign(customer_id: str, variants: Sequence[Variant], salt: str) -> Variant | None:
    """The customer's variant (``None`` when no variants are configured)."""
    if not variants:
        return None
    return variants[bisect_right(_cuts(variants), bucket(customer_id, salt))]


def resolve_model(variant: Variant | None, default_model: str) -> str:
    """The model a variant serves: ``"default"`` (or no variant) is the version's ``default_model``."""
    return default_model if variant is None or variant.model == DEFAULT else variant.model
