"""CSV field formatting as column expressions, and writing one exact-named file.

Spark writes the already formatted lines (one string column) with
``DataFrame.write.text`` into a temporary folder; the part files are then
concatenated in name order (= partition order = generation order) behind the
header into a temporary file that atomically replaces the target.  Copying is
streamed in 1 MiB chunks, never holding a file in memory, and counts the
physical lines on the way.
"""

from __future__ import annotations

import filecmp
import logging
import os
import shutil
from pathlib import Path

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

log = logging.getLogger(__name__)

BOM = b"\xef\xbb\xbf"
_CHUNK = 1 << 20
ID_QUOTE_SHARE = 0.62  # share of rows whose id fields are quoted (as in the real Olist files)
ZIP_QUOTE_SHARE = 0.85


def quoted(col: Column) -> Column:
    """``"value"`` (the value must not contain a double quote)."""
    return F.concat(F.lit('"'), col, F.lit('"'))


def maybe_quoted(col: Column, u: Column, share: float = ID_QUOTE_SHARE) -> Column:
    """Quote ``col`` when the uniform ``u`` is below ``share`` (Olist's mixed quoting)."""
    return F.when(u < F.lit(share), quoted(col)).otherwise(col)


def csv_text(col: Column) -> Column:
    """An RFC 4180 quoted text field (``"`` doubled); empty when ``col`` is null."""
    return F.when(col.isNull(), F.lit("")).otherwise(quoted(F.replace(col, F.lit('"'), F.lit('""'))))


def csv_line(*fields: Column) -> Column:
    """Join fields with commas; a null field becomes an empty field."""
    return F.concat_ws(",", *[F.coalesce(f, F.lit("")) for f in fields])


def money(cents: Column) -> Column:
    """Cents as a dot-decimal with two places: ``5890 -> 58.90``, ``-5 -> -0.05``."""
    a = F.abs(cents)
    sign = F.when(cents < 0, F.lit("-")).otherwise(F.lit(""))
    whole = F.floor(a / F.lit(100.0)).cast("long").cast("string")
    return F.concat(sign, whole, F.lit("."), F.lpad(F.pmod(a, F.lit(100)).cast("string"), 2, "0"))


def money_short(cents: Column) -> Column:
    """Cents like a Python float repr (the real payments file): ``14190 -> 141.9``, ``10000 -> 100.0``."""
    whole = F.floor(cents / F.lit(100.0)).cast("long").cast("string")
    frac = F.pmod(cents, F.lit(100))
    tail = (F.when(frac == 0, F.lit("0"))
            .when(F.pmod(frac, F.lit(10)) == 0, (frac / F.lit(10)).cast("long").cast("string"))
            .otherwise(F.lpad(frac.cast("string"), 2, "0")))
    return F.concat(whole, F.lit("."), tail)


def _local_uri(path: Path) -> str:
    return "file://" + str(path.resolve())


def replace_if_changed(tmp: Path, target: Path) -> bool:
    """Move ``tmp`` over ``target`` unless the bytes are identical.

    Keeping an identical file keeps its modification time, so re-generating
    with the same seed leaves nothing new for ingest to pick up.
    """
    if target.is_file() and target.stat().st_size == tmp.stat().st_size and filecmp.cmp(tmp, target, shallow=False):
        tmp.unlink()
        return False
    os.replace(tmp, target)
    return True


def write_lines(lines: DataFrame, target: Path, header: str, work_dir: Path, *, bom: bool = False) -> int:
    """Write a one-string-column DataFrame as the file ``target`` behind ``header``.

    Parameters
    ----------
    lines : one string column; its partition order and in-partition order are the file order.
        Each value is one record (it may hold embedded line breaks); Spark adds ``\\n``.
    target : the final file; replaced atomically if it exists.
    header : the header text including its line end.
    work_dir : a local scratch folder for Spark's part files.
    bom : start the file with a UTF-8 byte-order mark.

    Returns
    -------
    int
        The number of physical lines (``\\n`` characters) in the written file.
    """
    parts_dir = work_dir / f"{target.name}.parts"
    if parts_dir.exists():
        shutil.rmtree(parts_dir)
    lines.write.mode("overwrite").option("compression", "none").text(_local_uri(parts_dir))
    parts = sorted(p for p in parts_dir.iterdir() if p.name.startswith("part-") and not p.name.endswith(".crc"))
    tmp = target.with_name(f".{target.name}.tmp")
    head = (BOM if bom else b"") + header.encode("utf-8")
    n_lines = head.count(b"\n")
    with open(tmp, "wb") as out:
        out.write(head)
        for part in parts:
            with open(part, "rb") as src:
                while True:
                    chunk = src.read(_CHUNK)
                    if not chunk:
                        break
                    n_lines += chunk.count(b"\n")
                    out.write(chunk)
    replace_if_changed(tmp, target)
    shutil.rmtree(parts_dir)
    log.info("wrote %s (%d lines from %d parts)", target, n_lines, len(parts))
    return n_lines


def write_small_text(target: Path, text: str, *, bom: bool = False) -> int:
    """Write a small driver-side file (e.g. the category translation) atomically; returns its line count."""
    data = (BOM if bom else b"") + text.encode("utf-8")
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(data)
    replace_if_changed(tmp, target)
    return data.count(b"\n")


PARQUET_ROWS_PER_FILE = 1_000_000


def write_parquet_dir(df: DataFrame, target: Path, work_dir: Path, n_rows: int) -> None:
    """Write a truth table as parquet under ``target``, identical whatever the input partitioning.

    ``df`` holds a row index ``_i`` in ``[0, n_rows)``.  Rows are hashed to files by
    ``_i div 1,000,000`` and sorted by ``_i`` inside each file (then ``_i`` is dropped),
    so the files' contents do not depend on how ``df`` was partitioned.  Spark's part
    names hold a random job id; they are renamed to ``part-00000.parquet``, ... and
    the ``_SUCCESS``/``.crc`` files dropped, so two runs with the same seed leave
    byte-identical folders.
    """
    tmp = work_dir / f"{target.name}.parquet-tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    n_files = max(1, -(-n_rows // PARQUET_ROWS_PER_FILE))
    bucket = F.floor(F.col("_i") / F.lit(float(PARQUET_ROWS_PER_FILE)))
    stable = (df.withColumn("_bucket", bucket).repartition(n_files, "_bucket").sortWithinPartitions("_i")
              .drop("_bucket", "_i"))
    stable.write.mode("overwrite").parquet(_local_uri(tmp))
    parts = sorted(p for p in tmp.iterdir() if p.name.startswith("part-") and p.name.endswith(".parquet"))
    for p in tmp.iterdir():
        if p not in parts:
            p.unlink()
    for i, p in enumerate(parts):
        p.rename(tmp / f"part-{i:05d}.parquet")
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
