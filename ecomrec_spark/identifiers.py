"""The id and name rules every entry point checks (CLI, config, the API, the catalog, S3), and the served models.

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
# S3 general-purpose bucket names (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html)
BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_ADDRESS = re.compile(r"\d+\.\d+\.\d+\.\d+")
BUCKET_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
BUCKET_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


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


def bucket_problem(bucket: object) -> str | None:
    """What is wrong with ``bucket`` as an S3 bucket name, or ``None`` when it is valid.

    The one bucket rule of the project (``upload-raw``, the config's ``catalog.*`` URIs, the lake lease
    and the EMR launcher's ``emr.bucket`` all use it): 3-63 characters of lowercase letters, digits,
    ``.`` and ``-``, starting and ending with a letter or digit; no ``..``, ``.-`` or ``-.``; not an IP
    address; none of S3's reserved prefixes (:data:`BUCKET_RESERVED_PREFIXES`) or suffixes
    (:data:`BUCKET_RESERVED_SUFFIXES`).

    >>> bucket_problem("my-bucket") is None
    True
    >>> bucket_problem("my..bucket")
    "'..', '.-' and '-.' are not allowed"
    """
    if not isinstance(bucket, str):
        return "a bucket name is a string"
    if "<" in bucket:
        return "it still holds a placeholder like <bucket>; put the real bucket name there"
    if not BUCKET.fullmatch(bucket):
        return "use 3-63 lowercase letters, digits, '.' or '-', starting and ending with a letter or digit"
    if ".." in bucket or ".-" in bucket or "-." in bucket:
        return "'..', '.-' and '-.' are not allowed"
    if _IP_ADDRESS.fullmatch(bucket):
        return "a bucket name cannot look like an IP address"
    if bucket.startswith(BUCKET_RESERVED_PREFIXES) or bucket.endswith(BUCKET_RESERVED_SUFFIXES):
        return "the name uses a prefix or suffix S3 reserves"
    return None


def validate_bucket(bucket: str) -> str:
    """Return ``bucket`` if it is a valid S3 bucket name (:func:`bucket_problem`), else raise ``ValueError``.

    >>> validate_bucket("ecomrec-data")
    'ecomrec-data'
    >>> validate_bucket("192.168.1.1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: '192.168.1.1' is not a valid S3 bucket name: a bucket name cannot look like an IP address
    """
    why = bucket_problem(bucket)
    if why:
        raise ValueError(f"{bucket!r} is not a valid S3 bucket name: {why}")
    return bucket
