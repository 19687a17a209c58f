"""The pinned runtime is the one EMR 8 ships, and xgboost comes without the CUDA NCCL wheel."""

from importlib import metadata


def test_pinned_versions():
    assert metadata.version("pyspark") == "4.0.2"
    assert metadata.version("delta-spark") == "4.0.0"
    assert int(metadata.version("pandas").split(".")[0]) < 3


def test_xgboost_cpu_provides_xgboost_spark_without_nccl():
    from xgboost.spark import SparkXGBClassifier  # noqa: F401  (the module later issues use)

    installed = {d.metadata["Name"].lower() for d in metadata.distributions()}
    assert "xgboost-cpu" in installed
    assert not any(name.startswith("nvidia-") for name in installed)
