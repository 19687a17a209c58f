"""Listing raw files and reading their header lines through Hadoop's FileSystem.

Going through Hadoop (not ``os``) makes the same code work for local folders,
``s3://`` on EMR and ``s3a://`` locally.  Only file names, sizes and header
lines reach the driver.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from pyspark.sql import SparkSession

from ecomrec_spark.storage import hadoop_fs


@dataclass(frozen=True)
class RawFile:
    path: str  # fully qualified, as Spark's _metadata.file_path reports it
    size: int
    mtime: int  # epoch milliseconds


def folder_exists(spark: SparkSession, uri: str) -> bool:
    path, fs = hadoop_fs(spark, uri)
    return bool(fs.exists(path)) and bool(fs.getFileStatus(path).isDirectory())


def list_files(spark: SparkSession, folder: str, pattern: str) -> list[RawFile]:
    """Files in ``folder`` matching the glob ``pattern``, sorted by path."""
    glob, fs = hadoop_fs(spark, f"{folder.rstrip('/')}/{pattern}")
    statuses = fs.globStatus(glob) or []
    files = [RawFile(str(s.getPath().toUri()), int(s.getLen()), int(s.getModificationTime()))
             for s in statuses if s.isFile()]
    return sorted(files, key=lambda f: f.path)


def read_header(spark: SparkSession, uri: str) -> list[str]:
    """The column names on a file's first line (BOM, quotes and CR removed; gzip handled)."""
    jvm = spark._jvm
    path, fs = hadoop_fs(spark, uri)
    stream = fs.open(path)
    codec = jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(spark._jsc.hadoopConfiguration()).getCodec(path)
    if codec is not None:
        stream = codec.createInputStream(stream)
    reader = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(stream, "UTF-8"))
    try:
        line = reader.readLine() or ""
    finally:
        reader.close()
    line = line.lstrip("\ufeff").rstrip("\r")
    row = next(csv.reader(io.StringIO(line)), [])
    return [name.strip() for name in row]
