#!/bin/bash
# EMR bootstrap action: install the ecomrec-spark wheelhouse on every node.
#
#   install-wheel.sh PYTHON WHEELHOUSE_S3_URI
#
# WHEELHOUSE_S3_URI (s3://.../artifacts/ecomrec-<version>/wheelhouse/) holds the project wheel, the wheel of
# every runtime dependency for the nodes' Python and CPU, and requirements.lock: one `name==version
# --hash=sha256:...` line per wheel.  `ecomrec emr up` resolves pyproject.toml's version ranges once, at
# package time (ecomrec_spark.aws.packaging.build_wheelhouse), so this script resolves nothing:
#   --no-index        no package index is asked, so no version range can drift and no internet is needed
#                     (a private subnet with an S3 endpoint is enough);
#   --require-hashes  pip refuses any file whose SHA-256 is not in the lock;
#   --no-deps         nothing beyond the lock is installed; pyspark stays EMR's own build.
# This runs as root on every future cluster, which is why the job role may only read artifacts/.
set -euo pipefail

if [ "$#" -ne 2 ]; then
  echo "usage: $0 PYTHON WHEELHOUSE_S3_URI" >&2
  exit 2
fi
PYTHON="$1"
WHEELHOUSE_URI="${2%/}/"

# The interpreter PYSPARK_PYTHON points to (spark-env); Amazon Linux 2023 packages it as python3.11.
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  sudo dnf install -y "$(basename "$PYTHON")" "$(basename "$PYTHON")-pip"
fi
if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
  sudo dnf install -y "$(basename "$PYTHON")-pip"
fi

workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT
aws s3 cp --only-show-errors --recursive "$WHEELHOUSE_URI" "$workdir/wheelhouse/"

sudo "$PYTHON" -m pip install --quiet --no-warn-script-location \
  --no-index --find-links "$workdir/wheelhouse" --require-hashes --no-deps \
  -r "$workdir/wheelhouse/requirements.lock"

# Fail the bootstrap (and so the cluster, before any instance-hour is spent on steps) if the
# library does not import.  pyspark is only importable inside Spark, and `delta` imports pyspark,
# so delta is checked by finding it rather than importing it.
"$PYTHON" - <<'PY'
import importlib.util

import ecomrec_spark, xgboost, sklearn, pandas, pyarrow, yaml, boto3  # noqa: F401,E401

assert importlib.util.find_spec("delta") is not None, "delta-spark is not installed"
print("ecomrec-spark", ecomrec_spark.__version__, "installed")
PY
