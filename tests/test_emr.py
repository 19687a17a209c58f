"""The EMR launcher against moto: exact requests, the cluster life cycle, uploads, IAM and validation.

No Spark and no AWS account: moto's ``mock_aws`` serves EMR, EMR Serverless and S3 in-process, and
the fake credentials exist only inside each test (monkeypatch).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

import boto3
import pytest
import yaml
from botocore.validate import ParamValidator
from moto import mock_aws

from ecomrec_spark import config
from ecomrec_spark.aws import cli, clients, clusters, iam, layout, packaging, requests, serverless, settings

REGION = "eu-west-1"
BUCKET = "ecomrec-test"
ACCOUNT = "123456789012"  # moto's default account
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/ecomrec-emr-serverless-job"
BASE = f"s3://{BUCKET}/artifacts/ecomrec-{layout.project_version()}/"
WHEEL = f"ecomrec_spark-{layout.project_version()}-py3-none-any.whl"
SUBNET = "subnet-0123456789abcdef0"
DISK_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
CERTS = f"s3://{BUCKET}/artifacts/certs/emr.zip"
# the least a launch needs with the safe defaults: a private subnet, the local-disk key and the TLS certificates
SECURE = {"subnet_id": SUBNET, "encryption": {"local_disk_kms_key": DISK_KEY, "tls_certificates": CERTS}}
SETTINGS = {"bucket": BUCKET, "region": REGION, **SECURE}
# the security configuration the defaults ask for, in EMR's SecurityConfiguration JSON schema
SECURITY_DOC = {"EncryptionConfiguration": {
    "EnableAtRestEncryption": True,
    "EnableInTransitEncryption": True,
    "AtRestEncryptionConfiguration": {
        "S3EncryptionConfiguration": {"EncryptionMode": "SSE-S3"},
        "LocalDiskEncryptionConfiguration": {"EncryptionKeyProviderType": "AwsKms", "AwsKmsKey": DISK_KEY,
                                             "EnableEbsEncryption": True}},
    "InTransitEncryptionConfiguration": {"TLSCertificateConfiguration": {"CertificateProviderType": "PEM",
                                                                         "S3Object": CERTS}}}}
SECURITY_NAME = "ecomrec-" + hashlib.sha256(
    json.dumps(SECURITY_DOC, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]
PATHS = {"raw": f"s3://{BUCKET}/raw", "lake": f"s3://{BUCKET}/lake", "reports": f"s3://{BUCKET}/reports"}
EXPECTED_JOBS = ["ingest", "transform", "train-review", "score-reviews", "build-recommendations",
                 "evaluate-recommendations", "insights", "ab-report", "register-tables", "report", "publish"]
EXPECTED_SCRIPTS = ["ingest.py", "transform.py", "train_review_model.py", "score_reviews.py",
                    "build_recommendations.py", "evaluate_recommendations.py", "insights.py", "ab_report.py",
                    "register_tables.py", "report.py", "publish.py"]


def _validate(service: str, operation: str, params: dict) -> None:
    """Check a request against botocore's service model, as boto3 would before sending it."""
    model = boto3.session.Session().client(service, region_name=REGION).meta.service_model
    shape = model.operation_model(operation).input_shape
    tokens = {name: "token" for name, member in shape.members.items() if member.metadata.get("idempotencyToken")}
    report = ParamValidator().validate({**tokens, **params}, shape)  # boto3 fills idempotency tokens itself
    assert not report.has_errors(), report.generate_report()


@pytest.fixture
def aws(monkeypatch):
    """moto in-process, with fake credentials that exist only for this test."""
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        boto3.client("s3", region_name=REGION).create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield


@pytest.fixture
def no_boto(monkeypatch):
    """Fail the test if anything creates a boto3 client: validation must come first."""
    def forbidden(*args, **kwargs):
        raise AssertionError(f"boto3 client created before validation finished: {args}")

    monkeypatch.setattr(boto3, "client", forbidden)


@pytest.fixture
def conf_file(tmp_path):
    """A run config like conf/emr.yaml with <bucket> placeholders."""
    path = tmp_path / "emr.yaml"
    path.write_text(yaml.safe_dump({
        "paths": {"raw": "s3://<bucket>/raw", "lake": "s3://<bucket>/lake", "generated": "s3://<bucket>/generated",
                  "reports": "s3://<bucket>/reports"},
        "spark": {"master": None, "app_name": "ecomrec", "shuffle_partitions": 200, "delta_packages": []},
        "emr": {"bucket": BUCKET, "region": REGION, **SECURE},
    }, sort_keys=False))
    return path


@pytest.fixture
def cfg(conf_file):
    overrides = [f"paths.{k}=s3://{BUCKET}/{k}" for k in ("raw", "lake", "generated", "reports")]
    loaded = config.load_config(conf_file, overrides)
    loaded["_overrides"] = overrides
    return loaded


@pytest.fixture
def wheel(tmp_path):
    path = tmp_path / WHEEL
    path.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip stands in for the built wheel
    return path


@pytest.fixture
def wheelhouse(tmp_path, wheel):
    """A locked wheelhouse: the project wheel and one dependency (pip download is not run here)."""
    folder = tmp_path / "wheelhouse"
    folder.mkdir()
    (folder / WHEEL).write_bytes(wheel.read_bytes())
    (folder / "six-1.17.0-py2.py3-none-any.whl").write_bytes(b"six wheel")
    packaging.lock_wheelhouse(folder)
    return folder


@pytest.fixture
def private_subnet(aws):
    """A subnet in moto's EC2 with no route to an internet gateway and no public IPs on launch."""
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    return ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24")["Subnet"]["SubnetId"]


def _step_args(job: str, script: str, sets: list[str]) -> list[str]:
    return ["spark-submit", "--deploy-mode", "cluster", "--files", f"{BASE}conf/emr.yaml",
            f"{BASE}jobs/{script}", "--conf", "emr.yaml", *[a for s in sets for a in ("--set", s)]]


# ----------------------------------------------------------------------------------------------
# Exact requests
# ----------------------------------------------------------------------------------------------

def test_cluster_request_is_exact():
    art = layout.artifact_uris(settings.resolve_settings(SETTINGS))
    request = requests.cluster_request(SETTINGS, PATHS, art.wheel)
    assert request == {
        "Name": "ecomrec",
        "ReleaseLabel": "emr-spark-8.0.0",
        "LogUri": f"s3://{BUCKET}/logs/emr/",
        "Applications": [{"Name": "Hadoop"}, {"Name": "Spark"}],
        "Instances": {
            "KeepJobFlowAliveWhenNoSteps": True,
            "TerminationProtected": False,
            "InstanceGroups": [
                {"Name": "master", "InstanceRole": "MASTER", "Market": "ON_DEMAND", "InstanceType": "m6i.xlarge",
                 "InstanceCount": 1},
                {"Name": "core", "InstanceRole": "CORE", "Market": "ON_DEMAND", "InstanceType": "m6i.2xlarge",
                 "InstanceCount": 2},
            ],
            "Ec2SubnetId": SUBNET,
        },
        "Configurations": [
            {"Classification": "delta-defaults", "Properties": {"delta.enabled": "true"}},
            {"Classification": "spark-defaults", "Properties": {
                "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
                "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
                "spark.sql.catalogImplementation": "hive",
                "spark.yarn.maxAppAttempts": "1",
            }},
            {"Classification": "spark-hive-site", "Properties": {
                "hive.metastore.client.factory.class":
                    "com.amazonaws.glue.catalog.metastore.AWSGlueDataCatalogHiveClientFactory"}},
            {"Classification": "spark-env", "Properties": {}, "Configurations": [
                {"Classification": "export", "Properties": {"PYSPARK_PYTHON": "/usr/bin/python3.11"}}]},
        ],
        "JobFlowRole": "ecomrec-emr-ec2",
        "ServiceRole": "ecomrec-emr-service",
        "VisibleToAllUsers": False,
        "SecurityConfiguration": SECURITY_NAME,
        "AutoTerminationPolicy": {"IdleTimeout": 1800},
        "StepConcurrencyLevel": 1,
        "Tags": [{"Key": "for-use-with-amazon-emr-managed-policies", "Value": "true"},
                 {"Key": "project", "Value": "ecomrec"}],
        "BootstrapActions": [{
            "Name": "install the ecomrec-spark wheelhouse (pinned, hash-checked, no package index)",
            "ScriptBootstrapAction": {"Path": f"{BASE}bootstrap/install-wheel.sh",
                                      "Args": ["/usr/bin/python3.11", f"{BASE}wheelhouse/"]},
        }],
    }
    assert art.wheel == f"{BASE}wheelhouse/{WHEEL}"
    _validate("emr", "RunJobFlow", request)
    # the wheelhouse resolves pyproject's ranges at package time: pyspark is EMR's, delta-spark comes without deps
    no_deps, deps = packaging.runtime_requirements()
    assert no_deps == ["delta-spark==4.0.0"]
    assert not any(d.lower().startswith("pyspark") for d in deps) and "xgboost-cpu==3.1.3" in deps


