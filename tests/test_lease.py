"""The lake's writer lease (``ecomrec_spark.lease``): one writer at a time, locally and on S3 (moto's server).

No Spark here: the lease is taken before a command starts its JVM.  The two-ingests-at-once test on a
real lake is in ``test_end_to_end.py``, beside the other tests that run jobs as processes.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest
from test_s3_end_to_end import BUCKET, s3  # noqa: F401  (the moto S3 server fixture)

from ecomrec_spark import lease
from ecomrec_spark.cli import LEASE_HELD_EXIT, main
from ecomrec_spark.lease import LEASE_FILE, LeaseHeld, LocalBackend, S3Backend, acquire, backend_for


def _write_holder(backend, host: str, pid: int, expires_in: float, run_id: str = "old-run") -> None:
    now = time.time()
    doc = {"owner": {"host": host, "pid": pid, "run_id": run_id, "command": "transform"},
           "acquired_at": now - 100, "heartbeat_at": now - 50, "expires_at": now + expires_in}
    assert backend.create(json.dumps(doc)) is not None


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_second_writer_is_refused_naming_the_holder_until_the_first_releases(tmp_path):
    backend = backend_for(str(tmp_path / "lake"))
    assert isinstance(backend, LocalBackend) and backend.where == str(tmp_path / "lake" / LEASE_FILE)
    first = acquire(backend, "ingest", run_id="run-one")
    try:
        with pytest.raises(LeaseHeld) as refused:
            acquire(backend, "transform", run_id="run-two")
        text = str(refused.value)
        assert "`ecomrec ingest` (run run-one" in text and f"pid {first.doc['owner']['pid']}" in text
        assert socket.gethostname() in text and "--break-lock" in text
        # --break-lock never takes a live lease
        with pytest.raises(LeaseHeld, match="has not expired"):
            acquire(backend, "transform", break_lock=True, run_id="run-two")
    finally:
        first.release()
    assert not (tmp_path / "lake" / LEASE_FILE).exists()
    second = acquire(backend, "transform", run_id="run-two")
    assert backend.read()[0]["owner"]["run_id"] == "run-two"
    second.release()


def test_an_expired_lease_is_taken_only_with_break_lock(tmp_path):
    backend = LocalBackend(tmp_path / LEASE_FILE)
    _write_holder(backend, "another-host", 12345, expires_in=-1)  # lapsed, on a host we cannot check
    with pytest.raises(LeaseHeld, match="rerun with --break-lock"):
        acquire(backend, "ingest")
    taken = acquire(backend, "ingest", break_lock=True, run_id="new-run")
    assert backend.read()[0]["owner"] == {**taken.doc["owner"], "run_id": "new-run"}
    taken.release()


def test_a_holder_whose_process_is_gone_from_this_host_is_taken_over_without_a_flag(tmp_path):
    """What lets a killed local run (kill -9) simply be run again."""
    backend = LocalBackend(tmp_path / LEASE_FILE)
    _write_holder(backend, socket.gethostname(), _dead_pid(), expires_in=300)
    taken = acquire(backend, "ingest", run_id="after-the-crash")
    assert backend.read()[0]["owner"]["run_id"] == "after-the-crash"
    taken.release()


def test_the_heartbeat_moves_the_expiry_and_a_lease_taken_over_is_neither_renewed_nor_deleted(tmp_path):
    backend = LocalBackend(tmp_path / LEASE_FILE)
    held = acquire(backend, "build-recommendations", ttl=1.0, heartbeat=0.1, run_id="beating")
    first_expiry = held.doc["expires_at"]
    time.sleep(0.5)
    doc = backend.read()[0]
    assert doc["expires_at"] > first_expiry and doc["heartbeat_at"] > doc["acquired_at"]
    held._stop.set()  # the holder hangs: its lease lapses and another run breaks it
    held._thread.join()
    time.sleep(1.1)
    other = acquire(backend, "ingest", break_lock=True, run_id="breaker")
    assert held.renew() is False and held.lost
    held.release()  # must not delete the breaker's lease
    assert backend.read()[0]["owner"]["run_id"] == "breaker"
    other.release()


def test_the_cli_refuses_a_second_writer_before_spark_starts(tmp_path, capsys):
    lake = tmp_path / "lake"
    held = acquire(backend_for(str(lake)), "transform", run_id="the-holder")
    try:
        rc = main(["ingest", "--set", f"paths.raw={tmp_path}", "--set", f"paths.lake={lake}"])
    finally:
        held.release()
    err = capsys.readouterr().err
    assert rc == LEASE_HELD_EXIT
    assert err.startswith("ecomrec ingest: lake busy: the lake is being written by another run") and "the-holder" in err
    assert not (lake / "bronze").exists()  # nothing was written


def test_s3_lease_is_a_conditional_put_renewed_and_deleted_by_etag(s3):  # noqa: F811
    conf = {"spark.hadoop.fs.s3a.endpoint": s3["endpoint"]}
    backend = backend_for(f"s3a://{BUCKET}/lease-lake", conf)
    assert isinstance(backend, S3Backend) and backend.where == f"s3://{BUCKET}/lease-lake/{LEASE_FILE}"
    first = acquire(backend, "ingest", run_id="s3-one", heartbeat=3600)
    try:
        with pytest.raises(LeaseHeld, match="run s3-one"):
            acquire(backend_for(f"s3://{BUCKET}/lease-lake", conf), "transform")
        old_etag = first.token
        assert first.renew() and first.token != old_etag  # If-Match on the current ETag
        assert backend.replace("{}", old_etag) is None  # a stale ETag can neither overwrite
        assert backend.delete(old_etag) is False  # nor delete
    finally:
        first.release()
    assert backend.read() is None
    # an expired holder elsewhere: --break-lock takes it, conditionally on the ETag it read
    _write_holder(backend, "emr-master-1", 4242, expires_in=-5)
    with pytest.raises(LeaseHeld, match="emr-master-1"):
        acquire(backend, "ingest")
    taken = acquire(backend, "ingest", break_lock=True, run_id="s3-two", heartbeat=3600)
    assert backend.read()[0]["owner"]["run_id"] == "s3-two"
    taken.release()


def test_an_unsupported_lake_scheme_is_a_config_error():
    from ecomrec_spark.config import ConfigError

    with pytest.raises(ConfigError, match="paths.lake = hdfs://nn/lake"):
        lease.backend_for("hdfs://nn/lake")
