"""S3 URIs and ``ecomrec upload-raw``: copy a local raw folder to S3 with boto3.

The jobs read ``s3://`` on EMR and ``s3a://`` locally; both name the same
object, so every function here accepts either scheme.  Credentials come from
boto3's default chain (environment, profile, SSO, container or instance role),
never from the config.  For a local S3 API (moto, MinIO) pass ``endpoint_url``
or set ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3``, which boto3 reads itself.

Uploads are idempotent: a file whose object already has the same size and
MD5 is skipped, so re-running after a failure only sends what is missing.

>>> parse_s3_uri("s3a://my-bucket/raw/olist")
('my-bucket', 'raw/olist')
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ecomrec_spark.identifiers import validate_bucket  # the project's one bucket rule

log = logging.getLogger(__name__)

SCHEMES = ("s3://", "s3a://")
MAX_KEY_BYTES = 1024
MD5_METADATA = "md5"  # x-amz-meta-md5: the file's MD5, so multipart objects can be compared too
PART_SIZE = 8 * 1024 * 1024  # boto3's default multipart threshold and chunk size
_CHUNK = 1 << 20
UPLOAD_RAW_HELP = "upload a local raw folder to S3 with boto3 (files already there unchanged are skipped)"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/prefix`` (or ``s3a://``) into ``(bucket, prefix)``, validating both.

    The prefix has no leading or trailing ``/`` and may be empty (the bucket root).

    Parameters
    ----------
    uri : an ``s3://`` or ``s3a://`` URI.

    Raises
    ------
    ValueError
        For another scheme, a bad bucket name, or a prefix with empty, ``.`` or
        ``..`` segments, control characters or more than 1024 bytes.

    Examples
    --------
    >>> parse_s3_uri("s3://ecomrec-data/raw/")
    ('ecomrec-data', 'raw')
    >>> parse_s3_uri("s3a://ecomrec-data")
    ('ecomrec-data', '')
    """
    if not isinstance(uri, str) or not uri.startswith(SCHEMES):
        raise ValueError(f"{uri!r} is not an S3 URI: use s3://bucket/prefix (or s3a://bucket/prefix)")
    rest = uri.split("://", 1)[1]
    bucket, _, prefix = rest.partition("/")
    validate_bucket(bucket)
    prefix = prefix.rstrip("/")
    if prefix:
        segments = prefix.split("/")
        if any(s in ("", ".", "..") for s in segments):
            raise ValueError(f"{uri!r}: the key prefix {prefix!r} has an empty, '.' or '..' segment")
        if any(ord(c) < 32 or ord(c) == 127 for c in prefix):
            raise ValueError(f"{uri!r}: the key prefix has control characters")
        if len(prefix.encode("utf-8")) >= MAX_KEY_BYTES:
            raise ValueError(f"{uri!r}: the key prefix is longer than S3's {MAX_KEY_BYTES}-byte key limit")
    return bucket, prefix


def _local_files(root: Path) -> Iterator[Path]:
    """Every regular file under ``root`` in name order; dot-files (``.crc``, ``.DS_Store``) are left out."""
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and not any(part.startswith(".") for part in rel.parts):
            yield path


def _md5(path: Path, part_size: int = PART_SIZE) -> tuple[str, str]:
    """``(md5, multipart ETag)`` of a file: the plain MD5 and S3's ``md5(part md5s)-N`` for ``part_size`` parts."""
    whole, parts = hashlib.md5(usedforsecurity=False), []
    with path.open("rb") as fh:
        part, filled = hashlib.md5(usedforsecurity=False), 0
        while chunk := fh.read(min(_CHUNK, part_size - filled)):
            whole.update(chunk)
            part.update(chunk)
            filled += len(chunk)
            if filled == part_size:
                parts.append(part.digest())
                part, filled = hashlib.md5(usedforsecurity=False), 0
        if filled:
            parts.append(part.digest())
    multipart = f"{hashlib.md5(b''.join(parts), usedforsecurity=False).hexdigest()}-{len(parts)}"
    return whole.hexdigest(), multipart


def _same_object(head: dict[str, Any], size: int, md5: str, multipart_etag: str) -> bool:
    if int(head.get("ContentLength", -1)) != size:
        return False
    etag = str(head.get("ETag", "")).strip('"')
    return md5 in (etag, (head.get("Metadata") or {}).get(MD5_METADATA)) or etag == multipart_etag


