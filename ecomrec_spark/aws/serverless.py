"""EMR Serverless: create (or reuse) an application, run the jobs one after another, follow them, end it.

The requests are :func:`~ecomrec_spark.aws.requests.serverless_requests`; the packed venv and the run
config travel through ``spark.archives``.  boto3 has no waiters for EMR Serverless, so the job runs and
the application's stop are polled by hand here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ecomrec_spark.aws import clients
from ecomrec_spark.aws.clients import EmrError
from ecomrec_spark.aws.layout import PIPELINE, artifact_uris, check_paths, config_path, serverless_job_log_uri
from ecomrec_spark.aws.packaging import plan_uploads, upload
from ecomrec_spark.aws.requests import job_overrides, serverless_requests
from ecomrec_spark.aws.settings import check_serverless_id, resolve_settings
from ecomrec_spark.config import REPO_ROOT

log = logging.getLogger(__name__)

_RUN_BAD = ("FAILED", "CANCELLING", "CANCELLED")

def serverless_up(cfg: Mapping[str, Any], *, overrides: Sequence[str] = (), jobs: Iterable[str] = PIPELINE,
                  wheel: Path | None = None, archive: Path | None = None, wait_for: bool = True,
                  dry_run: bool = False, client: Any = None, s3_client: Any = None, root: Path = REPO_ROOT,
                  sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Create (or reuse ``emr.serverless.application_id``) an application and run the jobs one by one."""
    s = resolve_settings(cfg.get("emr", {}))
    check_paths(cfg.get("paths", {}), s)
    conf_path = config_path(cfg)
    art = artifact_uris(s, conf_name=conf_path.name, root=root)
    requests = serverless_requests(s, jobs, job_overrides(overrides), artifacts=art)
    result: dict[str, Any] = {"mode": "serverless", **requests, "artifacts": art.base}
    if dry_run:
        return result
    files = plan_uploads(s, art, conf_path, archive=archive, root=root, parts=("jobs", "conf", "archive"))
    result["uploads"] = upload(files, art.base, client=clients.client("s3", s["region"], s3_client))
    es = clients.client("emr-serverless", s["region"], client)
    app_id = s["serverless"]["application_id"]
    if app_id is None:
        app_id = es.create_application(**requests["create_application"])["applicationId"]
        log.info("EMR Serverless application %s created (%s)", app_id, s["release_label"])
    result["application_id"] = app_id
    result.update(_run_serverless_jobs(es, app_id, requests["start_job_run"], s, wait_for, sleep))
    return result


