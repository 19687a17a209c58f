"""The store's keys, shared by publish (which builds them in Spark) and the API (which looks them up).

Every document of a version sits under one of these string keys:

=====================================  ==================================================================
``customer#<customer_id>#<model>``     ``{"items": [item, ...]}``, the customer's top k of one served model
``product#<product_id>``               ``{"product": item, "similar": [item, ...], "together": [item, ...]}``
``popular#overall``                    ``{"items": [item, ...]}``
``popular#category#<category>``        same, per category
``popular#region#<region>``            same, per region
``trending``                           same, rising products
=====================================  ==================================================================

An item is ``{"product_id", "rank", "score", "reason", "category", "price", "review_score",
"p_satisfied"}`` (the product document's ``product`` item also carries ``name`` and ``description``,
null where the source has none, and null ``rank``/``score``/``reason``; the bought-together items
carry ``lift`` and ``confidence``).  Every field is present; a missing value is ``null``.

Why one document per customer and model, not one per customer with every model's list: a request
wants one list, and the API parses the whole document it reads; with a dozen served models the
per-customer document was ~40 KB, and parsing it cost more than the rest of the request.

A customer id never holds ``#`` (:data:`ecomrec_spark.identifiers.CUSTOMER_ID_PATTERN`), nor does
a model name, so a key splits back unambiguously.
"""

from __future__ import annotations

SEP = "#"
CUSTOMER, PRODUCT, POPULAR, TRENDING = "customer", "product", "popular", "trending"
OVERALL = "overall"


def customer(customer_id: str, model: str) -> str:
    return f"{CUSTOMER}{SEP}{customer_id}{SEP}{model}"


def customer_prefix() -> str:
    """What every customer key starts with (``customer#``)."""
    return f"{CUSTOMER}{SEP}"


def customer_of(key: str) -> str:
    """The customer id in a ``customer#<id>#<model>`` key."""
    return key[len(customer_prefix()):].rsplit(SEP, 1)[0]


def product(product_id: str) -> str:
    return f"{PRODUCT}{SEP}{product_id}"


def popular(scope: str = OVERALL, value: str | None = None) -> str:
    """``popular#overall``, ``popular#category#<value>`` or ``popular#region#<value>``."""
    return f"{POPULAR}{SEP}{scope}" if value is None else f"{POPULAR}{SEP}{scope}{SEP}{value}"


def trending() -> str:
    return TRENDING