def _plan(local_dir: str | Path, s3_uri: str) -> tuple[Path, str, str, list[tuple[Path, str]]]:
    """Validate everything before any AWS call: the folder, the URI and every key."""
    root = Path(local_dir)
    if not root.is_dir():
        raise ValueError(f"--from {str(local_dir)!r} is not a local folder "
                         "(generate one with `ecomrec generate --out DIR`)")
    bucket, prefix = parse_s3_uri(s3_uri)
    files = []
    for path in _local_files(root):
        key = "/".join(filter(None, [prefix, path.relative_to(root).as_posix()]))
        if len(key.encode("utf-8")) > MAX_KEY_BYTES:
            raise ValueError(f"{path}: the S3 key {key[:80]!r}... is longer than {MAX_KEY_BYTES} bytes")
        files.append((path, key))
    if not files:
        raise ValueError(f"--from {str(root)!r} holds no files to upload")
    return root, bucket, prefix, files


def upload_raw(local_dir: str | Path, s3_uri: str, client: Any = None, endpoint_url: str | None = None) -> list[str]:
    """Upload every file under ``local_dir`` to ``s3_uri``, keeping the relative layout.

    ``data/generated/olist/x.csv`` with ``s3://bucket/raw`` becomes
    ``s3://bucket/raw/olist/x.csv``.  Files whose object already exists with the
    same size and MD5 are skipped.  All arguments and keys are checked before
    the first request.

    Parameters
    ----------
    local_dir : the local raw folder (one sub-folder per source).
    s3_uri : ``s3://bucket/prefix`` or ``s3a://bucket/prefix``.
    client : a boto3 S3 client; by default one is made from the default credential chain.
    endpoint_url : an S3 API endpoint for that default client (moto, MinIO); ``AWS_ENDPOINT_URL`` also works.

    Returns
    -------
    list of str
        The URIs (in the scheme of ``s3_uri``) of the objects uploaded by this call, in name order.

    Examples
    --------
    >>> upload_raw("data/generated", "s3://my-bucket/raw")  # doctest: +SKIP
    ['s3://my-bucket/raw/events/events.csv', 's3://my-bucket/raw/olist/olist_customers_dataset.csv', ...]
    """
    from botocore.exceptions import ClientError

    root, bucket, prefix, files = _plan(local_dir, s3_uri)
    if client is None:
        import boto3

        client = boto3.client("s3", endpoint_url=endpoint_url) if endpoint_url else boto3.client("s3")
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchBucket"):
            raise ValueError(f"bucket {bucket!r} does not exist "
                             f"(create it first, e.g. `aws s3 mb s3://{bucket}`)") from None
        raise
    scheme = s3_uri.split("://", 1)[0]
    uploaded, skipped = [], 0
    for path, key in files:
        size = path.stat().st_size
        md5, multipart_etag = _md5(path)
        try:
            head = client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code", "") not in ("404", "NoSuchKey", "NotFound"):
                raise
            head = None
        if head is not None and _same_object(head, size, md5, multipart_etag):
            skipped += 1
            log.debug("unchanged, skipped: s3://%s/%s", bucket, key)
            continue
        log.info("uploading %s -> s3://%s/%s (%d bytes)", path, bucket, key, size)
        client.upload_file(str(path), bucket, key, ExtraArgs={"Metadata": {MD5_METADATA: md5}})
        uploaded.append(f"{scheme}://{bucket}/{key}")
    log.info("upload-raw: %d file(s) uploaded, %d unchanged, from %s to %s://%s/%s",
             len(uploaded), skipped, root, scheme, bucket, prefix)
    return uploaded


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``upload-raw`` arguments, for the ``ecomrec`` sub-command parser."""
    parser.add_argument("--from", dest="from_dir", required=True, metavar="DIR",
                        help="local raw folder (one sub-folder per source), e.g. data/generated")
    parser.add_argument("--to", dest="to_uri", required=True, metavar="URI",
                        help="target s3://bucket/prefix (s3a:// also accepted), e.g. s3://my-bucket/raw")
    parser.add_argument("--endpoint-url", default=None, metavar="URL",
                        help="S3 API endpoint for a local S3 (moto, MinIO); default: AWS, or $AWS_ENDPOINT_URL")


def run(args: argparse.Namespace) -> int:
    """Run ``upload-raw`` from parsed arguments; a known problem is one line on stderr and exit code 2."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        uploaded = upload_raw(args.from_dir, args.to_uri, endpoint_url=args.endpoint_url)
    except ValueError as exc:
        print(f"ecomrec upload-raw: error: {exc}", file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as exc:  # no credentials, access denied, endpoint down
        print(f"ecomrec upload-raw: AWS error: {exc}", file=sys.stderr)
        return 2
    print(f"upload-raw: {len(uploaded)} file(s) uploaded to {args.to_uri.rstrip('/')} (unchanged files skipped)")
    for uri in uploaded:
        print(f"  {uri}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``ecomrec upload-raw --from DIR --to s3://bucket/raw [--endpoint-url URL]``."""
    parser = argparse.ArgumentParser(prog="ecomrec upload-raw", description=UPLOAD_RAW_HELP)
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