def serverless_submit(cfg: Mapping[str, Any], application_id: str | None, *, overrides: Sequence[str] = (),
                      jobs: Iterable[str] = PIPELINE, upload_files: bool = True, wait_for: bool = True,
                      dry_run: bool = False, client: Any = None, s3_client: Any = None, root: Path = REPO_ROOT,
                      sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Run the jobs on an existing EMR Serverless application."""
    s = resolve_settings(cfg.get("emr", {}))
    if application_id is not None or not dry_run:
        check_serverless_id("--application-id", application_id)
    check_paths(cfg.get("paths", {}), s)
    conf_path = config_path(cfg)
    art = artifact_uris(s, conf_name=conf_path.name, root=root)
    requests = serverless_requests(s, jobs, job_overrides(overrides), artifacts=art,
                                   application_id=application_id or "<application-id>")
    result: dict[str, Any] = {"mode": "serverless", "start_job_run": requests["start_job_run"]}
    if dry_run:
        return result
    if upload_files:
        files = plan_uploads(s, art, conf_path, root=root, parts=("jobs", "conf"))
        result["uploads"] = upload(files, art.base, client=clients.client("s3", s["region"], s3_client))
    es = clients.client("emr-serverless", s["region"], client)
    result["application_id"] = application_id
    result.update(_run_serverless_jobs(es, str(application_id), requests["start_job_run"], s, wait_for, sleep))
    return result


def _run_serverless_jobs(es: Any, app_id: str, runs: Sequence[Mapping[str, Any]], s: Mapping[str, Any],
                         wait_for: bool, sleep: Callable[[float], None]) -> dict[str, Any]:
    """Start the job runs in order; each waits for the previous one (one Delta writer at a time)."""
    run_ids = []
    for run in runs:
        run_id = es.start_job_run(**{**run, "applicationId": app_id})["jobRunId"]
        run_ids.append(run_id)
        log.info("job run %s (%s) started; logs: %s", run_id, run["name"], serverless_job_log_uri(s, app_id, run_id))
        if not wait_for:
            if len(runs) > 1:
                log.warning("--no-wait starts only the first job: later jobs need its output")
            break
        wait_job_run(app_id, run_id, client=es, settings=s, timeout=s["wait_timeout_minutes"] * 60, sleep=sleep)
    return {"job_run_ids": run_ids}


def wait_job_run(application_id: str, job_run_id: str, *, client: Any, settings: Mapping[str, Any],
                 timeout: float = 4 * 3600, poll: float = 15.0, max_poll: float = 120.0,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Poll ``get_job_run`` with backoff until SUCCESS; raise :class:`EmrError` on failure or timeout."""
    deadline = clock() + timeout
    delay, last = poll, None
    uri = serverless_job_log_uri(settings, application_id, job_run_id)
    while True:  # polled by hand: boto3 has no EMR Serverless waiters
        run = client.get_job_run(applicationId=application_id, jobRunId=job_run_id)["jobRun"]
        if run["state"] != last:
            log.info("job run %s (%s): %s  logs: %s", job_run_id, run.get("name"), run["state"], uri)
            last = run["state"]
        if run["state"] == "SUCCESS":
            return {"job_run_id": job_run_id, "state": run["state"], "log_uri": uri}
        if run["state"] in _RUN_BAD:
            raise EmrError(f"job run {run.get('name')} ({job_run_id}) {run['state']}: "
                           f"{run.get('stateDetails') or 'no details'}; logs: {uri}SPARK_DRIVER/")
        remaining = deadline - clock()
        if remaining <= 0:
            raise EmrError(f"gave up waiting for job run {job_run_id} after {timeout:.0f} s ({run['state']}); "
                           f"logs: {uri}")
        sleep(min(delay, remaining))
        delay = min(delay * 1.5, max_poll)


def serverless_status(application_id: str, *, client: Any = None, region: str | None = None,
                      settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An application's state and its job runs (newest first)."""
    check_serverless_id("--application-id", application_id)
    es = clients.client("emr-serverless", region, client)
    app = es.get_application(applicationId=application_id)["application"]
    runs = []
    for page in es.get_paginator("list_job_runs").paginate(applicationId=application_id):
        for r in page["jobRuns"]:
            entry = {"id": r["id"], "name": r.get("name"), "state": r["state"]}
            if settings and settings.get("bucket"):
                entry["log_uri"] = serverless_job_log_uri(settings, application_id, r["id"])
            runs.append(entry)
    return {"application_id": application_id, "name": app.get("name"), "state": app["state"], "job_runs": runs}


def serverless_down(application_id: str, *, client: Any = None, region: str | None = None, timeout: float = 600,
                    sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Stop and delete an EMR Serverless application."""
    check_serverless_id("--application-id", application_id)
    es = clients.client("emr-serverless", region, client)
    es.stop_application(applicationId=application_id)
    waited = 0.0
    # polled by hand: boto3 has no EMR Serverless waiters
    while es.get_application(applicationId=application_id)["application"]["state"] not in ("STOPPED", "CREATED"):
        if waited >= timeout:
            raise EmrError(f"application {application_id} did not stop within {timeout:.0f} s; "
                           "retry `ecomrec emr down`")
        sleep(10)
        waited += 10
    es.delete_application(applicationId=application_id)
    state = es.get_application(applicationId=application_id)["application"]["state"]
    return {"application_id": application_id, "state": state}
