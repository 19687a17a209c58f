"""The run configuration as typed, frozen pydantic models: one model per section, every value rule in one place.

:func:`ecomrec_spark.config.load_config` reads the YAML, applies ``--set`` overrides and validates the result
with :class:`Settings`; a :class:`pydantic.ValidationError` becomes one ``ConfigError`` naming the dotted
key (``recommend.k``, ``serving.variants[0].name``) and, where there is one, the fix
(:func:`ecomrec_spark.config.config_error`).
The ``emr:`` section is validated by :class:`ecomrec_spark.aws.settings.EmrSettings`.

>>> Settings.model_validate({"paths": {"raw": "/data", "lake": "/lake"}}).recommend.k
10
>>> Settings.model_validate({"paths": {"raw": "/data", "lake": "/lake"}, "recommend": {"k": "3"}})
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for Settings
...
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal, get_args

from pydantic import Field, PrivateAttr, ValidationError, ValidationInfo, field_validator, model_validator

from ecomrec_spark.aws.s3 import parse_s3_uri
from ecomrec_spark.config import (
    VALID_SOURCES,
    ConfigError,
    Num,
    Section,
    SubKeyError,
    as_iso,
    choices,
    config_error,
    iso_date,
    matching,
    not_null,
    rule,
    validate_uri,
)
from ecomrec_spark.generate.settings import Generate
from ecomrec_spark.identifiers import SERVE_MODELS, validate_identifier, validate_workgroup


def _number_list(values: Any, kind: Any, lo: float, hi: float | None = None, strict: bool = False) -> Any:
    """A non-empty list of ``kind`` numbers: in [lo, hi], or above ``lo`` (``>`` when ``strict``)."""
    if not isinstance(values, list):
        return not_null(values)  # the type check says "must be list"
    ok = bool(values) and all(not isinstance(v, bool) and isinstance(v, kind) and (v > lo if strict else v >= lo)
                              and (hi is None or v <= hi) for v in values)
    if not ok:
        name = " or ".join(t.__name__ for t in get_args(kind)) if get_args(kind) else kind.__name__
        bound = f"in [{lo}, {hi}]" if hi is not None else f"{'>' if strict else '>='} {lo}"
        raise ValueError(f"must be a non-empty list of {name} {bound}, got {values!r}")
    return values



class Paths(Section):
    raw: str  # missing: "config key 'paths.raw' is missing; set it in the file or with --set paths.raw=..."
    lake: str
    generated: str | None = None  # None: not set (an explicit null is refused)
    reports: str | None = None
    serving: str | None = None

    _set = rule(not_null, "generated", "reports", "serving", before=True)

    @field_validator("*")
    @classmethod
    def _uri(cls, v: str, info: ValidationInfo) -> str:
        if (info.context or {}).get("loaded"):
            return v  # load_config checked it, then made it absolute
        key = f"paths.{info.field_name}"
        if not v and info.field_name in ("raw", "lake"):
            raise ConfigError(f"config key '{key}' is missing; set it in the file or with --set {key}=...")
        return validate_uri(key, v)

    def folder(self, name: Literal["generated", "reports", "serving"], hint: str = "") -> str:
        """An optional path that a command needs, without its trailing ``/``; a ``ConfigError`` naming it when unset."""
        value = getattr(self, name)
        if value is None:
            raise ConfigError(f"config key 'paths.{name}' is missing; set it in the file or with --set "
                              f"paths.{name}=...{hint}")
        return str(value).rstrip("/")


class Spark(Section):
    master: str | None = None
    app_name: str = "ecomrec"
    shuffle_partitions: int = 8
    delta_packages: list[str] = []  # Maven coordinates fetched locally; [] on EMR
    jar_cache: str | None = None  # project-local Ivy cache for those packages (None: not set)
    bind_loopback: bool = False
    log_level: str = "WARN"
    conf: dict[str, Any] = {}  # any extra spark.* settings


class Ingest(Section):
    sources: list[str] = ["olist", "events", "events_api"]  # adapters reading <paths.raw>/<source>/

    _known = rule(lambda v: choices(v, VALID_SOURCES, "source"), "sources")


class TransactionColumns(Section):
    order_id: str = "InvoiceNo"
    product_id: str = "StockCode"
    customer_id: str | None = "CustomerID"
    timestamp: str = "InvoiceDate"
    quantity: str = "Quantity"
    unit_price: str = "UnitPrice"
    description: str | None = "Description"
    category: str | None = None
    country: str | None = "Country"


_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


class TransactionsSource(Section):
    folder: str = "transactions"  # sub-folder of paths.raw holding the files ("." = paths.raw itself)
    files: str = "*.csv*"  # glob under that folder
    timestamp_format: str = "yyyy-MM-dd HH:mm:ss"
    cancel_prefix: str = "C"
    non_product_codes: list[str] = ["POST", "D", "M", "C2", "DOT", "BANK CHARGES", "AMAZONFEE", "CRUK", "PADS",
                                    "S", "B"]  # UCI Online Retail's postage, fees and adjustments
    columns: TransactionColumns = TransactionColumns()

    # stock codes are text: a code YAML reads as a number (23) is the code "23"
    _codes = rule(lambda v: [str(c) for c in v] if isinstance(v, list) else v, "non_product_codes", before=True)

    @field_validator("folder", "files")
    @classmethod
    def _inside_raw(cls, value: str, info: ValidationInfo) -> str:
        """``folder`` and ``files`` stay inside ``paths.raw``: relative, no ``..``, no scheme or drive."""
        key = info.field_name
        segments = re.split(r"[/\\]", value)
        escapes = (value.startswith(("/", "\\", "~")) or "://" in value or _WINDOWS_DRIVE.match(value)
                   or ".." in segments or any(ord(ch) < 32 for ch in value))
        if escapes or not value.strip():
            hint = "transactions (or . for paths.raw itself)" if key == "folder" else "*.csv*"
            raise ConfigError(f"config key 'sources.transactions.{key}' = {value!r} must be a relative "
                              f"{'sub-folder' if key == 'folder' else 'glob'} inside paths.raw: no '..' segment, "
                              f"no leading '/', '\\' or '~', no scheme or drive; for example "
                              f"--set sources.transactions.{key}={hint}")
        return value


class Sources(Section):
    transactions: TransactionsSource = TransactionsSource()


class Transform(Section):
    iqr_k: Num = Field(default=1.5, gt=0)
    outlier_columns: list[str] = ["price"]
    iqr_accuracy: int = 10000
    iqr_method: Literal["window", "aggregate"] = "aggregate"
    min_freight: Num = 1.0
    popularity_window_days: int = 90
    session_gap_minutes: int = 30
    holiday_season: list[list[int]] = [[11, 20, 30], [12, 1, 31]]  # [[month, day_from, day_to], ...]
    price_levels: int = 5



_XGB_RULES: dict[str, tuple[Any, float, float]] = {
    "max_depth": (int, 1, 20), "n_estimators": (int, 1, 10000), "learning_rate": (Num, 1e-6, 1.0),
    "min_child_weight": (Num, 0.0, 1e6), "subsample": (Num, 1e-6, 1.0)}


class XgbGrid(Section):
    """An XGBoost grid (review model or ranker): non-empty lists of values in range; ``None``: not set.

    The defaults of ``review.grid`` and ``recommend.rank.grid`` are those of conf/local.yaml
    (:data:`REVIEW_GRID`, :data:`RANK_GRID`).
    """

    max_depth: list[int] | None = None
    n_estimators: list[int] | None = None
    learning_rate: list[Num] | None = None
    min_child_weight: list[Num] | None = None
    subsample: list[Num] | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _in_range(cls, v: Any, info: ValidationInfo) -> Any:
        kind, lo, hi = _XGB_RULES[str(info.field_name)]
        return _number_list(v, kind, lo, hi)


REVIEW_GRID = XgbGrid(max_depth=[4, 6], n_estimators=[300], learning_rate=[0.1], min_child_weight=[1.0],
                      subsample=[0.8])  # small so `make demo` stays a few minutes on 2 cores
RANK_GRID = XgbGrid(max_depth=[4, 6], n_estimators=[150], learning_rate=[0.1], min_child_weight=[1.0],
                    subsample=[0.8])


class Split(Section):
    train_fraction: Num = Field(default=0.7, gt=0, lt=1)
    validation_fraction: Num = 0.15
    train_until: str | None = None  # YYYY-MM-DD (YAML may read it as a date: kept as its ISO string)
    validation_until: str | None = None

    _iso = rule(as_iso, "train_until", "validation_until", before=True)
    _date = rule(iso_date, "train_until", "validation_until")

    @model_validator(mode="after")
    def _consistent(self) -> Split:
        tf, vf = self.train_fraction, self.validation_fraction
        if not (0 < vf < 1) or tf + vf >= 1:
            raise SubKeyError("validation_fraction",
                              f"must be in (0, 1) with train_fraction + validation_fraction < 1, got {vf}")
        if (self.train_until is None) != (self.validation_until is None):
            raise SubKeyError("validation_until", "and review.split.train_until must be set together (or both null)")
        if self.train_until and self.validation_until and self.train_until >= self.validation_until:
            raise SubKeyError("validation_until", f"must be after review.split.train_until ({self.train_until})")
        return self


_REVIEW_TARGETS = ("score", "satisfied")
_REVIEW_BASELINES = ("majority", "logistic_regression", "decision_tree", "random_forest", "gbt")


def _review_targets(v: list[str]) -> list[str]:
    if not v or any(t not in _REVIEW_TARGETS for t in v) or "score" not in v:
        raise ValueError(f"must list 'score' and optionally 'satisfied', got {v!r}")
    return v


class Review(Section):
    targets: list[str] = ["score", "satisfied"]  # score (5 classes) and/or satisfied (score >= 4)
    split: Split = Split()
    class_weights: bool = False  # weight_col for the saved model
    compare_weighting: bool = True  # also fit the other weighting and report it
    num_workers: int = Field(default=1, ge=1)
    parallelism: int = Field(default=1, ge=1)
    early_stopping_rounds: int | None = Field(default=20, ge=1)
    tuning_metric: Literal["logLoss", "accuracy", "f1", "weightedPrecision", "weightedRecall",
                           "hammingLoss"] = "logLoss"
    seed: int = 42
    history_prior_weight: Num = Field(default=5.0, ge=0)
    baselines: list[str] = list(_REVIEW_BASELINES)
    grid: XgbGrid = REVIEW_GRID

    _targets = rule(_review_targets, "targets")
    _baselines = rule(lambda v: choices(v, _REVIEW_BASELINES, "baseline"), "baselines")



_REC_MODELS = ("knn", "hybrid", "als", "content", "popular", "item_knn", "ease", "ltr")
_EVAL_MODELS = ("knn", "hybrid", "als", "content", "popular", "item_knn", "ease", "random")
_GENERATORS = ("ease", "item_knn", "als", "knn", "content", "rules", "popular", "popular_region", "popular_category",
               "trending", "buy_again")  # recommend.candidates.GENERATORS (no Spark import here)
_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


class Interactions(Section):
    half_life_days: Num = Field(default=180, gt=0)
    purchase_weight: Num = 3.0
    max_quantity: Num = 10
    event_weights: dict[str, Num] = {"view": 0.5, "click": 0.5, "cart": 1.5, "purchase": 3.0}
    review_weight: Num = 0.5

    @field_validator("event_weights")
    @classmethod
    def _non_negative(cls, v: dict[str, Num]) -> dict[str, Num]:
        for key, value in v.items():
            if value < 0:
                raise SubKeyError(key, f"must be a number >= 0, got {value!r}")
        return v


class AlsGrid(Section):
    rank: list[int] = [64]
    reg_param: list[Num] = [0.1, 1.0]
    alpha: list[Num] = [1.0, 10.0]

    _rank = rule(lambda v: _number_list(v, int, 1), "rank", before=True)
    _rest = rule(lambda v: _number_list(v, Num, 0), "reg_param", "alpha", before=True)


class Als(Section):
    rank: int = Field(default=32, ge=1)
    reg_param: Num = Field(default=0.1, ge=0)
    alpha: Num = Field(default=10.0, ge=0)
    max_iter: int = Field(default=10, ge=1)
    tune: bool = True
    grid: AlsGrid = AlsGrid()


class Vectors(Section):
    embedding: Num = 1.0
    category: Num = 0.6
    price: Num = 0.3
    review: Num = 0.3
    popularity: Num = 0.2


class Knn(Section):
    method: Literal["exact", "lsh", "auto"] = "auto"
    exact_max_products: int = 200000
    target_recall: Num = Field(default=0.95, gt=0, le=1)


class HybridWeights(Section):
    similarity: Num = 1.0
    review: Num = 0.2
    price: Num = 0.2
    popularity: Num = 0.3


class HybridGrid(Section):
    similarity: list[Num] = [1.0]
    review: list[Num] = [0.0, 0.3]
    price: list[Num] = [0.0, 0.3]
    popularity: list[Num] = [0.0, 0.3, 1.0]


class Hybrid(Section):
    weights: HybridWeights = HybridWeights()
    tune: bool = True
    validation_days: int = 60
    grid: HybridGrid = HybridGrid()


class Content(Section):
    vocab_size: int = 2000
    min_df: Num = 2


class ItemItem(Section):
    max_neighbors: int = Field(default=200, ge=1)
    ease_lambda: Num = Field(default=500.0, gt=0)
    max_items: int = Field(default=10000, ge=2)
    ease_neighbors: int | None = Field(default=None, ge=1)  # null: unpruned (dense) EASE up to dense_max_items
    dense_max_items: int = Field(default=6000, ge=0)
    tune: bool = True
    ease_lambdas: list[Num] = [100.0, 250.0, 500.0, 1000.0]

    _lambdas = rule(lambda v: _number_list(v, Num, 0, strict=True), "ease_lambdas", before=True)


class Rules(Section):
    min_support: Num = Field(default=0.0005, gt=0, le=1)
    category_min_support: Num = Field(default=0.002, gt=0, le=1)
    min_confidence: Num = Field(default=0.05, ge=0, le=1)
    max_items: int = 3


class Rank(Section):
    generators: list[str] = list(_GENERATORS)
    candidates: int = Field(default=100, ge=1)
    recent_days: int = Field(default=30, ge=1)
    max_negatives: int = Field(default=100, ge=1)
    min_customers: int = Field(default=20, ge=1)
    objective: Literal["rank:ndcg", "rank:pairwise", "rank:map"] = "rank:ndcg"
    num_workers: int = Field(default=1, ge=1)
    grid: XgbGrid = RANK_GRID

    _known = rule(lambda v: choices(v, _GENERATORS, "generator"), "generators")


class Popularity(Section):
    top_n: int = 50
    trending_days: int = 30
    min_interactions: int = 3


class Filters(Section):
    exclude_purchased: bool = True
    blocked_products: list[str] = []
    blocked_table: str | None = None
    include_categories: list[str] = []
    exclude_categories: list[str] = []

    @field_validator("blocked_products")
    @classmethod
    def _ids(cls, v: list[str]) -> list[str]:
        for pid in v:
            if not _ID_PATTERN.fullmatch(pid):
                raise ValueError(f"has {pid!r}, which is not a product id (1-64 letters, digits, _.:-)")
        return v

    _uri = rule(lambda v: validate_uri("recommend.filters.blocked_table", v) if v else v, "blocked_table")


class Evaluate(Section):
    test_days: int = Field(default=90, ge=1)
    cutoff: str | None = None  # or a date YYYY-MM-DD (YAML may read it as a date: kept as its ISO string)
    models: list[str] = ["knn", "hybrid", "als", "content", "item_knn", "popular", "random"]

    _iso = rule(as_iso, "cutoff", before=True)
    _date = rule(iso_date, "cutoff")

    @field_validator("models")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        note = " (ltr is validated by build-recommendations itself: gold/recommendation_runs)" if "ltr" in v else ""
        return choices(v, _EVAL_MODELS, "model", note)


class Recommend(Section):
    k: int = Field(default=10, ge=1, le=1000)
    candidates: int = Field(default=50, ge=0)
    models: list[str] = ["ltr", "ease", "item_knn", "knn", "hybrid", "als", "content", "popular"]
    seed: int = 42
    similar_items: int = Field(default=10, ge=1, le=1000)
    interactions: Interactions = Interactions()
    als: Als = Als()
    vectors: Vectors = Vectors()
    knn: Knn = Knn()
    hybrid: Hybrid = Hybrid()
    content: Content = Content()
    item_item: ItemItem = ItemItem()
    rules: Rules = Rules()
    default_model: str = "auto"  # auto (best validation NDCG@k among the served lists) or a model name
    rank: Rank = Rank()
    popularity: Popularity = Popularity()
    filters: Filters = Filters()
    evaluate: Evaluate = Evaluate()

    _known = rule(lambda v: choices(v, _REC_MODELS, "model"), "models")

    @model_validator(mode="after")
    def _served(self) -> Recommend:
        served = [*self.models, *(["ltr_new"] if "ltr" in self.models else [])]
        if self.default_model != "auto" and self.default_model not in served:
            raise SubKeyError("default_model", f"must be auto or one of the served models {served}, "
                                               f"got {self.default_model!r}")
        if "ltr" in self.models and not self.rank.generators:
            raise SubKeyError("rank.generators", "is empty; the ltr model needs at least one candidate generator")
        return self



class Catalog(Section):
    database: str = "ecomrec"
    s3_lake: str | None = None
    athena_output: str | None = None
    workgroup: str = "primary"

    @field_validator("database", "workgroup")
    @classmethod
    def _name(cls, v: str, info: ValidationInfo) -> str:
        key = info.field_name
        try:
            validate_identifier(v, "database") if key == "database" else validate_workgroup(v)
        except ValueError as exc:
            raise ConfigError(f"config key 'catalog.{key}': {exc}; for example --set catalog.{key}="
                              f"{'ecomrec' if key == 'database' else 'primary'}") from None
        return v

    @field_validator("s3_lake", "athena_output")
    @classmethod
    def _s3(cls, uri: str | None, info: ValidationInfo) -> str | None:
        """Athena writes results only to s3://; the lake copy may be named either way (the DDL writes s3://)."""
        if uri is None:
            return uri
        key = info.field_name
        schemes = ("s3://", "s3a://") if key == "s3_lake" else ("s3://",)
        example = f"--set catalog.{key}=s3://my-bucket/{'lake' if key == 's3_lake' else 'athena-results'}/ (or null)"
        if not uri.startswith(schemes):
            raise ConfigError(f"config key 'catalog.{key}' = {uri!r} must start with {' or '.join(schemes)}; "
                              f"for example {example}")
        try:
            parse_s3_uri(uri)
        except ValueError as exc:
            raise ConfigError(f"config key 'catalog.{key}': {exc}; for example {example}") from None
        return uri


