"""Small-file I/O through Hadoop's FileSystem, so local folders, ``s3://`` and ``s3a://`` all work.

Only for small things (headers, pointers, metadata, reports); tables go through Delta.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import SparkSession


def jvm(spark: SparkSession) -> Any:
    """The session's py4j view of the JVM (a classic session always has one; Spark Connect has none)."""
    view = spark._jvm
    assert view is not None, "a classic SparkSession (not Spark Connect) is needed for Hadoop file I/O"
    return view


def hadoop_fs(spark: SparkSession, uri: str) -> tuple[Any, Any]:
    """``(path, filesystem)`` of a URI, from Spark's Hadoop configuration."""
    path = jvm(spark).org.apache.hadoop.fs.Path(uri)
    return path, path.getFileSystem(spark._jsc.hadoopConfiguration())


def exists(spark: SparkSession, uri: str) -> bool:
    path, fs = hadoop_fs(spark, uri)
    return bool(fs.exists(path))


def write_text(spark: SparkSession, uri: str, text: str) -> None:
    """Write (replace) a small UTF-8 file."""
    path, fs = hadoop_fs(spark, uri)
    out = fs.create(path, True)
    try:
        out.write(bytearray(text.encode("utf-8")))
    finally:
        out.close()


def read_text(spark: SparkSession, uri: str) -> str:
    """Read a small UTF-8 file; ``FileNotFoundError`` when absent."""
    path, fs = hadoop_fs(spark, uri)
    if not fs.exists(path):
        raise FileNotFoundError(f"{uri} does not exist")
    stream = fs.open(path)
    try:
        data = jvm(spark).org.apache.commons.io.IOUtils.toByteArray(stream)
    finally:
        stream.close()
    return bytes(data).decode("utf-8")


def _is_checksum_sidecar(name: str) -> bool:
    # Hadoop's local FileSystem keeps a hidden ``.<name>.crc`` beside each file it writes and hides it from its own
    # listings; S3 lists one if a sync tool copied it.  Skipping them on every FileSystem makes a folder list the
    # same wherever it lives, and a sidecar is never read as data (Spark skips hidden files).
    return name.startswith(".") and name.endswith(".crc")


def list_files(spark: SparkSession, uri: str) -> dict[str, int]:
    """Every file under the folder ``uri``, recursively: ``{path relative to uri: size in bytes}``.

    Hadoop's checksum sidecars (``.<name>.crc``) are left out; ``FileNotFoundError`` when the folder is absent.
    """
    path, fs = hadoop_fs(spark, uri)
    if not fs.exists(path):
        raise FileNotFoundError(f"{uri} does not exist")
    root = fs.makeQualified(path).toUri().getPath().rstrip("/") + "/"
    out: dict[str, int] = {}
    it = fs.listFiles(path, True)
    while it.hasNext():
        status = it.next()
        full = status.getPath().toUri().getPath()
        if not full.startswith(root):
            raise ValueError(f"{full} is listed under {uri} but does not start with it")
        if not _is_checksum_sidecar(status.getPath().getName()):
            out[full[len(root):]] = int(status.getLen())
    return out


def sha256_hex(spark: SparkSession, uri: str) -> str:
    """SHA-256 of a file, hashed in the JVM as it streams (no bytes cross to Python)."""
    path, fs = hadoop_fs(spark, uri)
    stream = fs.open(path)
    try:
        return str(jvm(spark).org.apache.commons.codec.digest.DigestUtils.sha256Hex(stream))
    finally:
        stream.close()
