"""A bad-input campaign (issue 13 point 8): about 200 corrupted variants of small real-format files.

Every variant must either be ingested, with ``raw = bronze + quarantine`` by the
independent count (:mod:`ecomrec_spark.ingest.count`) recorded in
``bronze/ingest_reconciliation``, or fail with an :class:`IngestError` whose
message names the file and the problem, and then not be recorded as ingested.
A Spark, Py4J or Python exception escaping ingest is a bug.

The clean bases are the first rows of the shared real files (Olist products,
the REES46 events sample, UCI Online Retail as the generic transactions format)
and a hand-written Olist reviews file in the real layout (the shared data has no
reviews file; reviews are the multi-line CSV, where quotes span lines).

To stay near a minute, variants that leave the rest of the batch ingestible sit
as separate files of one source in one raw folder and are ingested in one call
per table (each file reconciles on its own); only variants that fail their
whole table (a header ingest cannot use, a file Spark cannot read) get a call
and a lake of their own.

=====================  ==================================================================================
kind                   expected outcome
=====================  ==================================================================================
truncated_line         one record cut after k < n fields: quarantined, "malformed record"
wrong_column_count     one record with 1-3 extra fields: quarantined, "malformed record"
unclosed_quote         a quote opened and never closed in the first, a middle or the last record:
                       single-line CSV: that line quarantined, "malformed record";
                       multi-line CSV (reviews): the last record is quarantined ("malformed record");
                       earlier, the parser merges records, so the file fails its reconciliation
                       (UnbalancedError naming it) and is not recorded
binary_garbage         a line of random bytes (no comma, quote or line break): quarantined, "malformed record"
nul_bytes              NUL inside a text field or at the start of a line: ingested, NUL kept
invalid_utf8           invalid UTF-8 sequences in a text field: ingested, each sequence read as U+FFFD
latin1                 a Latin-1 encoded record: ingested, its accented letters read as U+FFFD
bom                    a UTF-8 BOM before the header (and header-only with BOM): ingested
mixed_crlf_lf          line endings mixed CRLF and LF: single-line CSV ingested; multi-line CSV (reviews): the
                       reader takes the first line's ending for all, records merge, the file fails its
                       reconciliation (UnbalancedError naming it) and is not recorded
field_1mb              a 1 MB text field: ingested, the value whole
empty                  a 0-byte file: ingested as 0 = 0 + 0
header_only            a header and no record (with and without a final line break): ingested as 0 = 0 + 0
duplicated_header      an ignored column named twice, or a spec column's name in other case: ingested,
                       the extra columns recorded; the header line again inside the data: that line
                       quarantined with its type error ("bad int in ...", "bad timestamp in ...")
reordered_columns      header and records in another column order: ingested, values bound by name
--- whole table fails (a call each) ---
duplicated_header      a required column named twice: IngestError "<file>: duplicate column(s) <name>"
truncated_line         the header cut before a required column: IngestError "<file>: missing column(s) ..."
unclosed_quote         an unclosed quote in the header: IngestError "<file>: missing column(s) ..."
binary_garbage         a header line of random bytes: IngestError "<file>: header line is not UTF-8 text"
bom                    a UTF-16 file (FF FE BOM): IngestError "<file>: header line is not UTF-8 text"
binary_garbage         random bytes named ``.csv.gz``: IngestError "<file>: cannot read the file"
truncated_line         a gzip file cut in half: IngestError naming the file, "cannot read"
=====================  ==================================================================================
"""

from __future__ import annotations

import gzip
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from ecomrec_spark import lake as lk
from ecomrec_spark.config import load_config, load_settings
from ecomrec_spark.ingest.run import RECONCILIATION, IngestError, UnbalancedError, ingest, ingest_table
from ecomrec_spark.settings import Settings
from ecomrec_spark.sources import olist

