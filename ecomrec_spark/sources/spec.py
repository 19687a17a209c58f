"""Declarative description of a raw table: file pattern and format, columns, types, rules.

Each input adapter (Olist, REES46 events, Amazon reviews, generic transactions,
the API's feedback events) is a list of :class:`TableSpec`; ingest turns every
spec into one bronze table and one quarantine table, so adapters hold no I/O code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TIMESTAMP = "yyyy-MM-dd HH:mm:ss"
FILE_FORMATS = ("csv", "jsonl")


@dataclass(frozen=True)
class Col:
    """One raw column.

    ``name`` is the header name in the file (the key, for JSON Lines); ``kind`` is
    one of string, int, long, double, timestamp (``fmt``), iso8601 or
    unix_seconds; ``required`` rows without a value are quarantined;
    ``optional`` columns may be absent from a file (they are then filled with
    null: the documented schema-evolution rule).
    """

    name: str
    kind: str = "string"
    required: bool = False
    optional: bool = False
    fmt: str = TIMESTAMP
    rename: str | None = None  # bronze column name when it differs from the header

    @property
    def bronze_name(self) -> str:
        return self.rename or self.name


@dataclass(frozen=True)
class TableSpec:
    """A raw table: where its files are and how each record is checked.

    ``file_format`` is ``csv`` (a header line, then records) or ``jsonl`` (one
    JSON object per line, keyed by the column names).  ``may_be_empty`` marks a
    source that exists only once something wrote to it (the API's events): a
    missing folder or no file then means nothing to ingest, not an error.
    """

    source: str  # sub-folder of paths.raw
    table: str  # bronze / quarantine table name
    pattern: str  # glob for the files inside the source folder
    columns: tuple[Col, ...]
    multiline: bool = False  # quoted fields span lines (Olist reviews): the file is not split
    # (SQL condition on bronze columns that must hold, reason when it does not)
    rules: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    file_format: str = "csv"
    may_be_empty: bool = False

    def __post_init__(self) -> None:
        if self.file_format not in FILE_FORMATS:
            raise ValueError(f"table {self.table}: file_format must be one of {FILE_FORMATS}, "
                             f"got {self.file_format!r}")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]