def test_cluster_request_fleets_archive_and_options():
    s = {**SETTINGS, "shipping": "archive", "keep_alive": False, "idle_timeout_seconds": 600,
         "subnet_id": "subnet-0123456789abcdef0", "release_label": "emr-7.12.0", "applications": ["Spark", "Livy"],
         "instance_fleets": [
             {"role": "MASTER", "instance_types": ["m6i.xlarge", "m5.xlarge"], "on_demand": 1},
             {"role": "CORE", "instance_types": ["r6i.2xlarge"], "on_demand": 1, "spot": 2},
         ], "spark_defaults": {"spark.executor.memory": "8g"}, "tags": {"owner": "data"}}
    request = requests.cluster_request(s, PATHS, f"{BASE}{WHEEL}")
    assert request["ReleaseLabel"] == "emr-7.12.0"
    assert request["Applications"] == [{"Name": "Spark"}, {"Name": "Livy"}]
    assert request["AutoTerminationPolicy"] == {"IdleTimeout": 600}
    assert request["Instances"] == {
        "KeepJobFlowAliveWhenNoSteps": False,
        "TerminationProtected": False,
        "InstanceFleets": [
            {"Name": "master", "InstanceFleetType": "MASTER", "TargetOnDemandCapacity": 1, "TargetSpotCapacity": 0,
             "InstanceTypeConfigs": [{"InstanceType": "m6i.xlarge", "WeightedCapacity": 1},
                                     {"InstanceType": "m5.xlarge", "WeightedCapacity": 1}]},
            {"Name": "core", "InstanceFleetType": "CORE", "TargetOnDemandCapacity": 1, "TargetSpotCapacity": 2,
             "InstanceTypeConfigs": [{"InstanceType": "r6i.2xlarge", "WeightedCapacity": 1}]},
        ],
        "Ec2SubnetIds": ["subnet-0123456789abcdef0"],
    }
    assert "BootstrapActions" not in request  # the packed venv replaces the bootstrap action
    assert [c["Classification"] for c in request["Configurations"]] == ["delta-defaults", "spark-defaults",
                                                                        "spark-hive-site"]
    assert request["Configurations"][1]["Properties"] == {
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.catalogImplementation": "hive",
        "spark.yarn.maxAppAttempts": "1",
        "spark.archives": f"{BASE}pyspark_venv.tar.gz#environment",
        "spark.yarn.appMasterEnv.PYSPARK_PYTHON": "./environment/bin/python",
        "spark.executorEnv.PYSPARK_PYTHON": "./environment/bin/python",
        "spark.executor.memory": "8g",
    }
    assert {"Key": "owner", "Value": "data"} in request["Tags"]
    _validate("emr", "RunJobFlow", request)


def test_safe_defaults_are_what_is_sent_and_loosening_them_takes_explicit_keys(no_boto):
    s = settings.resolve_settings(SETTINGS)
    assert (s["require_private_subnet"], s["visible_to_all_users"]) == (True, False)
    assert s["encryption"] == {"s3": "SSE-S3", "s3_kms_key": None, "local_disks": True, "local_disk_kms_key": DISK_KEY,
                               "in_transit": True, "tls_certificates": CERTS, "tls_provider_class": None}
    assert requests.security_configuration_request(s) == {
        "Name": SECURITY_NAME, "SecurityConfiguration": json.dumps(SECURITY_DOC, sort_keys=True, separators=(",", ":"))}
    _validate("emr", "CreateSecurityConfiguration", requests.security_configuration_request(s))

    # every protection off, each through its own key: no security configuration, no subnet, visible to all
    loose = {"bucket": BUCKET, "region": REGION, "require_private_subnet": False, "visible_to_all_users": True,
             "encryption": {"s3": False, "local_disks": False, "in_transit": False}}
    request = requests.cluster_request(loose, PATHS, f"{BASE}wheelhouse/{WHEEL}")
    assert "SecurityConfiguration" not in request and "Ec2SubnetId" not in request["Instances"]
    assert request["VisibleToAllUsers"] is True
    # S3 encryption alone still makes a configuration, with in-transit explicitly off
    s3_only = settings.resolve_settings({**loose, "encryption": {"local_disks": False, "in_transit": False}})
    assert requests.security_configuration_doc(s3_only) == {"EncryptionConfiguration": {
        "EnableAtRestEncryption": True, "EnableInTransitEncryption": False,
        "AtRestEncryptionConfiguration": {"S3EncryptionConfiguration": {"EncryptionMode": "SSE-S3"}}}}
    # a named configuration is used as is (and checked against the encryption keys at `up`)
    named = requests.cluster_request({**SETTINGS, "security_configuration": "corp-standard"}, PATHS, f"{BASE}{WHEEL}")
    assert named["SecurityConfiguration"] == "corp-standard"


def test_up_refuses_a_public_subnet_before_building_or_uploading(aws, cfg, wheelhouse):
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    public = ec2.create_subnet(VpcId=vpc, CidrBlock="10.30.1.0/24")["Subnet"]["SubnetId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=table, SubnetId=public)
    cfg["emr"]["subnet_id"] = public
    with pytest.raises(ValueError, match=rf"emr\.subnet_id.*public subnet.*{igw}.*emr\.require_private_subnet"):
        clusters.up(cfg, overrides=cfg["_overrides"], wheelhouse=wheelhouse, wait_for=False)
    # a subnet that hands out public IPs is refused too
    mapped = ec2.create_subnet(VpcId=vpc, CidrBlock="10.30.2.0/24")["Subnet"]["SubnetId"]
    ec2.modify_subnet_attribute(SubnetId=mapped, MapPublicIpOnLaunch={"Value": True})
    cfg["emr"]["subnet_id"] = mapped
    with pytest.raises(ValueError, match="maps public IP addresses"):
        clusters.up(cfg, overrides=cfg["_overrides"], wheelhouse=wheelhouse, wait_for=False)
    assert "Contents" not in boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=BUCKET)  # nothing sent
    assert boto3.client("emr", region_name=REGION).list_clusters()["Clusters"] == []


