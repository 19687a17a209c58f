"""Package the project for EMR and put it in S3: the wheel, the locked wheelhouse, the packed venv.

The default shipping method is ``bootstrap``: :func:`build_wheel` builds the project wheel (``pip
wheel``), :func:`build_wheelhouse` resolves the dependencies once, at package time, into wheels for the
nodes' Python and CPU, :func:`lock_wheelhouse` pins each by SHA-256, and ``emr/bootstrap/install-wheel.sh``
installs exactly those files on every node (``--no-index --require-hashes --no-deps``).  ``archive``
ships a packed venv (:func:`pack_venv`, built from the same lock) through ``spark.archives`` instead;
EMR Serverless always uses the archive (it has no bootstrap actions).

:func:`plan_uploads` lists what goes under ``s3://<bucket>/<prefix>artifacts/ecomrec-<version>/`` (the
wheelhouse, ``jobs/*.py``, the run config, the bootstrap script) and :func:`upload` puts it there,
skipping files already there unchanged.
"""

from __future__ import annotations

import hashlib
import io
import logging
import platform
import re
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from botocore.exceptions import BotoCoreError, ClientError

from ecomrec_spark.aws import clients
from ecomrec_spark.aws import s3 as _s3  # upload-raw's size + MD5 rule decides what is sent again
from ecomrec_spark.aws.clients import EmrError
from ecomrec_spark.aws.layout import BOOTSTRAP_SCRIPT, LOCK_NAME, Artifacts, project_version, wheel_name
from ecomrec_spark.aws.settings import check_s3_uri, reject_credentials
from ecomrec_spark.config import REPO_ROOT

log = logging.getLogger(__name__)

# Requirements that EMR already provides (pyspark) or that must not pull pyspark in (delta-spark).
_PROVIDED = {"pyspark"}
_NO_DEPS = {"delta-spark"}


def runtime_requirements(root: Path = REPO_ROOT) -> tuple[list[str], list[str]]:
    """Split the project's dependencies for installing on EMR.

    Returns
    -------
    (no_deps, deps) : tuple of lists
        ``no_deps`` are installed with ``--no-deps`` (delta-spark, so it does not pull pyspark);
        ``deps`` normally.  pyspark itself is left out: EMR provides its own build.
    """
    with open(root / "pyproject.toml", "rb") as fh:
        deps = tomllib.load(fh)["project"]["dependencies"]
    no_deps: list[str] = []
    normal: list[str] = []
    for req in deps:
        name = re.match(r"[A-Za-z0-9_.-]+", req).group().lower().replace("_", "-")  # type: ignore[union-attr]
        if name in _PROVIDED:
            continue
        (no_deps if name in _NO_DEPS else normal).append(req.replace(" ", ""))
    return no_deps, normal


def _run(cmd: Sequence[str], **kwargs: Any) -> None:
    log.info("running %s", " ".join(cmd))
    subprocess.run(list(cmd), check=True, **kwargs)


def build_wheel(root: Path = REPO_ROOT, out_dir: Path | None = None) -> Path:
    """Build the project wheel with ``pip wheel . --no-deps -w dist/`` and return its path.

    ``pip wheel`` needs no extra package (``python -m build`` would); the wheel is pure Python.
    """
    out_dir = Path(out_dir or root / "dist")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / wheel_name(project_version(root), root)
    _run([sys.executable, "-m", "pip", "wheel", str(root), "--no-deps", "--quiet", "-w", str(out_dir)])
    if not target.is_file():
        raise FileNotFoundError(f"pip wheel did not produce {target}")
    log.info("built %s", target)
    return target


_WHEEL_FILE = re.compile(r"^(?P<name>[A-Za-z0-9_.]+)-(?P<version>[A-Za-z0-9_.!+]+)(?:-\d[\w.]*)?"
                         r"-[\w.]+-[\w.]+-[\w.]+\.whl$")
#: pip platform tags per node architecture: Amazon Linux 2023 has glibc 2.34, so every manylinux tag up to
#: 2_34 runs there.  pip matches the tags it is given and no older ones, so each is named.
_PLATFORMS = {arch: [f"manylinux_2_{v}_{arch}" for v in (34, 28, 17)] + [f"manylinux2014_{arch}"]
              for arch in ("x86_64", "aarch64")}