SEED = 20260513
N_ROWS = 10  # clean records per base file: small, so ~200 files stay quick
MALFORMED = "malformed record: wrong column count or broken quote"
BAD_UTF8 = [b"\xff", b"\xc3\x28", b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82"]  # each decodes to U+FFFD(s)
REVIEWS_HEADER = ("review_id,order_id,review_score,review_comment_title,review_comment_message,"
                  "review_creation_date,review_answer_timestamp")
# Olist's real review layout: quoted ids on some rows, a quoted message spanning lines (CRLF inside), empty titles.
# Only the third record holds quotes, so where an unclosed quote lands decides what the parser merges (see table).
REVIEWS_ROWS = [
    "7bc2406110b926393aa56f80a40eba40,73fc7af87114b39712e6da79b0a377eb,4,,,2018-01-18 00:00:00,2018-01-18 21:46:59",
    "80e641a11e56f04c1ad469d5645fdfde,a548910a1c6147796b98fdf73dbeba33,5,,,2018-03-10 00:00:00,2018-03-11 03:05:13",
    ('228ce5500dc1d8e020d8d1322874b6f0,f9e4b658b201a9f2ecdecbb34bed034b,5,"Super",'
     '"Recebi bem antes do prazo, ""ótimo"".\r\nRecomendo!",2018-02-17 00:00:00,2018-02-18 14:36:24'),
    "e64fb393e7b32834bb789ff8bb30750e,658677c97b385a9be170737859d3511b,5,,Recebi bem antes do prazo,"
    "2017-04-21 00:00:00,2017-04-21 22:02:06",
    "f7c4243c7fe1938f181bec41a392bdeb,8e6bfb81e283fa7e4f11123a3fb894f1,5,,,2018-03-01 00:00:00,2018-03-02 10:26:53",
    "15197aa66ff4d0650b5434f1b46cda19,b18dcdf73be66366873cd26c5724d1dc,1,,nao recebi,"
    "2018-04-13 00:00:00,2018-04-16 00:39:37",
]


@dataclass(frozen=True)
class Base:
    """A clean real-format file to corrupt: header and records as raw field texts (quotes kept)."""

    key: str
    folder: str  # sub-folder of the raw root
    prefix: str  # file name start that the table's glob matches
    header: list[str]
    rows: list[list[str]]
    text_col: str  # a free-text column: NUL, bad UTF-8, Latin-1 and the 1 MB value go here
    required_col: str  # a required column: named twice, it fails the table
    header_reason: str  # why the header line, read again as a record, is quarantined
    first_reason: str  # why a NUL before the first field quarantines the record ("" if that field is text)
    table: str  # bronze table name

    def col(self, name: str) -> int:
        return [h.strip('"') for h in self.header].index(name)  # Olist quotes its header names


def split_fields(record: str) -> list[str]:
    """A record's fields as written (quotes kept), split at commas outside RFC-4180 quotes."""
    fields, start, quoted = [], 0, False
    for i, ch in enumerate(record):
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            fields.append(record[start:i])
            start = i + 1
    return fields + [record[start:]]


def load_bases(shared: Path) -> list[Base]:
    def lines(path: Path) -> list[str]:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8", newline="") as f:
            return [next(f).rstrip("\r\n") for _ in range(N_ROWS + 1)]

    def base(key, folder, prefix, text, **kw) -> Base:
        return Base(key, folder, prefix, split_fields(text[0]), [split_fields(r) for r in text[1:]], **kw)

    return [
        base("products", "olist", "olist_products_dataset_", lines(shared / "olist" / "olist_products_dataset.csv"),
             text_col="product_category_name", required_col="product_id",
             header_reason="bad int in product_name_lenght", first_reason="", table="olist_products"),
        base("reviews", "olist", "olist_order_reviews_dataset_", [REVIEWS_HEADER, *REVIEWS_ROWS],
             text_col="review_comment_message", required_col="review_id",
             header_reason="bad int in review_score", first_reason="", table="olist_order_reviews"),
        base("events", "events", "", lines(shared / "rees46-sample" / "2019-Oct-sample.csv"),
             text_col="category_code", required_col="user_id",
             header_reason="bad timestamp in event_time",
             first_reason="bad timestamp in event_time", table="events"),
        base("transactions", "transactions", "online_retail_",
             lines(next((shared / "online-retail").glob("online_retail_*.csv.gz"))),
             text_col="Description", required_col="StockCode",
             header_reason="bad timestamp in InvoiceDate", first_reason="", table="transactions"),
    ]


@dataclass
class Variant:
    """One corrupted file and what ingest must make of it."""

    kind: str
    base: Base
    name: str
    data: bytes
    outcome: str  # ingested | quarantined | unbalanced | fails
    bronze: int = 0
    quarantine: int = 0
    reason: str = ""  # every quarantined row's reason holds it; for "fails", the message does
    checks: dict = field(default_factory=dict)  # extra per-file facts: {"fffd": n, "nul": n, "max_len": n, ...}


def render(header: list[str], rows: list[list[str]], eol: str = "\n", final_eol: bool = True) -> str:
    """Records joined by ``eol`` (a record's quoted line breaks stay as written)."""
    text = eol.join(",".join(r) for r in [header, *rows])
    return text + eol if final_eol else text


class Campaign:
    """Builds the variants of every kind for one base, seeded."""

    def __init__(self, base: Base, rng: random.Random):
        self.b, self.rng, self.out = base, rng, []
        self.n = len(base.rows)
        self.multiline = base.key == "reviews"

    def add(self, kind: str, data: bytes | str, outcome: str, ext: str = ".csv", **kw) -> None:
        name = f"{self.b.prefix}{kind}_{len(self.out):03d}{ext}"
        raw = data.encode("utf-8") if isinstance(data, str) else data
        self.out.append(Variant(kind, self.b, name, raw, outcome, **kw))

    def records(self) -> list[bytes]:
        """Header and records as UTF-8 bytes, to splice byte-level damage in between."""
        return [",".join(r).encode() for r in [self.b.header, *self.b.rows]]

    def with_row(self, i: int, fields: list[str]) -> list[list[str]]:
        return [fields if j == i else r for j, r in enumerate(self.b.rows)]

    def with_text(self, i: int, value: str) -> list[str]:
        """Record ``i`` with its free-text field replaced by ``value`` (unquoted)."""
        row = list(self.b.rows[i])
        row[self.b.col(self.b.text_col)] = value
        return row

    def ingested(self, kind: str, data: bytes | str, **kw) -> None:
        self.add(kind, data, "ingested", bronze=self.n, **kw)

    def one_quarantined(self, kind: str, data: bytes | str, reason: str = MALFORMED) -> None:
        self.add(kind, data, "quarantined", bronze=self.n - 1, quarantine=1, reason=reason)

    def build(self) -> list[Variant]:
        b, rng, n = self.b, self.rng, self.n
        ncols = len(b.header)
        for _ in range(5):  # a record cut after k fields; the last one sometimes with no final line break
            i, k = rng.randrange(n), rng.randrange(1, ncols)
            final_eol = i < n - 1 or rng.random() < 0.5
            self.one_quarantined("truncated_line", render(b.header, self.with_row(i, b.rows[i][:k]),
                                                          final_eol=final_eol))
        for _ in range(5):
            i = rng.randrange(n)
            extra = b.rows[i] + [rng.choice(["x", "", "1.0", "2019-10-01"]) for _ in range(rng.randint(1, 3))]
            self.one_quarantined("wrong_column_count", render(b.header, self.with_row(i, extra)))
        for where, i in (("start", 0), ("middle", n // 2), ("end", n - 1)):
            for _ in range(2):
                row = list(b.rows[i])
                # an unquoted field that is not the last: a quote opened in the last field keeps the field count
                j = rng.choice([j for j, f in enumerate(row[:-1]) if not f.startswith('"')])
                row[j] = '"' + row[j]
                data = render(b.header, self.with_row(i, row))
                if self.multiline and where != "end":  # the parser reads on to the next quote or the end
                    self.add("unclosed_quote", data, "unbalanced", reason="reconciliation failed")
                else:
                    self.one_quarantined("unclosed_quote", data)
        garbage = bytes(c for c in range(256) if c not in b'\n\r,"')  # one field, one line: always malformed
        for _ in range(3):
            recs = self.records()
            recs.insert(rng.randint(1, n), b"\xff" + bytes(rng.choice(garbage) for _ in range(rng.randint(20, 200))))
            self.add("binary_garbage", b"\n".join(recs) + b"\n", "quarantined", bronze=n, quarantine=1,
                     reason=MALFORMED)
        for _ in range(2):
            i = rng.randrange(n)
            self.ingested("nul_bytes", render(b.header, self.with_row(i, self.with_text(i, "ab\x00c\x00"))),
                          checks={"nul": 1})
        i = rng.randrange(n)
        row = list(b.rows[i])
        row[0] = "\x00" + row[0]  # a NUL first on a line: Spark's unset comment character is NUL
        data = render(b.header, self.with_row(i, row))
        if b.first_reason:  # a NUL before a typed value is a bad value (trim removes spaces only)
            self.one_quarantined("nul_bytes", data, reason=b.first_reason)
        else:
            self.ingested("nul_bytes", data, checks={"nul": 1})
        for _ in range(3):
            i = rng.randrange(n)
            recs = self.records()
            recs[i + 1] = ",".join(self.with_text(i, "ab\x01cd")).encode().replace(b"\x01", rng.choice(BAD_UTF8))
            self.ingested("invalid_utf8", b"\n".join(recs) + b"\n", checks={"fffd": 1})
        for word in ("São Paulo açúcar", "coração"):
            i = rng.randrange(n)
            recs = self.records()
            recs[i + 1] = ",".join(self.with_text(i, word)).encode("latin-1")
            self.ingested("latin1", b"\n".join(recs) + b"\n", checks={"fffd": 1})
        self.ingested("bom", b"\xef\xbb\xbf" + render(b.header, b.rows).encode())
        self.add("bom", b"\xef\xbb\xbf" + render(b.header, []).encode(), "ingested")
        for _ in range(3):
            eols = [rng.choice([b"\r\n", b"\n"]) for _ in range(n + 1)]
            eols[:2] = [b"\r\n", b"\n"]  # both kinds in every variant
            rng.shuffle(eols)
            if self.multiline:  # the header's CRLF is what the reader then expects everywhere; an LF follows
                eols[0], eols[1] = b"\r\n", b"\n"
            data = b"".join(r + e for r, e in zip(self.records(), eols, strict=True))
            if self.multiline:  # the multi-line reader takes the first line's ending as the only one: records merge
                self.add("mixed_crlf_lf", data, "unbalanced", reason="reconciliation failed")
            else:
                self.ingested("mixed_crlf_lf", data)
        i = rng.randrange(n)
        big = "".join(rng.choice("abcdefghij ") for _ in range(1 << 10)) * (1 << 10)  # 1 MiB of text
        self.ingested("field_1mb", render(b.header, self.with_row(i, self.with_text(i, "x" + big[1:]))),
                      checks={"max_len": 1 << 20})
        self.add("empty", b"", "ingested")
        self.add("empty", b"", "ingested", ext=".csv.gz")  # 0 bytes is not even a gzip header
        self.add("header_only", render(b.header, []), "ingested")
        self.add("header_only", render(b.header, [], final_eol=False), "ingested")
        for _ in range(2):  # an ignored column named twice, its values anything
            name = rng.choice(["note", "x", ""])
            header, rows = list(b.header), [list(r) for r in b.rows]
            for p in sorted((rng.randint(0, ncols), rng.randint(0, ncols)), reverse=True):
                header.insert(p, name)
                for r in rows:
                    r.insert(p, rng.choice(["1", "", "y"]))
            self.ingested("duplicated_header", render(header, rows), checks={"extra": f"{name},{name}"})
        # the same name in other case: an extra column to ingest, though Spark's names are case-insensitive
        upper = b.text_col.upper()
        self.ingested("duplicated_header", render(b.header + [upper], [r + ["dup"] for r in b.rows]),
                      checks={"extra": upper})
        recs = self.records()
        recs.insert(rng.randint(2, n), recs[0])  # the header line again inside the data (concatenated files)
        self.add("duplicated_header", b"\n".join(recs) + b"\n", "quarantined", bronze=n, quarantine=1,
                 reason=b.header_reason)
        for _ in range(3):
            order = list(range(ncols))
            while order == sorted(order):
                rng.shuffle(order)
            self.ingested("reordered_columns",
                          render([b.header[o] for o in order], [[r[o] for o in order] for r in b.rows]))
        return self.out

    def build_failing(self) -> list[Variant]:
        """Variants that fail their whole table: each gets its own ingest call."""
        b, rng = self.b, self.rng
        self.out = []
        req = b.col(b.required_col)
        self.add("duplicated_header", render(b.header[:req + 1] + b.header[req:],
                                             [r[:req + 1] + r[req:] for r in b.rows]),
                 "fails", reason=f"duplicate column(s) {b.required_col}")
        cut = rng.randrange(1, len(b.header))  # the header (and records) end early: columns missing
        self.add("truncated_line", render(b.header[:cut], [r[:cut] for r in b.rows]), "fails",
                 reason="missing column(s)")
        header = list(b.header)
        header[1] = '"' + header[1].strip('"')
        self.add("unclosed_quote", render(header, b.rows), "fails", reason="missing column(s)")
        junk = b"\xff" + bytes(rng.randrange(256) for _ in range(300)).replace(b"\n", b"").replace(b"\r", b"")
        self.add("binary_garbage", b"\n".join([junk, *self.records()[1:]]) + b"\n", "fails",
                 reason="header line is not UTF-8 text")
        self.add("bom", b"\xff\xfe" + render(b.header, b.rows).encode("utf-16-le"), "fails",
                 reason="header line is not UTF-8 text")
        self.add("binary_garbage", b"\x00" + bytes(rng.randrange(256) for _ in range(500)), "fails",
                 reason="cannot read the file", ext=".csv.gz")
        whole = gzip.compress(render(b.header, b.rows * 50).encode(), mtime=0)
        self.add("truncated_line", whole[:len(whole) // 2], "fails", reason="cannot read", ext=".csv.gz")
        return self.out


@pytest.fixture(scope="module")
def campaign(shared_data):
    rng = random.Random(SEED)
    bases = load_bases(shared_data)
    batch, failing = [], []
    for base in bases:
        c = Campaign(base, rng)
        batch += c.build()
        failing += c.build_failing()
    return batch, failing


def test_campaign_size(campaign):
    batch, failing = campaign
    kinds = Counter(v.kind for v in batch + failing)
    assert len(batch) + len(failing) == 204
    assert set(kinds) == {"truncated_line", "wrong_column_count", "unclosed_quote", "binary_garbage", "nul_bytes",
                          "invalid_utf8", "latin1", "bom", "mixed_crlf_lf", "field_1mb", "empty", "header_only",
                          "duplicated_header", "reordered_columns"}


# bronze name of each base's free-text column (transactions renames Description to description)
TEXT_COLUMN = {"olist_products": "product_category_name", "olist_order_reviews": "review_comment_message",
               "events": "category_code", "transactions": "description"}


def _write(root: Path, variants: list[Variant]) -> None:
    for v in variants:
        folder = root / v.base.folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / v.name).write_bytes(v.data)


def _uri(root: Path, v: Variant) -> str:
    return f"file:{root / v.base.folder / v.name}"


def _config(raw: Path, lake: str):
    return load_config(None, [f"paths.raw={raw}", f"paths.lake={lake}", "ingest.sources=[events,transactions]"])


def test_batched_variants_are_ingested_or_fail_by_file(spark, tmp_path, campaign):
    batch, _ = campaign
    raw, lake = tmp_path / "raw", str(tmp_path / "lake")
    _write(raw, batch)
    cfg = _config(raw, lake)
    errors: list[str] = []
    for spec in (olist.PRODUCTS, olist.ORDER_REVIEWS):
        try:
            ingest_table(spark, spec, str(raw), lake, "fuzz")
        except UnbalancedError as exc:  # raised after the table's balanced files were recorded
            errors.append(str(exc))
    ingest(spark, Settings.from_config(cfg), run_id="fuzz")  # events and transactions: nothing fails there

    recon = {r["file"]: r for r in lk.read(spark, lake, "bronze", RECONCILIATION).collect()}  # one row per file
    bronze_by_file: dict[str, dict] = {}
    for table in {v.base.table for v in batch}:
        bronze = lk.read(spark, lake, "bronze", table)
        text = F.col(TEXT_COLUMN[table])
        first = F.col(bronze.columns[0]).cast("string")  # the file's first field: a NUL may lead the line
        agg = bronze.groupBy("_source_file").agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum(F.when(text.contains("\ufffd"), 1).otherwise(0)).alias("fffd"),
            F.sum(F.when(F.concat_ws("", first, text).contains("\x00"), 1).otherwise(0)).alias("nul"),
            F.max(F.length(text)).alias("max_len"))
        bronze_by_file.update({r["_source_file"]: r.asDict() for r in agg.collect()})  # one row per file
    quarantine = {}
    for table in {v.base.table for v in batch}:
        q = lk.read_optional(spark, lake, "quarantine", table)
        if q is not None:
            for r in q.groupBy("source_file").agg(F.count(F.lit(1)).alias("rows"),
                                                   F.collect_set("reason").alias("reasons")).collect():
                quarantine[r["source_file"]] = r

    unbalanced_named = set(re.findall(r"(file:\S+?): raw", "\n".join(errors)))
    problems = []
    for v in batch:
        uri = _uri(raw, v)
        got_b = (bronze_by_file.get(uri) or {}).get("rows", 0)
        got_q = quarantine[uri]["rows"] if uri in quarantine else 0
        if v.outcome == "unbalanced":
            if uri not in unbalanced_named or uri in recon:
                problems.append(f"{v.name}: expected an unbalanced, unrecorded file; named={uri in unbalanced_named}")
            continue
        row = recon.get(uri)
        if row is None or not row["balanced"]:
            problems.append(f"{v.name}: not recorded as balanced")
            continue
        if (row["raw_records"], row["bronze_rows"], row["quarantine_rows"]) != (v.bronze + v.quarantine, got_b, got_q):
            problems.append(f"{v.name}: recon {row['raw_records']}/{row['bronze_rows']}/{row['quarantine_rows']}, "
                            f"expected raw {v.bronze + v.quarantine}, tables {got_b}/{got_q}")
        if (got_b, got_q) != (v.bronze, v.quarantine):
            problems.append(f"{v.name}: bronze {got_b} quarantine {got_q}, expected {v.bronze}/{v.quarantine}")
        if v.quarantine and not all(v.reason in r for r in quarantine[uri]["reasons"]):
            problems.append(f"{v.name}: reasons {quarantine[uri]['reasons']}, expected '{v.reason}'")
        for key, want in v.checks.items():
            got = row["extra_columns"] if key == "extra" else (bronze_by_file.get(uri) or {}).get(key)
            if got != want:
                problems.append(f"{v.name}: {key} = {got!r}, expected {want!r}")
    assert problems == []
    assert unbalanced_named == {_uri(raw, v) for v in batch if v.outcome == "unbalanced"}
    assert len(recon) == sum(v.outcome != "unbalanced" for v in batch)


def test_variants_that_fail_their_table_name_the_file_and_record_nothing(spark, tmp_path, campaign):
    _, failing = campaign
    problems = []
    for i, v in enumerate(failing):
        raw, lake = tmp_path / f"raw{i}", str(tmp_path / f"lake{i}")
        _write(raw, [v])
        try:
            if v.base.folder == "olist":
                ingest_table(spark, olist.PRODUCTS if v.base.key == "products" else olist.ORDER_REVIEWS,
                             str(raw), lake, "fuzz")
            else:
                ingest(spark, load_settings(None, [f"paths.raw={raw}", f"paths.lake={lake}",
                                                 f"ingest.sources=[{v.base.folder}]"]), run_id="fuzz")
            problems.append(f"{v.name}: ingested, expected a failure naming '{v.reason}'")
        except IngestError as exc:
            msg = str(exc)
            if _uri(raw, v) not in msg or v.reason not in msg:
                problems.append(f"{v.name}: message {msg[:300]!r} lacks the file or '{v.reason}'")
        recon = lk.read_optional(spark, lake, "bronze", RECONCILIATION)
        if recon is not None and recon.count() != 0:
            problems.append(f"{v.name}: recorded as ingested")
    assert problems == []
