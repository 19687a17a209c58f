"""Small-file I/O through Hadoop's FileSystem, so local folders, ``s3://`` and ``s3a://`` all work.

Only for small things (headers, pointers, metadata, reports); tables go through Delta.
"""

from __future__ import annotations

from pyspark.sql import SparkSession


def hadoop_fs(spark: SparkSession, uri: str):
    """``(path, filesystem)`` of a URI, from Spark's Hadoop configuration."""
    path = spark._jvm.org.apache.hadoop.fs.Path(uri)
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
        data = spark._jvm.org.apache.commons.io.IOUtils.toByteArray(stream)
    finally:
        stream.close()
    return bytes(data).decode("utf-8")
