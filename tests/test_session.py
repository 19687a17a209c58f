def test_session_has_delta_and_ansi(spark, tmp_path):
    assert spark.conf.get("spark.sql.ansi.enabled") == "true"
    path = str(tmp_path / "t")
    spark.range(3).write.format("delta").save(path)
    assert spark.read.format("delta").load(path).count() == 3
