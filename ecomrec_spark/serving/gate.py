"""The quality gate publish applies before a new version goes live.

Why a gate: ``run-all`` publishes on every run, so a build that happened to score worse (a bad
data drop, a mis-set parameter) would otherwise replace a good live version unnoticed.  The
gate compares the two figures each version records in its info (``metrics``): the served
default model's validation NDCG@k and the review model's macro-F1.  A drop larger than
``serving.gate.ndcg_drop`` / ``serving.gate.macro_f1_drop`` (absolute) refuses the switch.

A figure missing on either side (no validation window, no review model) cannot be compared,
so that comparison is skipped and the text says so; NDCG figures measured at different list
lengths ``k`` are not compared either.  The comparison is pure, so it is tested without a store.

Example
-------
>>> from ecomrec_spark.settings import Gate
>>> ok, text = compare({"ndcg_at_10": 0.30, "review_macro_f1": 0.50},
...                    {"ndcg_at_10": 0.25, "review_macro_f1": 0.51},
...                    Gate(ndcg_drop=0.02, macro_f1_drop=0.02))
>>> ok
False
>>> text.split(";")[0]
'NDCG@10 0.3000 -> 0.2500 (-0.0500, more than the allowed drop 0.02): refused'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ecomrec_spark.settings import Gate

NDCG, MACRO_F1 = "ndcg_at_10", "review_macro_f1"
NDCG_K = "ndcg_k"  # the list length the NDCG figure was measured at (the build's recommend.k)
_EPS = 1e-12  # a drop exactly at the limit passes, whatever the float rounding


class GateRefused(RuntimeError):
    """The new version scored worse than the live one by more than ``serving.gate.*`` (exit code 3)."""


def _fmt(x: float) -> str:
    return f"{x:.4f}"


def _one(label: str, old: Any, new: Any, limit: float) -> tuple[bool, str]:
    if old is None or new is None:
        side = "live" if old is None else "new"
        return True, f"{label} not compared (no figure for the {side} version)"
    change = float(new) - float(old)
    head = f"{label} {_fmt(float(old))} -> {_fmt(float(new))} ({change:+.4f}"
    if -change > float(limit) + _EPS:
        return False, f"{head}, more than the allowed drop {limit}): refused"
    return True, f"{head}, allowed drop {limit}): ok"


def compare(live: Mapping[str, Any] | None, new: Mapping[str, Any] | None,
            gate: Gate) -> tuple[bool, str]:
    """Compare a new version's metrics with the live version's.

    Parameters
    ----------
    live : the live version's ``metrics`` (``None`` when nothing is live yet: the new one passes).
    new : the new version's ``metrics``: ``ndcg_at_10``, ``review_macro_f1`` (either may be ``None``)
        and optionally ``ndcg_k``.
    gate : ``settings.serving.gate``: ``ndcg_drop`` and ``macro_f1_drop``, absolute drops.

    Returns
    -------
    (ok, text)
        ``ok`` is False when either figure dropped by more than its limit; ``text`` names both
        figures, old and new, or says why one was not compared.
    """
    if live is None:
        return True, "first version: nothing live to compare with"
    new = new or {}
    ndcg_k_old, ndcg_k_new = live.get(NDCG_K), new.get(NDCG_K)
    label = f"NDCG@{ndcg_k_new or ndcg_k_old or 10}"
    if ndcg_k_old is not None and ndcg_k_new is not None and ndcg_k_old != ndcg_k_new:
        ok_n, text_n = True, f"NDCG not compared (measured at k={ndcg_k_old} live, k={ndcg_k_new} new)"
    else:
        ok_n, text_n = _one(label, live.get(NDCG), new.get(NDCG), gate.ndcg_drop)
    ok_f, text_f = _one("review macro-F1", live.get(MACRO_F1), new.get(MACRO_F1), gate.macro_f1_drop)
    return ok_n and ok_f, f"{text_n}; {text_f}"