def test_up_requires_a_named_security_configuration_to_encrypt_what_the_config_asks(aws, cfg, wheelhouse,
                                                                                    private_subnet):
    client = boto3.client("emr", region_name=REGION)
    weak = {"EncryptionConfiguration": {"EnableAtRestEncryption": True, "EnableInTransitEncryption": False,
                                        "AtRestEncryptionConfiguration": {
                                            "S3EncryptionConfiguration": {"EncryptionMode": "SSE-S3"}}}}
    client.create_security_configuration(Name="weak", SecurityConfiguration=json.dumps(weak))
    cfg["emr"].update(subnet_id=private_subnet, security_configuration="weak")
    with pytest.raises(ValueError, match=r"emr\.security_configuration.*local-disk encryption.*in-transit"):
        clusters.up(cfg, overrides=cfg["_overrides"], wheelhouse=wheelhouse, wait_for=False)
    cfg["emr"]["security_configuration"] = "missing"
    with pytest.raises(ValueError, match=r"emr\.security_configuration.*cannot be read"):
        clusters.up(cfg, overrides=cfg["_overrides"], wheelhouse=wheelhouse, wait_for=False)
    # loosened on purpose, the same configuration is accepted
    cfg["emr"].update(security_configuration="weak", encryption={"local_disks": False, "in_transit": False})
    out = clusters.up(cfg, overrides=cfg["_overrides"], wheelhouse=wheelhouse, with_steps=False, wait_for=False)
    assert client.describe_cluster(ClusterId=out["cluster_id"])["Cluster"]["SecurityConfiguration"] == "weak"