class Sentiment(Section):
    vocab_size: int = 5000
    min_df: Num = 2
    reg_param: Num = 0.01
    max_iter: int = 100  # these defaults are what run_sentiment uses for a key the config leaves out
    features: Literal["tfidf", "word2vec"] = "tfidf"
    ngrams: bool = True
    vector_size: int = 100
    test_fraction: Num = Field(default=0.2, gt=0, lt=1)
    seed: int = 42
    class_weights: bool | None = None
    positive_at: Num = 0.6
    negative_at: Num = 0.4

    @model_validator(mode="after")
    def _ordered(self) -> Sentiment:
        lo, hi = self.negative_at, self.positive_at
        if not 0 <= lo <= hi <= 1:
            raise ConfigError(f"config keys 'insights.sentiment.negative_at' ({lo}) <= 'positive_at' ({hi}) "
                              "must both lie in [0, 1]")
        return self


class Insights(Section):
    top_n: int = Field(default=10, ge=1, le=1000)  # top products per month / most recommended per category
    score_change_threshold: Num = Field(default=0.5, gt=0)  # a monthly mean-score move this large is up or down
    sentiment: Sentiment = Sentiment()


_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")
_TABLE_PREFIX = re.compile(r"[A-Za-z0-9_.-]{3,200}")


