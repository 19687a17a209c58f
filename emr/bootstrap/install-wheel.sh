#!/bin/bash
# EMR bootstrap action: install the ecomrec-spark wheel and its Python dependencies on every node.
#
#   install-wheel.sh PYTHON WHEEL_S3_URI [NO_DEPS_REQUIREMENT ...] -- [REQUIREMENT ...]
#
# The wheel and the requirements before `--` (delta-spark) are installed with --no-deps, so pip
# never pulls in pyspark: EMR's own Spark build (on PYTHONPATH in every Spark container) is used.
# The requirements after `--` are installed normally.  `ecomrec emr up` writes these arguments from
# pyproject.toml (ecomrec_spark.aws.emr.cluster_request); the nodes need to reach PyPI (a NAT gateway
# or a public subnet), or use `emr.shipping: archive` instead.  Credentials: the instance profile.
set -euo pipefail

if [ "$#" -lt 2 ]; then
  echo "usage: $0 PYTHON WHEEL_S3_URI [NO_DEPS_REQ ...] -- [REQ ...]" >&2
  exit 2
fi
PYTHON="$1"
WHEEL_URI="$2"
shift 2
no_deps=()
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
  no_deps+=("$1")
  shift
done
[ "${1:-}" = "--" ] && shift
deps=("$@")

# The interpreter PYSPARK_PYTHON points to (spark-env); Amazon Linux 2023 packages it as python3.11.
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  sudo dnf install -y "$(basename "$PYTHON")" "$(basename "$PYTHON")-pip"
fi
if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
  sudo dnf install -y "$(basename "$PYTHON")-pip"
fi

workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT
aws s3 cp --only-show-errors "$WHEEL_URI" "$workdir/"
wheel="$workdir/$(basename "$WHEEL_URI")"

pip=(sudo "$PYTHON" -m pip install --quiet --prefer-binary --no-warn-script-location)
"${pip[@]}" --no-deps "$wheel" "${no_deps[@]}"
if [ "${#deps[@]}" -gt 0 ]; then
  "${pip[@]}" "${deps[@]}"
fi

# Fail the bootstrap (and so the cluster, before any instance-hour is spent on steps) if the
# library does not import.  pyspark is only importable inside Spark, and `delta` imports pyspark,
# so delta is checked by finding it rather than importing it.
"$PYTHON" - <<'PY'
import importlib.util

import ecomrec_spark, xgboost, sklearn, pandas, pyarrow, yaml, boto3  # noqa: F401,E401

assert importlib.util.find_spec("delta") is not None, "delta-spark is not installed"
print("ecomrec-spark", ecomrec_spark.__version__, "installed")
PY