#: Graviton families (m6g, c7gn, r8g, x2gd, im4gn, t4g ...): a ``g`` after the generation digit.
_GRAVITON = re.compile(r"^[a-z]+\d+[a-z]*g[a-z]*\.")


def node_architectures(s: Mapping[str, Any]) -> list[str]:
    """The CPU architectures of the configured instance types (``x86_64``, ``aarch64``), sorted."""
    types = ([t for f in s["instance_fleets"] for t in f["instance_types"]] if s["instance_fleets"] is not None
             else [g["instance_type"] for g in s["instance_groups"]])
    return sorted({"aarch64" if _GRAVITON.match(t) else "x86_64" for t in types})


def lock_wheelhouse(folder: Path) -> str:
    """Write ``requirements.lock`` for every wheel in ``folder`` and return its text.

    One line per project, ``name==version --hash=sha256:<digest>`` with one hash per wheel file (one per
    architecture).  ``pip install --no-index --find-links <folder> --require-hashes --no-deps -r`` then
    installs exactly these files and nothing else: no version range is resolved and no index is asked.

    Raises
    ------
    ValueError
        When the folder has no wheels, a file is not a wheel name, or one project has two versions.
    """
    folder = Path(folder)
    pins: dict[str, tuple[str, list[str]]] = {}
    for path in sorted(folder.glob("*.whl")):
        m = _WHEEL_FILE.match(path.name)
        if not m:
            raise ValueError(f"{path} is not a wheel file name (name-version-python-abi-platform.whl)")
        name = re.sub(r"[-_.]+", "-", m["name"]).lower()
        version, digest = m["version"], hashlib.sha256(path.read_bytes()).hexdigest()
        if name in pins and pins[name][0] != version:
            raise ValueError(f"the wheelhouse {folder} holds {name} {pins[name][0]} and {version}; "
                             "rebuild it from scratch (one version per project)")
        pins.setdefault(name, (version, []))[1].append(digest)
    if not pins:
        raise ValueError(f"the wheelhouse {folder} holds no wheels; build it with build_wheelhouse()")
    lines = [f"{name}=={version} " + " ".join(f"--hash=sha256:{h}" for h in sorted(hashes))
             for name, (version, hashes) in sorted(pins.items())]
    text = "# written by ecomrec_spark.aws.packaging.lock_wheelhouse: every wheel of this folder, pinned and hashed\n"
    text += "\n".join(lines) + "\n"
    (folder / LOCK_NAME).write_text(text)
    return text