def test_wheelhouse_lock_pins_every_wheel_by_hash(tmp_path):
    folder = tmp_path / "wh"
    folder.mkdir()
    files = {"numpy-2.3.5-cp311-cp311-manylinux_2_28_x86_64.whl": b"numpy x86",
             "numpy-2.3.5-cp311-cp311-manylinux_2_28_aarch64.whl": b"numpy arm",
             "python_dateutil-2.9.0.post0-py2.py3-none-any.whl": b"dateutil",
             WHEEL: b"project"}
    for name, body in files.items():
        (folder / name).write_bytes(body)
    sha = {name: hashlib.sha256(body).hexdigest() for name, body in files.items()}
    numpy = sorted([sha["numpy-2.3.5-cp311-cp311-manylinux_2_28_x86_64.whl"],
                    sha["numpy-2.3.5-cp311-cp311-manylinux_2_28_aarch64.whl"]])
    expected = ("# written by ecomrec_spark.aws.packaging.lock_wheelhouse: "
                "every wheel of this folder, pinned and hashed\n"
                f"ecomrec-spark=={layout.project_version()} --hash=sha256:{sha[WHEEL]}\n"
                f"numpy==2.3.5 --hash=sha256:{numpy[0]} --hash=sha256:{numpy[1]}\n"
                "python-dateutil==2.9.0.post0 --hash=sha256:"
                f"{sha['python_dateutil-2.9.0.post0-py2.py3-none-any.whl']}\n")
    assert packaging.lock_wheelhouse(folder) == expected == (folder / "requirements.lock").read_text()
    assert packaging.wheelhouse_wheel(folder) == folder / WHEEL
    (folder / "numpy-2.4.0-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"newer")
    with pytest.raises(ValueError, match="numpy 2.3.5 and 2.4.0"):
        packaging.lock_wheelhouse(folder)
    with pytest.raises(ValueError, match="no wheels"):
        packaging.lock_wheelhouse(tmp_path)
    with pytest.raises(FileNotFoundError, match="requirements.lock"):
        packaging.wheelhouse_wheel(tmp_path)


def test_build_wheelhouse_resolves_once_for_the_nodes_python_and_cpu(monkeypatch, tmp_path, wheel):
    calls = []

    def fake_download(cmd, **kwargs):  # stands in for pip download (no index here): one wheel per call
        calls.append(cmd)
        dest = Path(cmd[cmd.index("--dest") + 1])
        arch = "aarch64" if "manylinux_2_34_aarch64" in cmd else "x86_64"
        name = ("delta_spark-4.0.0-py3-none-any.whl" if "--no-deps" in cmd
                else f"numpy-2.3.5-cp311-cp311-manylinux_2_28_{arch}.whl")
        (dest / name).write_bytes(name.encode())

    monkeypatch.setattr(packaging, "_run", fake_download)
    out = tmp_path / "wh"
    out.mkdir()
    (out / "stale-1.0-py3-none-any.whl").write_bytes(b"old")  # a rebuilt wheelhouse keeps nothing old
    s = settings.resolve_settings({**SETTINGS, "instance_fleets": [
        {"role": "MASTER", "instance_types": ["m7g.xlarge"], "on_demand": 1},
        {"role": "CORE", "instance_types": ["m6i.2xlarge", "r6gd.2xlarge"], "on_demand": 2}]})
    assert packaging.node_architectures(s) == ["aarch64", "x86_64"]
    assert packaging.node_architectures(settings.resolve_settings(SETTINGS)) == ["x86_64"]
    packaging.build_wheelhouse(wheel, out, python_version=settings.node_python_version(s),
                               architectures=packaging.node_architectures(s))
    no_deps, deps = packaging.runtime_requirements()
    for cmd, arch in zip(calls[::2], ("aarch64", "x86_64"), strict=True):
        assert cmd == [sys.executable, "-m", "pip", "download", "--only-binary=:all:",
                       "--platform", f"manylinux_2_34_{arch}", "--platform", f"manylinux_2_28_{arch}",
                       "--platform", f"manylinux_2_17_{arch}", "--platform", f"manylinux2014_{arch}",
                       "--python-version", "3.11", "--implementation", "cp", "--dest", str(out), "--quiet", *deps]
    assert all(cmd[-2:] == ["--no-deps", *no_deps] for cmd in calls[1::2])
    assert sorted(p.name for p in out.iterdir()) == [
        "delta_spark-4.0.0-py3-none-any.whl", WHEEL, "numpy-2.3.5-cp311-cp311-manylinux_2_28_aarch64.whl",
        "numpy-2.3.5-cp311-cp311-manylinux_2_28_x86_64.whl", "requirements.lock"]
    assert [line.split(" ")[0] for line in (out / "requirements.lock").read_text().splitlines()[1:]] == [
        "delta-spark==4.0.0", f"ecomrec-spark=={layout.project_version()}", "numpy==2.3.5"]


def test_pack_venv_installs_the_locked_wheelhouse_by_hash(monkeypatch, tmp_path, wheelhouse):
    calls = []
    monkeypatch.setattr(packaging, "_run", lambda cmd, **kwargs: calls.append(cmd))
    packaging.pack_venv(wheelhouse / WHEEL, tmp_path / "venv.tar.gz", python="python3.11", wheelhouse=wheelhouse)
    env = Path(calls[0][-1])
    assert calls == [
        ["python3.11", "-m", "venv", str(env)],
        [str(env / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-index", "--find-links", str(wheelhouse),
         "--require-hashes", "--no-deps", "-r", str(wheelhouse / "requirements.lock")],
        [str(env / "bin" / "python"), "-m", "pip", "install", "--quiet", "venv-pack==0.2.0"],
        [str(env / "bin" / "venv-pack"), "-p", str(env), "-o", str(tmp_path / "venv.tar.gz"), "-f"]]


def test_bootstrap_installs_only_the_locked_wheels_from_s3():
    script = layout.BOOTSTRAP_SCRIPT.read_text()
    installs = [line for line in script.splitlines() if "pip install" in line or line.strip().startswith("--no-index")
                or line.strip().startswith("-r ")]
    assert installs == ['sudo "$PYTHON" -m pip install --quiet --no-warn-script-location \\',
                        '  --no-index --find-links "$workdir/wheelhouse" --require-hashes --no-deps \\',
                        '  -r "$workdir/wheelhouse/requirements.lock"']


def test_step_requests_follow_the_pipeline_in_order():
    from ecomrec_spark.registry import NAMES  # the order run-all follows

    assert list(layout.PIPELINE) == list(NAMES) == EXPECTED_JOBS
    for script in EXPECTED_SCRIPTS:
        assert (config.REPO_ROOT / "jobs" / script).is_file()
    sets = ["paths.lake=s3://ecomrec-test/lake", "recommend.k=20"]
    steps = requests.step_requests(reversed(EXPECTED_JOBS), f"{BASE}conf/emr.yaml", sets, jobs_uri=f"{BASE}jobs/")
    assert steps == [
        {"Name": f"ecomrec {job}", "ActionOnFailure": "CANCEL_AND_WAIT",
         "HadoopJarStep": {"Jar": "command-runner.jar", "Args": _step_args(job, script, sets)}}
        for job, script in zip(EXPECTED_JOBS, EXPECTED_SCRIPTS, strict=True)
    ]
    _validate("emr", "AddJobFlowSteps", {"JobFlowId": "j-ABC", "Steps": steps})
    continued = requests.step_requests(["ingest"], f"{BASE}conf/emr.yaml", [], jobs_uri=f"{BASE}jobs/",
                                  action_on_failure="CONTINUE", submit_args=["--conf", "spark.executor.cores=4"])
    assert continued[0]["ActionOnFailure"] == "CONTINUE"
    assert continued[0]["HadoopJarStep"]["Args"][5:8] == ["--conf", "spark.executor.cores=4", f"{BASE}jobs/ingest.py"]


def test_serverless_request_shapes():
    s = {**SETTINGS, "mode": "serverless", "serverless": {"execution_role_arn": ROLE_ARN}}
    req = requests.serverless_requests(s, ["transform", "ingest"], ["recommend.k=20"], application_id="00abc")
    assert req["create_application"] == {
        "name": "ecomrec", "releaseLabel": "emr-spark-8.0.0", "type": "SPARK", "architecture": "X86_64",
        "autoStartConfiguration": {"enabled": True},
        "autoStopConfiguration": {"enabled": True, "idleTimeoutMinutes": 15},
        "tags": {"for-use-with-amazon-emr-managed-policies": "true", "project": "ecomrec"},
    }
    params = (f"--conf spark.archives={BASE}pyspark_venv.tar.gz#environment,{BASE}conf/conf.tar.gz#conf "
              "--conf spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON=./environment/bin/python "
              "--conf spark.emr-serverless.driverEnv.PYSPARK_PYTHON=./environment/bin/python "
              "--conf spark.emr-serverless.executorEnv.PYSPARK_PYTHON=./environment/bin/python "
              "--conf spark.jars=/usr/share/aws/delta/lib/delta-spark.jar,/usr/share/aws/delta/lib/delta-storage.jar "
              "--conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension "
              "--conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog")
    assert [r["name"] for r in req["start_job_run"]] == ["ecomrec ingest", "ecomrec transform"]
    assert req["start_job_run"][0] == {
        "applicationId": "00abc",
        "executionRoleArn": ROLE_ARN,
        "name": "ecomrec ingest",
        "jobDriver": {"sparkSubmit": {
            "entryPoint": f"{BASE}jobs/ingest.py",
            "entryPointArguments": ["--conf", "conf/emr.yaml", "--set", "recommend.k=20"],
            "sparkSubmitParameters": params,
        }},
        "configurationOverrides": {
            "applicationConfiguration": [{"classification": "spark-defaults", "properties": {
                "spark.hadoop.hive.metastore.client.factory.class":
                    "com.amazonaws.glue.catalog.metastore.AWSGlueDataCatalogHiveClientFactory",
                "spark.sql.catalogImplementation": "hive"}}],
            "monitoringConfiguration": {"s3MonitoringConfiguration": {"logUri": f"s3://{BUCKET}/logs/serverless/"}},
        },
        "tags": {"for-use-with-amazon-emr-managed-policies": "true", "project": "ecomrec"},
    }
    _validate("emr-serverless", "CreateApplication", req["create_application"])
    for run in req["start_job_run"]:
        _validate("emr-serverless", "StartJobRun", run)


# ----------------------------------------------------------------------------------------------
# Against moto
# ----------------------------------------------------------------------------------------------

def test_up_uploads_and_creates_a_cluster_then_submit_adds_the_steps(aws, cfg, wheelhouse, private_subnet):
    cfg["emr"]["subnet_id"] = private_subnet
    out = clusters.up(cfg, overrides=cfg["_overrides"], wheelhouse=wheelhouse, with_steps=False, wait_for=False)
    cluster_id = out["cluster_id"]
    client = boto3.client("emr", region_name=REGION)
    cluster = client.describe_cluster(ClusterId=cluster_id)["Cluster"]
    assert cluster["ReleaseLabel"] == "emr-spark-8.0.0"
    # the safe defaults reached EMR: the security configuration up created, private subnet, not visible to all
    name = out["create_security_configuration"]["Name"]
    assert json.loads(client.describe_security_configuration(Name=name)["SecurityConfiguration"]) == SECURITY_DOC
    assert (cluster["SecurityConfiguration"], cluster["VisibleToAllUsers"]) == (name, False)
    assert cluster["Ec2InstanceAttributes"]["Ec2SubnetId"] == private_subnet
    # a second up reuses the configuration (same document, same name) instead of failing on "already exists"
    assert clusters.up(cfg, overrides=cfg["_overrides"], wheelhouse=wheelhouse, with_steps=False,
                  wait_for=False)["run_job_flow"]["SecurityConfiguration"] == name
    assert cluster["Status"]["State"] == "WAITING"  # kept alive for submit; auto-termination ends it when idle
    assert [c["Classification"] for c in cluster["Configurations"]] == ["delta-defaults", "spark-defaults",
                                                                        "spark-hive-site", "spark-env"]
    assert cluster["Configurations"][2]["Properties"]["hive.metastore.client.factory.class"].endswith(
        "AWSGlueDataCatalogHiveClientFactory")
    assert cluster["LogUri"] == f"s3://{BUCKET}/logs/emr/"
    action = client.list_bootstrap_actions(ClusterId=cluster_id)["BootstrapActions"][0]
    assert action["ScriptPath"] == f"{BASE}bootstrap/install-wheel.sh"
    assert action["Args"] == ["/usr/bin/python3.11", f"{BASE}wheelhouse/"]

    # the wheelhouse (wheels + lock), every job script, the config and the bootstrap script landed in moto's bucket
    s3 = boto3.client("s3", region_name=REGION)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    prefix = BASE[len(f"s3://{BUCKET}/"):]
    scripts = {f"{prefix}jobs/{p.name}" for p in (config.REPO_ROOT / "jobs").glob("*.py")}
    house = {f"{prefix}wheelhouse/{n}" for n in (WHEEL, "six-1.17.0-py2.py3-none-any.whl", "requirements.lock")}
    assert keys == house | {f"{prefix}conf/emr.yaml", f"{prefix}bootstrap/install-wheel.sh"} | scripts
    assert {f"{prefix}jobs/{s}" for s in EXPECTED_SCRIPTS} <= keys
    assert s3.get_object(Bucket=BUCKET, Key=f"{prefix}wheelhouse/{WHEEL}")["Body"].read() == (
        wheelhouse / WHEEL).read_bytes()
    assert s3.get_object(Bucket=BUCKET, Key=f"{prefix}wheelhouse/requirements.lock")["Body"].read() == (
        wheelhouse / "requirements.lock").read_bytes()
    shipped = yaml.safe_load(s3.get_object(Bucket=BUCKET, Key=f"{prefix}conf/emr.yaml")["Body"].read())
    assert "emr" not in shipped  # launcher-only section stays home
    assert shipped["paths"]["lake"] == "s3://<bucket>/lake"  # the steps' --set fills it in
    assert "recommend" in shipped and "review" in shipped  # inherited from conf/local.yaml: the wheel has no conf/

    submitted = clusters.submit(cfg, cluster_id, overrides=cfg["_overrides"])
    assert len(submitted["step_ids"]) == len(EXPECTED_JOBS)
    listed = client.list_steps(ClusterId=cluster_id)["Steps"][::-1]  # EMR lists the newest first
    assert [s["Id"] for s in listed] == submitted["step_ids"]
    assert [s["Name"] for s in listed] == [f"ecomrec {j}" for j in EXPECTED_JOBS]
    assert [s["Config"]["Args"] for s in listed] == [
        _step_args(j, script, cfg["_overrides"]) for j, script in zip(EXPECTED_JOBS, EXPECTED_SCRIPTS, strict=True)]
    assert all(s["Config"]["Jar"] == "command-runner.jar" and s["ActionOnFailure"] == "CANCEL_AND_WAIT"
               for s in listed)

    st = clusters.status(cluster_id)
    assert st["state"] == "RUNNING"
    assert [(x["name"], x["state"]) for x in st["steps"]][:2] == [("ecomrec ingest", "RUNNING"),
                                                                  ("ecomrec transform", "PENDING")]
    first = submitted["step_ids"][0]
    assert st["steps"][0]["log_uri"] == f"s3://{BUCKET}/logs/emr/{cluster_id}/steps/{first}/"

    assert clusters.down(cluster_id) == {"cluster_id": cluster_id, "state": "TERMINATED"}
    assert clusters.status(cluster_id)["state"] == "TERMINATED"


def _set_step_states(cluster_id: str, states: dict[str, str]) -> None:
    """moto never runs steps: move them by hand, as EMR would."""
    from moto.emr.models import emr_backends

    for step in emr_backends[ACCOUNT][REGION].clusters[cluster_id].steps:
        if step.name in states:
            step.state = states[step.name]


def test_up_with_steps_then_wait_reports_completion_and_failures(aws, cfg, wheelhouse, private_subnet, caplog):
    cfg["emr"]["subnet_id"] = private_subnet
    out = clusters.up(cfg, overrides=cfg["_overrides"], wheelhouse=wheelhouse, wait_for=False)
    cluster_id, step_ids = out["cluster_id"], out["step_ids"]
    assert out["run_job_flow"]["Steps"] == [
        {"Name": f"ecomrec {j}", "ActionOnFailure": "CANCEL_AND_WAIT",
         "HadoopJarStep": {"Jar": "command-runner.jar", "Args": _step_args(j, s, cfg["_overrides"])}}
        for j, s in zip(EXPECTED_JOBS, EXPECTED_SCRIPTS, strict=True)]
    names = [s["Name"] for s in boto3.client("emr", region_name=REGION).list_steps(ClusterId=cluster_id)["Steps"]]
    assert names[::-1] == [f"ecomrec {j}" for j in EXPECTED_JOBS]

    # boto3's waiters poll moto: the first describe_* sees the state, so finished steps need no sleep
    _set_step_states(cluster_id, {f"ecomrec {j}": "COMPLETED" for j in EXPECTED_JOBS})
    caplog.set_level("INFO", logger="ecomrec_spark.aws.clusters")
    done = clusters.wait(cluster_id, step_ids, poll=1)
    assert [x["state"] for x in done["steps"]] == ["COMPLETED"] * len(EXPECTED_JOBS)
    for step_id in step_ids:  # every step is reported with its log URI
        assert f"logs/emr/{cluster_id}/steps/{step_id}/" in caplog.text
    assert clusters.wait(cluster_id, poll=1)["state"] in ("WAITING", "RUNNING")  # cluster_running: up already

    _set_step_states(cluster_id, {"ecomrec train-review": "FAILED"})
    with pytest.raises(clients.EmrError, match=r"ecomrec train-review.*FAILED.*logs: s3://ecomrec-test/logs/emr/"):
        clusters.wait(cluster_id, step_ids, poll=1)

    _set_step_states(cluster_id, {"ecomrec train-review": "RUNNING"})  # one attempt (timeout < poll), no sleep
    with pytest.raises(clients.EmrError, match="gave up waiting .* after 1 s .*ecomrec train-review=RUNNING"):
        clusters.wait(cluster_id, step_ids, timeout=1, poll=30)

    with pytest.raises(clients.EmrError, match="not a step of cluster"):
        clusters.wait(cluster_id, ["s-NOSUCHSTEP"], poll=1)

    clusters.down(cluster_id)
    with pytest.raises(clients.EmrError, match=f"cluster {cluster_id} is TERMINATED"):  # cluster_running fails
        clusters.wait(cluster_id, poll=1)


def test_logs_lists_the_step_folder_and_tails_stderr(aws, cfg, wheelhouse, private_subnet):
    cfg["emr"]["subnet_id"] = private_subnet
    out = clusters.up(cfg, overrides=cfg["_overrides"], wheelhouse=wheelhouse, jobs=["ingest"], wait_for=False)
    cluster_id, step_id = out["cluster_id"], out["step_ids"][0]
    s3 = boto3.client("s3", region_name=REGION)
    folder = f"logs/emr/{cluster_id}/steps/{step_id}/"
    s3.put_object(Bucket=BUCKET, Key=folder + "stderr.gz", Body=gzip.compress(b"line 1\nline 2\nline 3\n"))
    s3.put_object(Bucket=BUCKET, Key=folder + "controller.gz", Body=gzip.compress(b"ok\n"))
    got = clusters.logs(cluster_id, step_id, tail=2)
    assert got["uri"] == f"s3://{BUCKET}/{folder}"
    assert sorted(f["name"] for f in got["files"]) == ["controller.gz", "stderr.gz"]
    assert got["stderr_tail"] == ["line 2", "line 3"]
    assert got["containers_uri"] == f"s3://{BUCKET}/logs/emr/{cluster_id}/containers/"


def test_serverless_up_creates_the_application_and_runs_the_jobs_in_order(aws, cfg, tmp_path):
    archive = tmp_path / "pyspark_venv.tar.gz"
    archive.write_bytes(b"venv")
    # moto's EMR Serverless only knows emr-X.Y.0 labels; the emr-spark-8.0.0 request is checked above
    cfg["emr"] = {**cfg["emr"], "mode": "serverless", "release_label": "emr-7.12.0",
                  "serverless": {"execution_role_arn": ROLE_ARN}}
    out = clusters.up(cfg, overrides=cfg["_overrides"], archive=archive, sleep=lambda s: None)
    es = boto3.client("emr-serverless", region_name=REGION)
    app = es.get_application(applicationId=out["application_id"])["application"]
    assert (app["releaseLabel"], app["type"].upper(), app["autoStopConfiguration"]) == (
        "emr-7.12.0", "SPARK", {"enabled": True, "idleTimeoutMinutes": 15})
    runs = [es.get_job_run(applicationId=app["applicationId"], jobRunId=r)["jobRun"] for r in out["job_run_ids"]]
    assert [r["name"] for r in runs] == [f"ecomrec {j}" for j in EXPECTED_JOBS]
    assert runs[0]["jobDriver"]["sparkSubmit"]["entryPoint"] == f"{BASE}jobs/ingest.py"
    assert all(r["state"] == "SUCCESS" for r in runs)

    s3 = boto3.client("s3", region_name=REGION)
    prefix = BASE[len(f"s3://{BUCKET}/"):]
    body = s3.get_object(Bucket=BUCKET, Key=f"{prefix}conf/conf.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        assert tar.getnames() == ["emr.yaml"]  # unpacked as ./conf/emr.yaml next to the driver
    assert s3.get_object(Bucket=BUCKET, Key=f"{prefix}pyspark_venv.tar.gz")["Body"].read() == b"venv"

    st = serverless.serverless_status(app["applicationId"], settings=settings.resolve_settings(cfg["emr"]))
    assert len(st["job_runs"]) == len(EXPECTED_JOBS) and st["job_runs"][0]["log_uri"].startswith(f"s3://{BUCKET}/logs/serverless/")
    assert serverless.serverless_down(app["applicationId"], sleep=lambda s: None)["state"] == "TERMINATED"


def test_upload_needs_an_existing_bucket(aws, tmp_path):
    with pytest.raises(clients.EmrError, match="aws s3 mb s3://no-such-bucket"):
        packaging.upload({"a.txt": b"x"}, "s3://no-such-bucket/artifacts/")
    uris = packaging.upload({"a/b.txt": b"x"}, f"s3://{BUCKET}/artifacts/")
    assert uris == [f"s3://{BUCKET}/artifacts/a/b.txt"]


# ----------------------------------------------------------------------------------------------
# IAM
# ----------------------------------------------------------------------------------------------

def test_rendered_policies_are_exactly_least_privilege():
    certs = f"s3://{BUCKET}/team/ecomrec/artifacts/certs/emr.zip"  # under artifacts/: the role reads it already
    settings = {**SETTINGS, "prefix": "team/ecomrec/", "glue_database": "shop",
                "encryption": {**SECURE["encryption"], "tls_certificates": certs}}
    docs = iam.render_iam(settings, ACCOUNT)
    assert set(docs) == set(iam.IAM_FILES)
    for name, doc in docs.items():
        text = json.dumps(doc)
        assert json.loads(text) == doc and "${" not in text, name  # valid JSON, no placeholder left
        assert json.loads((iam.IAM_DIR / name).read_text())  # the templates themselves are valid JSON

    obj = f"arn:aws:s3:::{BUCKET}/team/ecomrec"
    glue = f"arn:aws:glue:{REGION}:{ACCOUNT}"
    assert docs["job-role-policy.json"] == {"Version": "2012-10-17", "Statement": [
        # listing: the four data and code prefixes, never logs/
        {"Sid": "ListOnlyTheProjectPrefixesNotTheLogs", "Effect": "Allow", "Action": "s3:ListBucket",
         "Resource": f"arn:aws:s3:::{BUCKET}", "Condition": {"StringLike": {"s3:prefix": [
             "team/ecomrec/raw/*", "team/ecomrec/artifacts/*", "team/ecomrec/lake/*", "team/ecomrec/reports/*",
             "team/ecomrec/raw", "team/ecomrec/artifacts", "team/ecomrec/lake", "team/ecomrec/reports"]}}},
        {"Sid": "LocateTheBucket", "Effect": "Allow", "Action": "s3:GetBucketLocation",
         "Resource": f"arn:aws:s3:::{BUCKET}"},
        # raw/ and artifacts/ (the bootstrap and the wheel run as root on later clusters): read only
        {"Sid": "ReadOnlyTheInputsAndTheCode", "Effect": "Allow", "Action": "s3:GetObject",
         "Resource": [f"{obj}/raw/*", f"{obj}/artifacts/*"]},
        # the lake and the reports: read-write, and nothing else is
        {"Sid": "ReadWriteOnlyTheLakeAndTheReports", "Effect": "Allow",
         "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts"],
         "Resource": [f"{obj}/lake/*", f"{obj}/reports/*", f"{obj}/lake_$folder$", f"{obj}/reports_$folder$"]},
        # logs/: put only
        {"Sid": "PutOnlyTheLogs", "Effect": "Allow", "Action": "s3:PutObject", "Resource": [f"{obj}/logs/*"]},
        {"Sid": "GlueCatalogOnlyTheProjectDatabase", "Effect": "Allow",
         "Action": ["glue:GetDatabase", "glue:CreateDatabase", "glue:UpdateDatabase", "glue:GetTable",
                    "glue:GetTables", "glue:CreateTable", "glue:UpdateTable", "glue:DeleteTable",
                    "glue:BatchDeleteTable", "glue:GetPartition", "glue:GetPartitions", "glue:BatchGetPartition",
                    "glue:GetUserDefinedFunction", "glue:GetUserDefinedFunctions"],
         "Resource": [f"{glue}:catalog", f"{glue}:database/shop", f"{glue}:table/shop/*",
                      f"{glue}:userDefinedFunction/shop/*"]},
        {"Sid": "GlueDefaultDatabaseExistsCheckOnly", "Effect": "Allow", "Action": "glue:GetDatabase",
         "Resource": [f"{glue}:catalog", f"{glue}:database/default"]},
        # the nodes encrypt their disks with exactly the configured key
        {"Sid": "UseTheLocalDiskKey", "Effect": "Allow",
         "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
         "Resource": DISK_KEY},
    ]}
    assert docs["service-role-policy.json"] == {"Version": "2012-10-17", "Statement": [
        {"Sid": "PassOnlyTheProjectInstanceProfileRoleToEc2", "Effect": "Allow", "Action": "iam:PassRole",
         "Resource": f"arn:aws:iam::{ACCOUNT}:role/ecomrec-emr-ec2",
         "Condition": {"StringLike": {"iam:PassedToService": "ec2.amazonaws.com*"}}},
        {"Sid": "EncryptTheEbsVolumesWithTheLocalDiskKey", "Effect": "Allow",
         "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncrypt*"],
         "Resource": DISK_KEY},
        {"Sid": "GrantTheLocalDiskKeyToEc2Only", "Effect": "Allow", "Action": "kms:CreateGrant", "Resource": DISK_KEY,
         "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}},
    ]}
    assert docs["trust-emr.json"]["Statement"][0]["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnLike": {"aws:SourceArn": f"arn:aws:elasticmapreduce:{REGION}:{ACCOUNT}:*"}}
    assert docs["trust-ec2.json"]["Statement"] == [{"Sid": "ClusterInstancesAssumeTheJobRole", "Effect": "Allow",
                                                    "Principal": {"Service": "ec2.amazonaws.com"},
                                                    "Action": "sts:AssumeRole"}]
    # EMR Serverless job runs assume the same job role, and only for this account's applications
    assert docs["trust-emr-serverless.json"]["Statement"] == [{
        "Sid": "EmrServerlessAssumesTheJobRoleForThisAccountOnly", "Effect": "Allow",
        "Principal": {"Service": "emr-serverless.amazonaws.com"}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT},
                      "ArnLike": {"aws:SourceArn": f"arn:aws:emr-serverless:{REGION}:{ACCOUNT}:/applications/*"}}}]


