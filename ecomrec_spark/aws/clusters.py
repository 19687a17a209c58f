"""EMR on EC2: create a cluster with the pipeline steps, add steps, follow them, read their logs, end it.

:func:`up` checks the network (:func:`check_private_subnet`) and the security configuration
(:func:`ensure_security_configuration`) before anything is built or uploaded, then packages, uploads and
sends :func:`~ecomrec_spark.aws.requests.cluster_request`; :func:`submit` adds steps to a running cluster;
:func:`status`, :func:`wait`, :func:`logs` and :func:`down` follow and end it.  With ``emr.mode:
serverless``, :func:`up` and :func:`submit` hand over to :mod:`ecomrec_spark.aws.serverless`.
"""

from __future__ import annotations

import gzip
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError, WaiterError

from ecomrec_spark.aws import clients
from ecomrec_spark.aws.clients import EmrError, waiter_config
from ecomrec_spark.aws.layout import PIPELINE, artifact_uris, check_paths, config_path, normal_log_uri, step_log_uri
from ecomrec_spark.aws.packaging import (
    build_wheel,
    build_wheelhouse,
    node_architectures,
    plan_uploads,
    upload,
    wheelhouse_wheel,
)
from ecomrec_spark.aws.requests import (
    check_security_configuration,
    cluster_request,
    job_overrides,
    security_configuration_request,
    step_requests,
)
from ecomrec_spark.aws.serverless import serverless_submit, serverless_up
from ecomrec_spark.aws.settings import (
    bad_setting,
    check_cluster_id,
    check_s3_uri,
    check_step_id,
    node_python_version,
    resolve_settings,
)
from ecomrec_spark.config import REPO_ROOT

log = logging.getLogger(__name__)

_STEP_BAD = ("FAILED", "CANCELLED", "INTERRUPTED")
_CLUSTER_DEAD = ("TERMINATING", "TERMINATED", "TERMINATED_WITH_ERRORS")

def check_private_subnet(subnet_id: str, *, ec2_client: Any = None, region: str | None = None) -> None:
    """Refuse a subnet the internet can reach: one that maps public IPs on launch, or whose route table
    (its own, else the VPC's main one) sends ``0.0.0.0/0`` or ``::/0`` to an internet gateway.

    Raises
    ------
    ValueError
        Naming ``emr.subnet_id`` and ``emr.require_private_subnet`` (the key that allows it on purpose).
    """
    ec2 = clients.client("ec2", region, ec2_client)
    subnet = ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]
    tables = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}])
    if not tables["RouteTables"]:  # no explicit association: the VPC's main route table applies
        tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [subnet["VpcId"]]},
                                                    {"Name": "association.main", "Values": ["true"]}])
    to_igw = [r for table in tables["RouteTables"] for r in table.get("Routes", [])
              if str(r.get("GatewayId", "")).startswith("igw-")
              and (r.get("DestinationCidrBlock") == "0.0.0.0/0" or r.get("DestinationIpv6CidrBlock") == "::/0")]
    why = ("maps public IP addresses on launch" if subnet.get("MapPublicIpOnLaunch")
           else f"routes to the internet gateway {to_igw[0]['GatewayId']}" if to_igw else None)
    if why:
        raise bad_setting("emr.subnet_id", subnet_id, f"is a public subnet: it {why}",
                          "use a private subnet (a NAT gateway or VPC endpoints for S3, Glue, DynamoDB and KMS), "
                          "or set emr.require_private_subnet: false on purpose")


def ensure_security_configuration(s: Mapping[str, Any], *, emr_client: Any = None) -> str | None:
    """Check the named security configuration, or create the one :func:`security_configuration_request`
    describes if it does not exist yet; return the name the cluster uses (``None``: everything off)."""
    emr = clients.client("emr", s["region"], emr_client)
    wanted = security_configuration_request(s)
    name = s["security_configuration"] or (wanted["Name"] if wanted else None)
    if name is None:
        return None
    try:
        found = emr.describe_security_configuration(Name=name)
    except ClientError as exc:
        if wanted is None:  # a named configuration must exist
            raise bad_setting("emr.security_configuration", name, f"cannot be read ({exc})",
                              "create it first (aws emr create-security-configuration) or set it to null") from None
        emr.create_security_configuration(**wanted)
        log.info("created EMR security configuration %s", name)
        return name
    check_security_configuration(name, json.loads(found["SecurityConfiguration"]), s)
    return name