def build_wheelhouse(wheel: Path, out_dir: Path, *, python_version: str = "3.11",
                     architectures: Sequence[str] = ("x86_64",), root: Path = REPO_ROOT) -> Path:
    """Download the wheels the nodes need, for their Python and architecture, next to the project wheel,
    and lock them (:func:`lock_wheelhouse`).

    The version ranges of ``pyproject.toml`` are resolved here, once, at package time (``pip download
    --only-binary=:all:``); the nodes install the resulting files by hash and never see an index.
    delta-spark comes without its dependencies (pyspark is EMR's own), as on the cluster.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.whl"):  # a wheelhouse is rebuilt whole, so an old version never lingers
        stale.unlink()
    no_deps, deps = runtime_requirements(root)
    for arch in architectures:
        if arch not in _PLATFORMS:
            raise ValueError(f"architecture {arch!r} is not one of {', '.join(_PLATFORMS)}")
        platforms = [a for tag in _PLATFORMS[arch] for a in ("--platform", tag)]
        target = ["--only-binary=:all:", *platforms, "--python-version", python_version,
                  "--implementation", "cp", "--dest", str(out_dir), "--quiet"]
        _run([sys.executable, "-m", "pip", "download", *target, *deps])
        _run([sys.executable, "-m", "pip", "download", *target, "--no-deps", *no_deps])
    (out_dir / Path(wheel).name).write_bytes(Path(wheel).read_bytes())
    lock_wheelhouse(out_dir)
    log.info("wheelhouse %s: %d wheels for Python %s on %s", out_dir, len(list(out_dir.glob("*.whl"))),
             python_version, ", ".join(architectures))
    return out_dir


def wheelhouse_wheel(wheelhouse: Path) -> Path:
    """The project wheel in a wheelhouse folder, after checking the folder is one (a lock, one project wheel)."""
    folder = Path(wheelhouse)
    if not (folder / LOCK_NAME).is_file():
        raise FileNotFoundError(f"{folder / LOCK_NAME} does not exist; build the wheelhouse with build_wheelhouse() "
                                "(or drop --wheelhouse to build it)")
    wheels = sorted(folder.glob("ecomrec_spark-*.whl"))
    if len(wheels) != 1:
        raise ValueError(f"the wheelhouse {folder} must hold exactly one ecomrec_spark wheel, not {len(wheels)}")
    return wheels[0]


def pack_venv(wheel: Path, out: Path, *, python: str = "python3.11", root: Path = REPO_ROOT,
              wheelhouse: Path | None = None) -> Path:
    """Build a venv holding the wheel and its dependencies and pack it with venv-pack.

    The archive is unpacked on the cluster nodes as ``./environment`` (``spark.archives``) and run
    with ``PYSPARK_PYTHON=./environment/bin/python``.  venv-pack does not copy the interpreter, so run
    this on the cluster's OS, CPU architecture and Python (for EMR: Amazon Linux 2023, x86_64 or
    arm64 for Graviton instances), e.g. inside ``docker run amazonlinux:2023``; see emr/README.md.

    The venv gets exactly the wheels of a locked wheelhouse (:func:`build_wheelhouse`, built here for
    this machine's CPU when none is given), installed as the bootstrap installs them: by hash, without
    an index and without resolving anything.

    Parameters
    ----------
    wheel : Path
        The project wheel from :func:`build_wheel`.
    out : Path
        Where to write ``pyspark_venv.tar.gz``.
    python : str
        The interpreter that matches ``emr.python`` on the nodes (its name ends in the version: python3.11).
    wheelhouse : Path, optional
        A wheelhouse already built for that Python and this CPU.
    """
    if not sys.platform.startswith("linux"):
        raise RuntimeError("pack_venv must run on Linux matching the cluster (Amazon Linux 2023); "
                           "use the Docker recipe in emr/README.md or emr.shipping: bootstrap")
    version = re.search(r"python(3\.\d+)$", python)
    if wheelhouse is None and not version:
        raise ValueError(f"python {python!r} must end in its version, like python3.11 (the wheels are picked for it)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ecomrec-venv-") as tmp:
        if wheelhouse is None and version:
            wheelhouse = build_wheelhouse(wheel, Path(tmp) / "wheelhouse", python_version=version.group(1),
                                          architectures=[platform.machine()], root=root)
        assert wheelhouse is not None, "built above: without one, a version was required"
        env = Path(tmp) / "venv"
        _run([python, "-m", "venv", str(env)])
        pip = [str(env / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        _run([*pip, "--no-index", "--find-links", str(wheelhouse), "--require-hashes", "--no-deps",
              "-r", str(Path(wheelhouse) / LOCK_NAME)])
        _run([*pip, "venv-pack==0.2.0"])  # the packing tool, at pack time; the nodes never run pip
        _run([str(env / "bin" / "venv-pack"), "-p", str(env), "-o", str(out), "-f"])
    return out


def shipped_config(conf_path: Path) -> bytes:
    """The run config as uploaded: the file with the sections it inherits from conf/local.yaml merged in
    and without the launcher-only ``emr:`` section.

    The wheel holds no ``conf/`` folder, so on the cluster the file must stand alone.
    """
    from ecomrec_spark import config as _config

    raw = yaml.safe_load(Path(conf_path).read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"config file {conf_path} must hold a mapping at the top level")  # noqa: TRY004
    merged = _config._with_defaults(raw, Path(conf_path))  # same inheritance as load_config
    merged.pop("emr", None)
    reject_credentials(merged, "")
    header = f"# shipped by `ecomrec emr` from {Path(conf_path).name}; inherited sections merged in\n"
    return (header + yaml.safe_dump(merged, sort_keys=False)).encode()


def conf_archive(conf_name: str, conf_bytes: bytes) -> bytes:
    """A ``.tar.gz`` holding only the run config (EMR Serverless unpacks it as ``./conf``)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo(conf_name)
        info.size = len(conf_bytes)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(conf_bytes))
    return buf.getvalue()


