"""Listing raw files, fingerprinting their content and reading their header lines through Hadoop's FileSystem.

Going through Hadoop (not ``os``) makes the same code work for local folders,
``s3://`` on EMR and ``s3a://`` locally.  Only file names, sizes, fingerprints
and header lines reach the driver.

A file's fingerprint (:func:`content_hash`) joins path, size and modification
time in the "already ingested" key, so a file rewritten with the same size and
mtime is not skipped:

- an object store that reports an ETag with the listing (S3 through ``s3a://``:
  Hadoop's ``EtagSource``) gives ``etag:<ETag>``.  S3 gives every write of an
  object a new ETag unless the bytes are the same (a single-part upload's ETag
  is its MD5), and it costs no read, where hashing would pull every raw object
  through the driver on every run;
- everything else (local folders, HDFS, a filesystem without ETags such as
  EMRFS ``s3://``) gives ``sha256:<hex>`` of the file's bytes as stored
  (compressed files are not decompressed), streamed in the JVM by commons-codec
  in small buffers, so a large file never sits in driver memory.  This reads
  every listed file once per run: about a second per GB on a local disk.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from py4j.protocol import Py4JError
from pyspark.sql import SparkSession

from ecomrec_spark.storage import hadoop_fs, jvm


@dataclass(frozen=True)
class RawFile:
    path: str  # fully qualified, as Spark's _metadata.file_path reports it
    size: int
    mtime: int  # epoch milliseconds
    content_hash: str  # etag:<ETag> or sha256:<hex>, see content_hash()


def folder_exists(spark: SparkSession, uri: str) -> bool:
    path, fs = hadoop_fs(spark, uri)
    return bool(fs.exists(path)) and bool(fs.getFileStatus(path).isDirectory())


def list_files(spark: SparkSession, folder: str, pattern: str) -> list[RawFile]:
    """Files in ``folder`` matching the glob ``pattern``, sorted by path."""
    glob, fs = hadoop_fs(spark, f"{folder.rstrip('/')}/{pattern}")
    statuses = fs.globStatus(glob) or []
    files = [RawFile(str(s.getPath().toUri()), int(s.getLen()), int(s.getModificationTime()),
                     content_hash(spark, s, fs)) for s in statuses if s.isFile()]
    return sorted(files, key=lambda f: f.path)


def content_hash(spark: SparkSession, status: Any, fs: Any) -> str:
    """``etag:<ETag>`` when the listing carries one, else ``sha256:<hex>`` of the bytes, streamed in the JVM."""
    try:
        etag = status.getEtag()  # org.apache.hadoop.fs.EtagSource (S3A statuses)
    except Py4JError:  # a status class without the method: no ETag from this filesystem
        etag = None
    if etag:
        return "etag:" + str(etag).strip('"')  # S3 quotes its ETags
    stream = fs.open(status.getPath())
    try:
        return "sha256:" + str(jvm(spark).org.apache.commons.codec.digest.DigestUtils.sha256Hex(stream))
    finally:
        stream.close()


def read_header(spark: SparkSession, uri: str) -> list[str]:
    """The column names on a file's first line (BOM, quotes and CR removed; gzip handled)."""
    view = jvm(spark)
    path, fs = hadoop_fs(spark, uri)
    stream = fs.open(path)
    codec = view.org.apache.hadoop.io.compress.CompressionCodecFactory(spark._jsc.hadoopConfiguration()).getCodec(path)
    if codec is not None:
        stream = codec.createInputStream(stream)
    reader = view.java.io.BufferedReader(view.java.io.InputStreamReader(stream, "UTF-8"))
    try:
        line = reader.readLine() or ""
    finally:
        reader.close()
    line = line.lstrip("\ufeff").rstrip("\r")
    row = next(csv.reader(io.StringIO(line)), [])
    return [name.strip() for name in row]
