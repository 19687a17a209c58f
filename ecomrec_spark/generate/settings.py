"""The ``generate`` section: size, seed and planted-defect rates of the synthetic data set.

Its own module, beside the generator, so :mod:`ecomrec_spark.settings` can include it without importing the
generator (which imports Spark); :func:`ecomrec_spark.generate.plan.resolve_settings` derives the counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, ValidationError, model_validator

from ecomrec_spark.config import Num, Section, SubKeyError, as_iso, config_error, iso_date, rule


class Messy(Section):
    missing_price: Num = Field(default=0.01, ge=0, lt=0.2)
    missing_freight: Num = Field(default=0.01, ge=0, lt=0.2)
    outliers: Num = Field(default=0.003, ge=0, lt=0.2)
    duplicates: Num = Field(default=0.005, ge=0, lt=0.2)
    malformed: Num = Field(default=0.002, ge=0, lt=0.2)
    bad_timestamp: Num = Field(default=0.002, ge=0, lt=0.2)
    bad_number: Num = Field(default=0.002, ge=0, lt=0.2)
    negative_price: Num = Field(default=0.001, ge=0, lt=0.2)
    orphan_fk: Num = Field(default=0.002, ge=0, lt=0.2)

    @model_validator(mode="after")
    def _line_rates_below_one(self) -> Messy:
        # one draw per order line picks at most one line defect (bad_timestamp hits orders, not lines)
        total = sum(float(v) for k, v in self if k != "bad_timestamp")
        if total >= 1:
            raise ValueError(f"must have order-line defect rates (all but bad_timestamp) summing to < 1, got {total:g}")
        return self


class Generate(Section):
    """The synthetic data set (``ecomrec generate``); ``None`` counts derive from ``orders``
    (:func:`ecomrec_spark.generate.plan.resolve_settings`)."""

    orders: int = Field(default=20000, ge=1, lt=2_000_000_000)  # order numbers are squared in a long
    seed: int = 42
    n_customers: int | None = None
    n_products: int | None = None
    n_sellers: int | None = None
    start_date: str = "2017-01-01"
    end_date: str = "2018-08-31"
    repeat_rate: Num = Field(default=0.3, ge=0, lt=1)
    complement_rate: Num = Field(default=0.15, ge=0, le=1)
    events_per_order: Num = Field(default=6, ge=0)
    partitions: int | None = Field(default=None, ge=1)
    messy: Messy = Messy()

    _unquoted = rule(as_iso, "start_date", "end_date", before=True)  # YAML reads 2017-01-01 as a date
    _dates = rule(iso_date, "start_date", "end_date")

    @model_validator(mode="after")
    def _dates_in_order(self) -> Generate:
        if self.end_date < self.start_date:  # ISO dates order as text
            raise SubKeyError("end_date", f"{self.end_date} is before start_date {self.start_date}; swap them")
        return self

    @classmethod
    def resolve(cls, section: Mapping[str, Any] | Generate | None) -> Generate:
        """``section`` validated (one :class:`ConfigError` naming the ``generate.*`` key), or as it is."""
        if isinstance(section, Generate):
            return section
        try:
            return cls.model_validate(dict(section or {}))
        except ValidationError as exc:
            raise config_error(exc, cls, "generate") from None