def test_encryption_adds_rights_on_exactly_its_keys_and_certificates():
    s3_key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/s3-0000"
    outside = "s3://certs-bucket/emr/provider.jar"
    s = settings.resolve_settings({**SETTINGS, "encryption": {
        "s3": "SSE-KMS", "s3_kms_key": s3_key, "local_disks": False, "tls_certificates": outside,
        "tls_provider_class": "com.example.CertProvider"}})
    assert iam.encryption_statements(s) == {
        "job-role-policy.json": [
            {"Sid": "UseTheS3Key", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
             "Resource": s3_key},
            {"Sid": "ReadTheTlsCertificates", "Effect": "Allow", "Action": "s3:GetObject",
             "Resource": "arn:aws:s3:::certs-bucket/emr/provider.jar"}],
        "service-role-policy.json": []}
    assert requests.security_configuration_doc(s) == {"EncryptionConfiguration": {
        "EnableAtRestEncryption": True, "EnableInTransitEncryption": True,
        "AtRestEncryptionConfiguration": {"S3EncryptionConfiguration": {"EncryptionMode": "SSE-KMS",
                                                                        "AwsKmsKey": s3_key}},
        "InTransitEncryptionConfiguration": {"TLSCertificateConfiguration": {
            "CertificateProviderType": "Custom", "S3Object": outside,
            "CertificateProviderClass": "com.example.CertProvider"}}}}
    # a named security configuration keeps its keys to itself: no extra rights are rendered for it
    named = settings.resolve_settings({**SETTINGS, "security_configuration": "corp-standard"})
    assert iam.encryption_statements(named) == {"job-role-policy.json": [], "service-role-policy.json": []}
    assert requests.security_configuration_request(named) is None