def plan_uploads(settings: Mapping[str, Any], art: Artifacts, conf_path: Path, *,
                 wheelhouse: Path | None = None, archive: Path | None = None, root: Path = REPO_ROOT,
                 parts: Sequence[str] = ("wheelhouse", "jobs", "conf", "bootstrap", "archive"),
                 ) -> dict[str, Path | bytes]:
    """What to upload, as ``{key relative to art.base: local file or bytes}``.

    ``parts`` picks among the wheelhouse (bootstrap shipping: the project wheel, its dependencies'
    wheels and ``requirements.lock``), ``jobs/*.py``, the shipped config (and its archive in serverless
    mode), the bootstrap script (bootstrap shipping) and the packed venv (archive shipping).
    """
    files: dict[str, Path | bytes] = {}
    if "wheelhouse" in parts and settings["shipping"] == "bootstrap":
        if wheelhouse is None:
            raise ValueError("no wheelhouse to upload; build one with build_wheelhouse() or pass --wheelhouse DIR")
        name = wheelhouse_wheel(wheelhouse).name
        if art.wheel.rsplit("/", 1)[1] != name:
            raise ValueError(f"the wheelhouse {wheelhouse} holds {name}, not {art.wheel.rsplit('/', 1)[1]}")
        for path in sorted(Path(wheelhouse).iterdir()):
            if path.name.endswith(".whl") or path.name == LOCK_NAME:
                files[art.wheelhouse[len(art.base):] + path.name] = path
    if "jobs" in parts:
        for script in sorted((root / "jobs").glob("*.py")):
            files[f"jobs/{script.name}"] = script
    if "conf" in parts:
        body = shipped_config(conf_path)
        files[art.conf[len(art.base):]] = body
        if settings["mode"] == "serverless":
            files[art.conf_archive[len(art.base):]] = conf_archive(art.conf_name, body)
    if "bootstrap" in parts and settings["shipping"] == "bootstrap":
        files[art.bootstrap[len(art.base):]] = BOOTSTRAP_SCRIPT
    if "archive" in parts and settings["shipping"] == "archive":
        if archive is None:
            raise ValueError("archive shipping needs a packed venv: pass --archive pyspark_venv.tar.gz "
                             "(see emr/README.md) or set emr.shipping=bootstrap")
        files[art.venv[len(art.base):]] = Path(archive)
    for key, src in files.items():
        if isinstance(src, Path) and not src.is_file():
            raise FileNotFoundError(f"{src} (for {key}) does not exist")
    return files


def upload(files: Mapping[str, Path | bytes], s3_prefix: str, *, client: Any = None,
           region: str | None = None) -> list[str]:
    """Upload files to S3 under ``s3_prefix`` with boto3 and return their URIs.

    Parameters
    ----------
    files : mapping
        ``{relative key: local Path or bytes}``.
    s3_prefix : str
        ``s3://bucket/prefix/`` (ending in ``/``).
    client : boto3 S3 client, optional
        Default: a new client (default credential chain) in ``region``.
    """
    bucket, prefix = check_s3_uri("s3_prefix", s3_prefix)
    if prefix and not prefix.endswith("/"):
        raise ValueError(f"s3_prefix {s3_prefix!r} must end with '/'")
    for key in files:
        if key.startswith("/") or ".." in key.split("/") or not key:
            raise ValueError(f"upload key {key!r} must be a relative path")
    s3 = clients.client("s3", region, client)
    try:
        s3.head_bucket(Bucket=bucket)
    except (ClientError, BotoCoreError) as exc:  # 403/404, no credentials
        raise EmrError(f"bucket s3://{bucket} is missing or not accessible with the current credentials ({exc}); "
                       f"create it first: aws s3 mb s3://{bucket} --region <region>") from None
    uris = []
    for key, src in files.items():
        uris.append(f"s3://{bucket}/{prefix}{key}")
        if isinstance(src, (bytes, bytearray)):
            s3.put_object(Bucket=bucket, Key=prefix + key, Body=bytes(src))
        elif _unchanged(s3, bucket, prefix + key, Path(src)):  # the wheelhouse is ~150 MB and rarely changes
            log.info("unchanged, not sent again: %s", uris[-1])
            continue
        else:
            md5, _ = _s3._md5(Path(src))
            s3.upload_file(str(src), bucket, prefix + key, ExtraArgs={"Metadata": {_s3.MD5_METADATA: md5}})
        log.info("uploaded %s", uris[-1])
    return uris


def _unchanged(s3: Any, bucket: str, key: str, path: Path) -> bool:
    """True when ``key`` already holds ``path`` (same size and MD5, the rule of ``ecomrec upload-raw``)."""
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError:
        return False
    return _s3._same_object(head, path.stat().st_size, *_s3._md5(path))
