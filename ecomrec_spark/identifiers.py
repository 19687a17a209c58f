"""The id and name rules every entry point checks against (CLI, config, the API, the catalog), and the served models.

Pure Python with no Spark import, so the online API (``ecomrec serve``), which runs
without a JVM, checks ids with exactly the rule the Spark CLI uses.
"""

from __future__ import annotations

import re

CUSTOMER_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
PRODUCT_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
# the lists `build-recommendations` writes to gold/recommendations, in the order they are shown
SERVE_MODELS = ("ltr", "ltr_new", "ease", "item_knn", "knn", "hybrid", "als", "content", "popular")
# Glue/Athena database and table names: lower case (Glue lower-cases them anyway), digits and '_'
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,127}$")
WORKGROUP = re.compile(r"^[A-Za-z0-9._-]{1,128}$")  # Athena's workgroup name rule


def validate_identifier(name: str, what: str = "identifier") -> str:
    """Return ``name`` if it is a safe lower-case SQL identifier, else raise ``ValueError``.

    Parameters
    ----------
    name : the database or table name.
    what : how the error message calls it (``"database"``, ``"table"``).

    Examples
    --------
    >>> validate_identifier("ecomrec", "database")
    'ecomrec'
    >>> validate_identifier("Drop Table", "database")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: database 'Drop Table' is not a valid name: use 1-128 lower-case letters, ...
    """
    if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
        raise ValueError(f"{what} {name!r} is not a valid name: use 1-128 lower-case letters, digits or '_', "
                         "not starting with a digit")
    return name


def validate_workgroup(name: str) -> str:
    """Return ``name`` if it is a valid Athena workgroup name (1-128 letters, digits, ``.``, ``_``, ``-``).

    >>> validate_workgroup("primary")
    'primary'
    """
    if not isinstance(name, str) or not WORKGROUP.fullmatch(name):
        raise ValueError(f"workgroup {name!r} is not a valid Athena workgroup name: use 1-128 letters, digits, "
                         "'.', '_' or '-'")
    return name