class Dynamodb(Section):
    table_prefix: str = "ecomrec-serving"
    region: str | None = None
    endpoint_url: str | None = None

    _prefix = rule(matching(_TABLE_PREFIX, "3-200 letters, digits, '_', '-' or '.'"), "table_prefix")


class Gate(Section):
    ndcg_drop: Num = Field(default=0.02, ge=0, le=1)  # an absolute drop
    macro_f1_drop: Num = Field(default=0.02, ge=0, le=1)


class Variant(Section):
    name: str
    model: str  # "default": the build's picked default
    weight: Num = Field(gt=0)

    _name = rule(matching(_NAME, "a unique name of 1-32 letters, digits, '_' or '-'"), "name")
    _model = rule(matching(re.compile("|".join(("default", *SERVE_MODELS))),
                             f"'default' or one of {', '.join(SERVE_MODELS)}"), "model")


class Serving(Section):
    store: Literal["sqlite", "dynamodb"] = "sqlite"  # a file under paths.serving | DynamoDB
    dynamodb: Dynamodb = Dynamodb()
    k: int = Field(default=20, ge=1, le=100)  # items kept per published list
    keep_versions: int = Field(default=3, ge=1, le=1000)
    refresh_seconds: Num = Field(default=5, gt=0, le=3600)  # how often a running API re-reads the live pointer
    gate: Gate = Gate()
    variants: list[Variant] = [Variant(name="control", model="default", weight=0.5),
                               Variant(name="ranker", model="ltr", weight=0.5)]
    salt: str = "ecomrec-ab-1"
    max_events: int = Field(default=1000, ge=1, le=10000)  # events per POST /v1/events batch

    @field_validator("variants")
    @classmethod
    def _unique(cls, v: list[Variant]) -> list[Variant]:
        names = [x.name for x in v]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise SubKeyError(f"[{i}].name", f"must be a unique name of 1-32 letters, digits, '_' or '-', "
                                                 f"got {name!r}")
        return v