def test_job_role_gets_dynamodb_rights_only_on_the_serving_tables_when_publish_writes_dynamodb(no_boto, conf_file,
                                                                                                tmp_path):
    serving = {"store": "dynamodb", "dynamodb": {"table_prefix": "shop-serving", "region": None}}
    policy = iam.render_iam(SETTINGS, ACCOUNT, serving=serving)["job-role-policy.json"]
    dynamo = [s for s in policy["Statement"] if any(a.startswith("dynamodb:") for a in
                                                    ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]))]
    assert dynamo == [{"Sid": "ServingTablesForPublish", "Effect": "Allow",
                       "Action": ["dynamodb:CreateTable", "dynamodb:DescribeTable", "dynamodb:DeleteTable",
                                  "dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:GetItem",
                                  "dynamodb:DeleteItem", "dynamodb:Scan"],
                       "Resource": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/shop-serving-*"}]
    for sqlite in (None, {"store": "sqlite"}):  # the EMR jobs never write SQLite: no DynamoDB rights at all
        assert "dynamodb" not in json.dumps(iam.render_iam(SETTINGS, ACCOUNT, serving=sqlite))
        assert "api-role-policy.json" not in iam.render_iam(SETTINGS, ACCOUNT, serving=sqlite)
    # the API role: read-only on the serving tables, S3 writes only under raw/events_api/
    api = iam.render_iam(SETTINGS, ACCOUNT, serving=serving)["api-role-policy.json"]
    prefix = settings.resolve_settings(SETTINGS)["prefix"]
    assert api["Statement"] == [
        {"Sid": "ReadTheServingTables", "Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:DescribeTable"],
         "Resource": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/shop-serving-*"},
        {"Sid": "ListTheServingVersions", "Effect": "Allow", "Action": "dynamodb:Scan",
         "Resource": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/shop-serving-versions"},
        {"Sid": "AppendFeedbackEventsOnly", "Effect": "Allow", "Action": "s3:PutObject",
         "Resource": f"arn:aws:s3:::{SETTINGS['bucket']}/{prefix}raw/events_api/*"}]
    with pytest.raises(ValueError, match="table_prefix"):
        iam.serving_statement({"store": "dynamodb", "dynamodb": {"table_prefix": "a*"}}, REGION, ACCOUNT)
    # the CLI reads the config's serving section and its --set overrides
    out = tmp_path / "iam"
    assert cli.main(["policy", "--conf", str(conf_file), "--account", ACCOUNT, "--out", str(out),
                     "--set", "serving.store=dynamodb", "--set", "serving.dynamodb.table_prefix=shop-serving"]) == 0
    assert f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/shop-serving-*" in (out / "job-role-policy.json").read_text()


def test_render_policy_rejects_bad_inputs():
    template = {"Statement": [{"Resource": ["arn:aws:s3:::${bucket}/${prefix}*"]}]}
    with pytest.raises(ValueError, match="bucket"):
        iam.render_policy(template, "Bad_Bucket", ["raw/"], "ecomrec", REGION, ACCOUNT)
    with pytest.raises(ValueError, match="account"):
        iam.render_policy(template, BUCKET, ["raw/"], "ecomrec", REGION, "12345")
    with pytest.raises(ValueError, match="prefix"):
        iam.render_policy(template, BUCKET, ["raw"], "ecomrec", REGION, ACCOUNT)
    with pytest.raises(ValueError, match=r"\$\{nobody\}"):
        iam.render_policy({"Resource": "${nobody}"}, BUCKET, ["raw/"], "ecomrec", REGION, ACCOUNT)


# ----------------------------------------------------------------------------------------------
# Validation comes before any AWS call
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("section, key", [
    ({"bucket": "My_Bucket"}, "emr.bucket"),
    ({"bucket": "ab"}, "emr.bucket"),
    ({"bucket": "192.168.1.1"}, "emr.bucket"),
    ({"bucket": "my..bucket"}, "emr.bucket"),
    ({"bucket": "<bucket>"}, "emr.bucket"),
    ({"release_label": "spark-8.0.0"}, "emr.release_label"),
    ({"region": "Europe"}, "emr.region"),
    ({"instance_groups": [{"role": "MASTER", "instance_type": "xlarge", "count": 1}]}, "instance_type"),
    ({"instance_groups": [{"role": "CORE", "instance_type": "m6i.xlarge", "count": 2}]}, "emr.instance_groups"),
    ({"idle_timeout_seconds": 0}, "emr.idle_timeout_seconds"),
    ({"log_uri": "s3a://ecomrec-test/logs/"}, "emr.log_uri"),
    ({"log_uri": "s3://other-bucket/logs/"}, "emr.log_uri"),
    ({"aws_secret_access_key": "x"}, "emr.aws_secret_access_key"),
    ({"tags": {"owner": "AKIA" + "ABCDEFGHIJKLMNOP"}}, "emr.tags.owner"),  # built at run time: no key-shaped literal in the repo
    ({"job_flow_role": "bad role"}, "emr.job_flow_role"),
    ({"mode": "serverless"}, "emr.serverless.execution_role_arn"),
    ({"regoin": REGION}, "emr.regoin"),
    # the safe defaults: each requirement names the key that provides it or loosens it on purpose
    ({"subnet_id": None}, "emr.subnet_id"),
    ({"encryption": {"local_disk_kms_key": None, "tls_certificates": CERTS}}, "emr.encryption.local_disk_kms_key"),
    ({"encryption": {"local_disk_kms_key": DISK_KEY, "tls_certificates": None}}, "emr.encryption.tls_certificates"),
    ({"encryption": {**SECURE["encryption"], "s3": "SSE-KMS"}}, "emr.encryption.s3_kms_key"),
    ({"encryption": {**SECURE["encryption"], "s3": "AES256"}}, "emr.encryption.s3"),
    ({"encryption": {**SECURE["encryption"], "in_transit": "yes"}}, "emr.encryption.in_transit"),
    ({"encryption": {**SECURE["encryption"], "tls_certificates": f"s3://{BUCKET}/certs/privateKey.pem"}},
     "emr.encryption.tls_certificates"),
    ({"encryption": {**SECURE["encryption"], "tls_provider_class": "not a class"}},
     "emr.encryption.tls_provider_class"),
    ({"encryption": {**SECURE["encryption"], "local_disk_kms_key": "alias/emr"}}, "emr.encryption.local_disk_kms_key"),
    ({"encryption": {**SECURE["encryption"], "local_disk_kms_key": DISK_KEY.replace(REGION, "us-east-1")}},
     "emr.encryption.local_disk_kms_key"),
    ({"encryption": {"at_rest": False}}, "emr.encryption.at_rest"),
    ({"visible_to_all_users": "no"}, "emr.visible_to_all_users"),
    ({"require_private_subnet": 0}, "emr.require_private_subnet"),
    ({"python": "/usr/bin/python3"}, "emr.python"),
])
def test_bad_settings_raise_before_any_boto3_call(no_boto, section, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.").replace("[", r"\[")):
        requests.cluster_request({**SETTINGS, **section}, PATHS, f"{BASE}{WHEEL}")


def test_bad_ids_paths_and_uris_raise_before_any_boto3_call(no_boto, cfg):
    with pytest.raises(ValueError, match="cluster id"):
        clusters.status("cluster-1")
    with pytest.raises(ValueError, match="cluster id"):
        clusters.down("j-lowercase")
    with pytest.raises(ValueError, match="step id"):
        clusters.logs("j-ABC123", "step-1")
    with pytest.raises(ValueError, match="cluster id"):
        clusters.submit(cfg, "i-123")
    with pytest.raises(ValueError, match=r"paths\.lake.*outside"):
        requests.cluster_request(SETTINGS, {**PATHS, "lake": "s3://another-bucket/lake"}, f"{BASE}{WHEEL}")
    with pytest.raises(ValueError, match=r"paths\.raw.*outside"):
        requests.cluster_request(SETTINGS, {**PATHS, "raw": f"s3://{BUCKET}/elsewhere/raw"}, f"{BASE}{WHEEL}")
    with pytest.raises(ValueError, match=r"paths\.lake.*outside s3://ecomrec-test/lake/"):  # raw/ is read-only
        requests.cluster_request(SETTINGS, {**PATHS, "lake": f"s3://{BUCKET}/raw/lake"}, f"{BASE}{WHEEL}")
    with pytest.raises(ValueError, match=r"paths\.raw.*outside s3://ecomrec-test/raw/"):  # lake/ is writable
        requests.cluster_request(SETTINGS, {**PATHS, "raw": f"s3://{BUCKET}/lake/raw"}, f"{BASE}{WHEEL}")
    with pytest.raises(ValueError, match=r"paths\.raw.*s3://"):
        requests.cluster_request(SETTINGS, {**PATHS, "raw": f"s3a://{BUCKET}/raw"}, f"{BASE}{WHEEL}")
    with pytest.raises(ValueError, match="unknown job 'recommend'"):
        requests.step_requests(["recommend"], f"{BASE}conf/emr.yaml", [], jobs_uri=f"{BASE}jobs/")
    with pytest.raises(ValueError, match="credential"):
        requests.step_requests(["ingest"], f"{BASE}conf/emr.yaml", ["spark.conf.spark.hadoop.fs.s3a.secret.key=x"],
                          jobs_uri=f"{BASE}jobs/")
    with pytest.raises(ValueError, match="bucket"):
        packaging.upload({"a": b"x"}, "s3://UPPER/artifacts/")


def test_cli_dry_run_prints_the_exact_requests_without_aws(no_boto, conf_file, capsys):
    assert cli.main(["up", "--conf", str(conf_file), "--dry-run", "--set", "recommend.k=20"]) == 0
    printed = json.loads(capsys.readouterr().out)
    request = printed["run_job_flow"]
    assert request["ReleaseLabel"] == "emr-spark-8.0.0"
    # the safe defaults are in what would be sent
    assert printed["create_security_configuration"]["Name"] == request["SecurityConfiguration"] == SECURITY_NAME
    assert json.loads(printed["create_security_configuration"]["SecurityConfiguration"]) == SECURITY_DOC
    assert (request["VisibleToAllUsers"], request["Instances"]["Ec2SubnetId"]) == (False, SUBNET)
    # <bucket> in paths.* is filled from emr.bucket and forwarded to every job, as are the user's --set
    sets = [f"paths.{k}=s3://{BUCKET}/{k}" for k in ("raw", "lake", "generated", "reports")] + ["recommend.k=20"]
    assert [s["HadoopJarStep"]["Args"] for s in request["Steps"]] == [
        _step_args(j, s, sets) for j, s in zip(EXPECTED_JOBS, EXPECTED_SCRIPTS, strict=True)]

    assert cli.main(["submit", "--conf", str(conf_file), "--dry-run", "--jobs", "transform"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert "Steps" not in printed["run_job_flow"]  # the cluster and its configurations...
    assert [s["Name"] for s in printed["add_job_flow_steps"]["Steps"]] == ["ecomrec transform"]  # ...and the steps


def test_cli_reports_configuration_errors_with_exit_code_2(no_boto, conf_file, capsys):
    assert cli.main(["up", "--conf", str(conf_file), "--dry-run", "--set", "emr.bucket=Not_A_Bucket"]) == 2
    assert "emr.bucket" in capsys.readouterr().err
    assert cli.main(["status", "--conf", str(conf_file), "--cluster-id", "nope"]) == 2
    assert "cluster id" in capsys.readouterr().err
    assert cli.main(["down", "--conf", str(conf_file), "--set", "emr.region=mars-1"]) == 2
    assert "emr.region" in capsys.readouterr().err


def test_cli_policy_writes_rendered_files(no_boto, conf_file, tmp_path, capsys):
    out = tmp_path / "iam"
    assert cli.main(["policy", "--conf", str(conf_file), "--account", ACCOUNT, "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(iam.IAM_FILES)
    assert f"arn:aws:s3:::{BUCKET}/raw/*" in (out / "job-role-policy.json").read_text()


def test_build_wheel_uses_pip_wheel_no_deps(monkeypatch, tmp_path):
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        (tmp_path / WHEEL).write_bytes(b"PK")

    monkeypatch.setattr(packaging, "_run", fake_run)
    assert packaging.build_wheel(out_dir=tmp_path) == tmp_path / WHEEL
    assert calls == [[sys.executable, "-m", "pip", "wheel", str(config.REPO_ROOT), "--no-deps", "--quiet",
                      "-w", str(tmp_path)]]


def test_bootstrap_script_is_executable_bash():
    script = layout.BOOTSTRAP_SCRIPT
    assert script.is_file() and script.stat().st_mode & 0o111
    assert script.read_text().startswith("#!/bin/bash\n")
    assert Path(script).name == "install-wheel.sh"


def test_delta_dynamodb_logstore_is_configured_and_granted_only_on_its_table():
    """emr.delta_logstore.dynamodb_table (writers on several clusters, issue 13 point 3): the cluster and the
    serverless jobs get Delta's S3DynamoDBLogStore for s3:// and s3a:// with EMR's jar, and the job role gets
    exactly the LogStore's actions on that one table; unset, none of it is sent; a bad name fails first."""
    ls = {"delta_logstore": {"dynamodb_table": "ecomrec_delta_log"}}
    conf = {"spark.delta.logStore.s3.impl": "io.delta.storage.S3DynamoDBLogStore",
            "spark.delta.logStore.s3a.impl": "io.delta.storage.S3DynamoDBLogStore",
            "spark.io.delta.storage.S3DynamoDBLogStore.ddb.tableName": "ecomrec_delta_log",
            "spark.io.delta.storage.S3DynamoDBLogStore.ddb.region": REGION}
    jar = "/usr/share/aws/delta/lib/delta-storage-s3-dynamodb.jar"

    def spark_defaults(settings):
        req = requests.cluster_request(settings, PATHS, BASE + WHEEL)
        return next(c for c in req["Configurations"] if c["Classification"] == "spark-defaults")["Properties"]

    on, off = spark_defaults({**SETTINGS, **ls}), spark_defaults(SETTINGS)
    assert {k: v for k, v in on.items() if k not in off} == {**conf, "spark.jars": jar}
    assert {k: on[k] for k in off} == off  # nothing else changes
    s = {**SETTINGS, **ls, "mode": "serverless", "serverless": {"execution_role_arn": ROLE_ARN}}
    params = requests.serverless_requests(s, ["ingest"], [], application_id="00abc")["start_job_run"][0][
        "jobDriver"]["sparkSubmit"]["sparkSubmitParameters"]
    assert f"--conf spark.jars=/usr/share/aws/delta/lib/delta-spark.jar,/usr/share/aws/delta/lib/delta-storage.jar,{jar}" \
        in params
    assert all(f"--conf {k}={v}" in params for k, v in conf.items())

    job = iam.render_iam({**SETTINGS, **ls}, ACCOUNT)["job-role-policy.json"]["Statement"]
    assert job[-1] == {"Sid": "DeltaLogStoreTable", "Effect": "Allow",
                       "Action": ["dynamodb:CreateTable", "dynamodb:DescribeTable", "dynamodb:GetItem",
                                  "dynamodb:PutItem", "dynamodb:Query"],
                       "Resource": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/ecomrec_delta_log"}
    assert job[:-1] == iam.render_iam(SETTINGS, ACCOUNT)["job-role-policy.json"]["Statement"]
    with pytest.raises(ValueError, match="emr.delta_logstore.dynamodb_table"):
        settings.resolve_settings({**SETTINGS, "delta_logstore": {"dynamodb_table": "bad name!"}})
    with pytest.raises(ValueError, match="emr.delta_logstore.table"):
        settings.resolve_settings({**SETTINGS, "delta_logstore": {"table": "x"}})