def up(cfg: Mapping[str, Any], *, overrides: Sequence[str] = (), jobs: Iterable[str] = PIPELINE,
       wheel: Path | None = None, wheelhouse: Path | None = None, archive: Path | None = None,
       with_steps: bool = True, wait_for: bool = True,
       dry_run: bool = False, emr_client: Any = None, s3_client: Any = None, serverless_client: Any = None,
       ec2_client: Any = None, root: Path = REPO_ROOT,
       sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Check the network and the security configuration, build, upload, create the cluster with the
    pipeline steps and (optionally) wait for them.

    Parameters
    ----------
    cfg : mapping
        A loaded run config (:func:`ecomrec_spark.config.load_config`) with an ``emr:`` section.
    overrides : sequence of str
        The ``--set`` overrides used to load ``cfg``; all but ``emr.*`` are forwarded to the jobs.
    jobs : iterable of str
        Which pipeline jobs to run (default: all six, in order).
    wheel, wheelhouse, archive : Path, optional
        A prebuilt wheel, a prebuilt wheelhouse folder (:func:`build_wheelhouse`: the wheel, its
        dependencies and ``requirements.lock``) or a packed venv; default: :func:`build_wheel` then
        :func:`build_wheelhouse` for the nodes' Python and architectures (archive shipping needs ``archive``).
    with_steps : bool
        ``False`` creates an idle cluster (auto-termination still applies) for :func:`submit`.
    wait_for : bool
        Wait for the steps (:func:`wait`), logging each with its log URI.
    dry_run : bool
        Validate and return the requests without building, uploading or calling AWS.
    emr_client, s3_client, serverless_client, ec2_client : boto3 clients, optional
        Injected clients (tests); default: new clients in ``emr.region``.

    Returns
    -------
    dict
        ``mode``, ``run_job_flow`` (the request), ``create_security_configuration`` (the request, used
        when no configuration of that name exists yet), ``uploads``, and after a real run ``cluster_id``,
        ``step_ids``, ``log_uri`` and ``status``.
    """
    s = resolve_settings(cfg.get("emr", {}))
    if s["mode"] == "serverless":
        return serverless_up(cfg, overrides=overrides, jobs=jobs, wheel=wheel, archive=archive, wait_for=wait_for,
                             dry_run=dry_run, client=serverless_client, s3_client=s3_client, root=root, sleep=sleep)
    conf_path = config_path(cfg)
    if wheelhouse is not None:
        wheel = wheelhouse_wheel(wheelhouse)
    art = artifact_uris(s, wheel=Path(wheel).name if wheel else None, conf_name=conf_path.name, root=root)
    steps: list[dict[str, Any]] = []
    if with_steps:
        steps = step_requests(jobs, art.conf, job_overrides(overrides), jobs_uri=art.jobs,
                              action_on_failure=s["action_on_failure"], submit_args=s["spark_submit_args"])
    request = cluster_request(s, cfg.get("paths", {}), art.wheel, steps=steps, bootstrap_uri=art.bootstrap,
                              archive_uri=art.venv)
    result: dict[str, Any] = {"mode": "cluster", "run_job_flow": request, "artifacts": art.base,
                              "create_security_configuration": security_configuration_request(s)}
    if dry_run:
        return result
    # the network and the security configuration are checked before anything is built or uploaded
    if s["require_private_subnet"]:
        check_private_subnet(s["subnet_id"], ec2_client=ec2_client, region=s["region"])
    emr = clients.client("emr", s["region"], emr_client)
    ensure_security_configuration(s, emr_client=emr)
    if s["shipping"] == "bootstrap" and wheelhouse is None:
        wheelhouse = build_wheelhouse(wheel or build_wheel(root), root / "dist" / "wheelhouse",
                                      python_version=node_python_version(s), architectures=node_architectures(s),
                                      root=root)
    files = plan_uploads(s, art, conf_path, wheelhouse=wheelhouse, archive=archive, root=root)
    result["uploads"] = upload(files, art.base, client=clients.client("s3", s["region"], s3_client))
    cluster_id = emr.run_job_flow(**request)["JobFlowId"]
    log.info("cluster %s starting (%s, %s); logs under %s%s/", cluster_id, s["release_label"], s["region"],
             s["log_uri"], cluster_id)
    by_name = {st["name"]: st["id"] for st in status(cluster_id, emr_client=emr)["steps"]}
    step_ids = [by_name[st["Name"]] for st in steps if st["Name"] in by_name]  # pipeline order
    result.update(cluster_id=cluster_id, step_ids=step_ids, log_uri=f"{s['log_uri']}{cluster_id}/")
    if wait_for and step_ids:
        result["status"] = wait(cluster_id, step_ids, emr_client=emr, timeout=s["wait_timeout_minutes"] * 60)
    return result


def submit(cfg: Mapping[str, Any], cluster_id: str | None = None, *, overrides: Sequence[str] = (),
           jobs: Iterable[str] = PIPELINE, upload_files: bool = True, wait_for: bool = False, dry_run: bool = False,
           emr_client: Any = None, s3_client: Any = None, serverless_client: Any = None, root: Path = REPO_ROOT,
           sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Add the pipeline steps to a running cluster (``add_job_flow_steps``).

    The jobs and the run config are uploaded again first, so config or job-script changes need no new
    cluster; a changed library needs a new ``up`` (the wheel is installed at bootstrap).  With
    ``dry_run`` (and no cluster id) the result holds both the ``run_job_flow`` request ``up`` would
    send and the ``add_job_flow_steps`` request.

    Returns
    -------
    dict
        ``add_job_flow_steps`` (the request), and after a real run ``step_ids`` and ``status``.
    """
    s = resolve_settings(cfg.get("emr", {}))
    if s["mode"] == "serverless":
        app = cluster_id or s["serverless"]["application_id"]
        return serverless_submit(cfg, app, overrides=overrides, jobs=jobs, upload_files=upload_files,
                                 wait_for=wait_for, dry_run=dry_run, client=serverless_client, s3_client=s3_client,
                                 root=root, sleep=sleep)
    if cluster_id is not None or not dry_run:
        check_cluster_id(cluster_id)
    conf_path = config_path(cfg)
    art = artifact_uris(s, conf_name=conf_path.name, root=root)
    check_paths(cfg.get("paths", {}), s)
    steps = step_requests(jobs, art.conf, job_overrides(overrides), jobs_uri=art.jobs,
                          action_on_failure=s["action_on_failure"], submit_args=s["spark_submit_args"])
    request = {"JobFlowId": cluster_id or "<cluster-id from run_job_flow>", "Steps": steps}
    result: dict[str, Any] = {"mode": "cluster", "add_job_flow_steps": request}
    if dry_run:
        if cluster_id is None:
            result["run_job_flow"] = cluster_request(s, cfg.get("paths", {}), art.wheel, bootstrap_uri=art.bootstrap,
                                                     archive_uri=art.venv)
        return result
    if upload_files:
        files = plan_uploads(s, art, conf_path, root=root, parts=("jobs", "conf"))
        result["uploads"] = upload(files, art.base, client=clients.client("s3", s["region"], s3_client))
    emr = clients.client("emr", s["region"], emr_client)
    step_ids = emr.add_job_flow_steps(**request)["StepIds"]
    log.info("added %d step(s) to %s: %s", len(step_ids), cluster_id, ", ".join(step_ids))
    result["step_ids"] = step_ids
    if wait_for:
        result["status"] = wait(str(cluster_id), step_ids, emr_client=emr, timeout=s["wait_timeout_minutes"] * 60)
    return result


def status(cluster_id: str, *, emr_client: Any = None, region: str | None = None) -> dict[str, Any]:
    """A cluster's state and its steps (oldest first) with their states and log URIs.

    Returns
    -------
    dict
        ``cluster_id``, ``name``, ``state``, ``reason``, ``log_uri`` and ``steps``: a list of
        ``{"id", "name", "state", "reason", "log_uri"}``.
    """
    check_cluster_id(cluster_id)
    emr = clients.client("emr", region, emr_client)
    cluster = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
    log_uri = normal_log_uri(cluster.get("LogUri"))
    steps = []
    for page in emr.get_paginator("list_steps").paginate(ClusterId=cluster_id):
        steps.extend(page["Steps"])
    steps.reverse()  # EMR lists the newest first
    out_steps = []
    for st in steps:
        st_status = st.get("Status", {})
        failure = st_status.get("FailureDetails") or {}
        reason = (failure.get("Message") or failure.get("Reason")
                  or (st_status.get("StateChangeReason") or {}).get("Message"))
        out_steps.append({"id": st["Id"], "name": st.get("Name", ""), "state": st_status.get("State"),
                          "reason": reason, "log_uri": step_log_uri(log_uri, cluster_id, st["Id"])})
    c_status = cluster.get("Status", {})
    return {
        "cluster_id": cluster_id,
        "name": cluster.get("Name"),
        "state": c_status.get("State"),
        "reason": (c_status.get("StateChangeReason") or {}).get("Message"),
        "log_uri": f"{log_uri}{cluster_id}/" if log_uri else None,
        "steps": out_steps,
    }


def wait(cluster_id: str, step_ids: Sequence[str] | None = None, *, emr_client: Any = None,
         region: str | None = None, timeout: float = 4 * 3600, poll: float = 30.0) -> dict[str, Any]:
    """Wait with boto3's EMR waiters until the steps complete (or, without steps, until the cluster is up).

    The cluster runs one step at a time (``StepConcurrencyLevel`` 1), so the steps are waited for in
    order with the ``step_complete`` waiter; each is logged with its S3 log URI when its wait starts and
    when it completes.  Without steps, the ``cluster_running`` waiter waits for RUNNING or WAITING.

    Parameters
    ----------
    step_ids : sequence of str, optional
        Steps of ``cluster_id`` (``s-...``), in the order they run; default: wait for the cluster only.
    timeout : float
        Seconds for the whole wait.
    poll : float
        Seconds between two ``describe_*`` calls (the waiters' ``Delay``).

    Returns
    -------
    dict
        :func:`status` once everything waited for is done.

    Raises
    ------
    EmrError
        When a step fails or is cancelled, the cluster terminates first, or ``timeout`` seconds pass;
        the message names the step, its state and its log URI.
    """
    check_cluster_id(cluster_id)
    for sid in step_ids or ():
        check_step_id(sid)
    emr = clients.client("emr", region, emr_client)
    deadline = time.monotonic() + timeout
    try:
        if not step_ids:
            emr.get_waiter("cluster_running").wait(ClusterId=cluster_id, WaiterConfig=waiter_config(timeout, poll))
        else:
            by_id = {x["id"]: x for x in status(cluster_id, emr_client=emr)["steps"]}
            unknown = [sid for sid in step_ids if sid not in by_id]
            if unknown:
                raise EmrError(f"step {unknown[0]} is not a step of cluster {cluster_id}; "
                               f"see `ecomrec emr status --cluster-id {cluster_id}`")
            for sid in step_ids:
                step = by_id[sid]
                log.info("step %s (%s): waiting  logs: %s", step["name"], sid, step["log_uri"])
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    _raise_why(status(cluster_id, emr_client=emr), step_ids, timeout)
                emr.get_waiter("step_complete").wait(ClusterId=cluster_id, StepId=sid,
                                                     WaiterConfig=waiter_config(remaining, poll))
                log.info("step %s (%s): COMPLETED", step["name"], sid)
    except WaiterError:
        _raise_why(status(cluster_id, emr_client=emr), step_ids, timeout)
    st = status(cluster_id, emr_client=emr)
    log.info("cluster %s: %s", cluster_id, st["state"])
    return st


def _raise_why(st: Mapping[str, Any], step_ids: Sequence[str] | None, timeout: float) -> None:
    """Turn a waiter's failure into an :class:`EmrError` saying which step failed, or that the cluster
    died, or that time ran out (the waiter only says that it stopped)."""
    cluster_id = st["cluster_id"]
    steps = [x for x in st["steps"] if x["id"] in set(step_ids or ())]
    bad = [x for x in steps if x["state"] in _STEP_BAD]
    if bad:
        x = bad[0]
        raise EmrError(f"step '{x['name']}' ({x['id']}) {x['state']}: {x['reason'] or 'no reason given'}; "
                       f"logs: {x['log_uri']} (ecomrec emr logs --cluster-id {cluster_id} --step-id {x['id']})")
    if st["state"] in _CLUSTER_DEAD:
        raise EmrError(f"cluster {cluster_id} is {st['state']} before its steps finished: "
                       f"{st['reason'] or 'no reason given'}; logs: {st['log_uri']}")
    states = ", ".join(f"{x['name']}={x['state']}" for x in steps) or "no steps"
    raise EmrError(f"gave up waiting for cluster {cluster_id} after {timeout:.0f} s ({st['state']}; {states}); "
                   f"it keeps running: `ecomrec emr status --cluster-id {cluster_id}` or "
                   f"`ecomrec emr down --cluster-id {cluster_id}`")

def logs(cluster_id: str, step_id: str, *, emr_client: Any = None, s3_client: Any = None,
         region: str | None = None, tail: int = 0) -> dict[str, Any]:
    """The S3 log folder of a step and the files in it (stderr, stdout, controller, syslog).

    EMR copies step logs to S3 about every five minutes, so a running step may show none yet.  The
    driver's own log (cluster deploy mode) is under ``<LogUri>/<cluster-id>/containers/``.

    Parameters
    ----------
    tail : int
        When > 0, also return the last ``tail`` lines of stderr (gunzipped).
    """
    check_cluster_id(cluster_id)
    check_step_id(step_id)
    emr = clients.client("emr", region, emr_client)
    log_uri = normal_log_uri(emr.describe_cluster(ClusterId=cluster_id)["Cluster"].get("LogUri"))
    if not log_uri:
        raise EmrError(f"cluster {cluster_id} has no LogUri; its step logs were not copied to S3")
    uri = step_log_uri(log_uri, cluster_id, step_id)
    bucket, prefix = check_s3_uri("LogUri", uri)
    s3 = clients.client("s3", region, s3_client)
    files = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            files.append({"name": obj["Key"][len(prefix):], "size": obj["Size"], "uri": f"s3://{bucket}/{obj['Key']}"})
    out: dict[str, Any] = {"uri": uri, "files": files, "containers_uri": f"{log_uri}{cluster_id}/containers/"}
    if tail > 0:
        stderr = next((f for f in files if f["name"] in ("stderr.gz", "stderr")), None)
        if stderr:
            body = s3.get_object(Bucket=bucket, Key=prefix + stderr["name"])["Body"].read()
            text = (gzip.decompress(body) if stderr["name"].endswith(".gz") else body).decode("utf-8", "replace")
            out["stderr_tail"] = text.splitlines()[-tail:]
    return out


def down(cluster_id: str, *, emr_client: Any = None, region: str | None = None) -> dict[str, Any]:
    """Terminate a cluster (``terminate_job_flows``) and return its state afterwards."""
    check_cluster_id(cluster_id)
    emr = clients.client("emr", region, emr_client)
    emr.terminate_job_flows(JobFlowIds=[cluster_id])
    state = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]["Status"]["State"]
    log.info("cluster %s: %s", cluster_id, state)
    return {"cluster_id": cluster_id, "state": state}