class Settings(Section):
    """The whole run configuration; ``emr`` stays a mapping here (``aws.settings.EmrSettings`` checks it)."""

    paths: Paths
    spark: Spark = Spark()
    ingest: Ingest = Ingest()
    sources: Sources = Sources()
    transform: Transform = Transform()
    review: Review = Review()
    recommend: Recommend = Recommend()
    catalog: Catalog = Catalog()
    insights: Insights = Insights()
    serving: Serving = Serving()
    emr: dict[str, Any] = {}  # launcher settings (conf/emr.yaml, emr/README.md)
    generate: Generate = Generate()
    _source: str | None = PrivateAttr(default=None)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> Settings:
        """The typed settings of a mapping :func:`~ecomrec_spark.config.load_config` returned: ``_source`` is
        kept aside and the paths, checked before they were resolved, are taken as they are."""
        try:
            settings = cls.model_validate({k: v for k, v in cfg.items() if k != "_source"}, context={"loaded": True})
        except ValidationError as exc:
            raise config_error(exc, cls) from None
        settings._source = cfg.get("_source")
        return settings

    @property
    def source(self) -> str | None:
        """The config file these settings were read from (``None`` when not loaded from one)."""
        return self._source


def validate_settings(cfg: dict[str, Any]) -> Settings:
    """The typed settings of a config mapping, or one :class:`ConfigError` naming the first bad key."""
    try:
        return Settings.model_validate(cfg)
    except ValidationError as exc:
        raise config_error(exc, Settings) from None
