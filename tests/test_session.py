import pytest
from pyspark.errors import PySparkAttributeError

from ecomrec_spark.session import runs_locally


def test_session_has_delta_and_ansi(spark, tmp_path):
    assert spark.conf.get("spark.sql.ansi.enabled") == "true"
    path = str(tmp_path / "t")
    spark.range(3).write.format("delta").save(path)
    assert spark.read.format("delta").load(path).count() == 3


def test_runs_locally_on_local_spark_not_on_connect_and_other_errors_surface(spark):
    assert runs_locally(spark)

    class Connect:  # what a Spark Connect session does when asked for its SparkContext
        @property
        def sparkContext(self):
            raise PySparkAttributeError(errorClass="JVM_ATTRIBUTE_NOT_SUPPORTED",
                                        messageParameters={"attr_name": "sparkContext"})

    class Broken:  # a JVM that went away is an error, not "a cluster"
        @property
        def sparkContext(self):
            raise ConnectionRefusedError("gateway gone")

    assert runs_locally(Connect()) is False
    with pytest.raises(ConnectionRefusedError):
        runs_locally(Broken())
