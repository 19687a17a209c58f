"""Config and argument errors stop a command before Spark starts, naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ecomrec_spark.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]


def test_defaults_and_overrides():
    cfg = load_config(None, ["transform.iqr_k=3", "ingest.sources=[olist, transactions]", "paths.lake=/tmp/x"])
    assert cfg["transform"]["iqr_k"] == 3
    assert cfg["ingest"]["sources"] == ["olist", "transactions"]
    assert cfg["paths"]["lake"] == "/tmp/x"
    assert cfg["paths"]["raw"] == str(REPO / "data" / "generated")  # relative paths resolve against the repo


@pytest.mark.parametrize("override, message", [
    ("transfrom.iqr_k=2", "unknown config key 'transfrom'"),
    ("transform.iqr_kk=2", "unknown config key 'transform.iqr_kk'"),
    ("transform.iqr_k=abc", "config key 'transform.iqr_k' must be int or float, got 'abc'"),
    ("transform.iqr_k=-1", "'transform.iqr_k' must be > 0"),
    ("spark.shuffle_partitions=true", "config key 'spark.shuffle_partitions' must be int"),
    ("paths.lake=", "config key 'paths.lake' is missing"),
    ("paths.lake=s3://bucket/it's", "config key 'paths.lake'"),
    ("paths.raw=../../etc", "'..'"),
    ("ingest.sources=[olist, shopify]", "unknown source 'shopify'"),
    ("generate.messy.duplicates=0.9", "generate.messy.duplicates"),
    ("nokey", "--set expects key=value"),
    ("insights.top_n=0", "'insights.top_n' must be in [1, 1000]"),
    ("insights.sentiment.features=bow", "must be tfidf or word2vec"),
    ("insights.sentiment.negative_at=0.9", "'insights.sentiment.negative_at' (0.9) <= 'positive_at' (0.6)"),
])
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=None) as err:
        load_config(None, [override])
    assert message in str(err.value)


def test_emr_config_needs_real_buckets_and_inherits_transform_defaults():
    with pytest.raises(ConfigError, match="placeholder"):
        load_config(REPO / "conf" / "emr.yaml")
    cfg = load_config(REPO / "conf" / "emr.yaml", ["paths.raw=s3://shop/raw", "paths.lake=s3://shop/lake",
                                                  "paths.generated=s3://shop/gen", "paths.reports=s3://shop/rep"])
    assert cfg["paths"]["lake"] == "s3://shop/lake"
    assert cfg["spark"]["delta_packages"] == []
    assert cfg["generate"]["seed"] == 42  # inherited from local.yaml


def test_spark_settings_keep_their_dotted_names():
    cfg = load_config(None, ["spark.conf.spark.task.cpus=2", "spark.conf.spark.databricks.delta.snapshotPartitions=1"])
    assert cfg["spark"]["conf"]["spark.task.cpus"] == "2"
    assert cfg["spark"]["conf"]["spark.databricks.delta.snapshotPartitions"] == "1"
    assert cfg["spark"]["conf"]["spark.sql.session.timeZone"] == "UTC"  # the file's other settings stay


def test_missing_config_file():
    with pytest.raises(ConfigError, match="config file not found: nope.yaml"):
        load_config("nope.yaml")


def test_cli_fails_fast_with_exit_code_2():
    out = subprocess.run([sys.executable, "-m", "ecomrec_spark.cli", "ingest", "--set", "transform.iqr_k=abc"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "configuration error: config key 'transform.iqr_k'" in out.stderr
    assert "Traceback" not in out.stderr
    out = subprocess.run([sys.executable, "-m", "ecomrec_spark.cli", "generate", "--orders", "3"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--orders must be at least 10" in out.stderr


def test_every_command_has_help():
    out = subprocess.run([sys.executable, "-m", "ecomrec_spark.cli", "--help"], cwd=REPO, capture_output=True, text=True)
    for command in ("generate", "ingest", "transform", "run-all"):
        assert command in out.stdout
        sub = subprocess.run([sys.executable, "-m", "ecomrec_spark.cli", command, "--help"], cwd=REPO, capture_output=True, text=True)
        assert sub.returncode == 0 and "--conf" in sub.stdout and "--set" in sub.stdout


def test_generate_without_paths_generated_names_the_key_before_spark(tmp_path):
    conf = tmp_path / "shop.yaml"
    conf.write_text(f"paths:\n  raw: {tmp_path}/raw\n  lake: {tmp_path}/lake\n")
    out = subprocess.run([sys.executable, "-m", "ecomrec_spark.cli", "generate", "--conf", str(conf)],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "config key 'paths.generated' is missing; set it in the file or with --set paths.generated=... " \
           "(or pass --out)" in out.stderr


def test_missing_raw_folder_is_reported_before_spark(tmp_path):
    out = subprocess.run([sys.executable, "-m", "ecomrec_spark.cli", "ingest", "--set", f"paths.raw={tmp_path}/nothing"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and f"'paths.raw' = {tmp_path}/nothing does not exist" in out.stderr


def test_item_item_and_als_tuning_defaults():
    cfg = load_config(None, ["recommend.item_item.ease_neighbors=300"])
    ii, als = cfg["recommend"]["item_item"], cfg["recommend"]["als"]
    assert ii["ease_neighbors"] == 300 and load_config(None)["recommend"]["item_item"]["ease_neighbors"] is None
    assert ii["tune"] is True and ii["ease_lambdas"] and ii["dense_max_items"] <= ii["max_items"]
    assert als["tune"] is True and set(als["grid"]) == {"rank", "reg_param", "alpha"}
    retail = load_config(REPO / "conf" / "online_retail.yaml")["recommend"]
    assert retail["item_item"] == load_config(None)["recommend"]["item_item"]  # inherited from local.yaml
    assert retail["als"]["grid"] == als["grid"]


@pytest.mark.parametrize("override, message", [
    ("recommend.item_item.ease_neighbors=0", "'recommend.item_item.ease_neighbors' must be >= 1 or null"),
    ("recommend.item_item.ease_neighbors=many", "config key 'recommend.item_item.ease_neighbors' must be int or null"),
    ("recommend.item_item.ease_lambdas=[]", "'recommend.item_item.ease_lambdas' must be a non-empty list"),
    ("recommend.item_item.ease_lambdas=[100, -1]", "'recommend.item_item.ease_lambdas' must be a non-empty list"),
    ("recommend.item_item.ease_lambdas=500", "config key 'recommend.item_item.ease_lambdas' must be list"),
    ("recommend.item_item.tune=yes please", "config key 'recommend.item_item.tune' must be bool"),
    ("recommend.item_item.dense_max_items=-1", "'recommend.item_item.dense_max_items' must be >= 0"),
    ("recommend.item_item.ease_lambda=0", "'recommend.item_item.ease_lambda' must be > 0"),
    ("recommend.als.tune=1", "config key 'recommend.als.tune' must be bool"),
    ("recommend.als.grid.rank=[0, 64]", "'recommend.als.grid.rank' must be a non-empty list of int >= 1"),
    ("recommend.als.grid.rank=[32.5]", "'recommend.als.grid.rank' must be a non-empty list of int >= 1"),
    ("recommend.als.grid.alpha=[]", "'recommend.als.grid.alpha' must be a non-empty list"),
    ("recommend.als.grid.reg_param=[-0.1]", "'recommend.als.grid.reg_param' must be a non-empty list"),
    ("recommend.als.grid.beta=[1]", "unknown config key 'recommend.als.grid.beta'"),
])
def test_bad_item_item_and_als_values_name_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert message in str(err.value)


@pytest.mark.parametrize("override, message", [
    ("catalog.database=Shop-DB", "config key 'catalog.database': database 'Shop-DB' is not a valid name: use 1-128 "
                                 "lower-case letters, digits or '_', not starting with a digit; "
                                 "for example --set catalog.database=ecomrec"),
    ("catalog.database=1shop", "config key 'catalog.database': database '1shop' is not a valid name"),
    ("catalog.workgroup=my group", "config key 'catalog.workgroup': workgroup 'my group' is not a valid Athena "
                                   "workgroup name"),
    ("catalog.s3_lake=/data/lake", "config key 'catalog.s3_lake' = '/data/lake' must start with s3:// or s3a://; "
                                   "for example --set catalog.s3_lake=s3://my-bucket/lake/"),
    ("catalog.s3_lake=s3://My_Bucket/lake", "config key 'catalog.s3_lake': 'My_Bucket' is not a valid S3 bucket name"),
    ("catalog.s3_lake=s3://shop/lake/../raw", "config key 'catalog.s3_lake': 's3://shop/lake/../raw': the key prefix"),
    ("catalog.athena_output=s3a://shop/results/", "config key 'catalog.athena_output' = 's3a://shop/results/' must "
                                                  "start with s3://"),
    ("catalog.athena_output=s3://192.168.1.1/results", "config key 'catalog.athena_output': '192.168.1.1' is not a "
                                                       "valid S3 bucket name: a bucket name cannot look like an IP"),
    ("sources.transactions.folder=../elsewhere", "config key 'sources.transactions.folder' = '../elsewhere' must be a "
                                                 "relative sub-folder inside paths.raw"),
    ("sources.transactions.folder=/etc", "for example --set sources.transactions.folder=transactions"),
    ("sources.transactions.folder=s3://other-bucket/x", "config key 'sources.transactions.folder'"),
    ("sources.transactions.folder=''", "config key 'sources.transactions.folder' = ''"),
    ("sources.transactions.files=../../*.csv", "config key 'sources.transactions.files' = '../../*.csv' must be a "
                                               "relative glob inside paths.raw"),
    ("sources.transactions.files=sub/..\\..\\*.csv", "config key 'sources.transactions.files'"),
    ("sources.transactions.files=~/x.csv", "for example --set sources.transactions.files=*.csv*"),
])
def test_catalog_and_source_locations_are_checked_before_spark(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert message in str(err.value)


def test_good_catalog_and_source_locations_pass():
    cfg = load_config(None, ["catalog.database=shop_2024", "catalog.workgroup=ecomrec-v3.1",
                             "catalog.s3_lake=s3a://shop-data/lake", "catalog.athena_output=s3://shop-data/athena/",
                             "sources.transactions.folder=retail/2024", "sources.transactions.files=online_*.csv*"])
    assert (cfg["catalog"]["database"], cfg["sources"]["transactions"]["folder"]) == ("shop_2024", "retail/2024")
    assert load_config(REPO / "conf" / "online_retail.yaml")["sources"]["transactions"]["folder"] == "."


def test_emr_bucket_fills_the_bucket_placeholder_for_every_command():
    cfg = load_config(REPO / "conf" / "emr.yaml", ["emr.bucket=shop", "paths.reports=s3://other/rep"])
    assert {k: cfg["paths"][k] for k in ("raw", "lake", "generated", "reports")} == {
        "raw": "s3://shop/raw", "lake": "s3://shop/lake", "generated": "s3://shop/generated",
        "reports": "s3://other/rep"}  # a path set by the user keeps its value
    with pytest.raises(ConfigError, match="config key 'emr.bucket' = 'Shop_1' is not an S3 bucket name"):
        load_config(REPO / "conf" / "emr.yaml", ["emr.bucket=Shop_1"])


def test_an_unknown_nested_key_names_its_dotted_path_and_the_allowed_keys():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["recommend.knn.metod=exact"])
    message = str(err.value)
    assert "unknown config key 'recommend.knn.metod'" in message
    assert "allowed here: recommend.knn.exact_max_products, recommend.knn.method, recommend.knn.target_recall" in message


def test_a_string_for_an_int_and_a_bool_for_a_number_are_refused_naming_the_key():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["recommend.k='3'"])  # quoted: a YAML string, never coerced
    assert "config key 'recommend.k' must be int, got '3'" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_config(None, ["recommend.als.alpha=true"])
    assert "config key 'recommend.als.alpha' must be int or float, got True" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_config(None, ["serving.variants=[{name: a, model: ease, weight: 1, share: 2}]"])
    assert "unknown config key 'serving.variants[0].share'" in str(err.value)


def test_review_dates_read_by_yaml_as_dates_come_back_as_iso_strings(tmp_path):
    conf = tmp_path / "dates.yaml"  # YAML reads each unquoted date as a datetime.date
    conf.write_text("paths: {raw: ./data/generated, lake: ./lake}\n"
                    "review: {split: {train_until: 2018-01-01, validation_until: 2018-03-01}}\n")
    cfg = load_config(conf, ["recommend.evaluate.cutoff=2018-06-01"])
    assert cfg["review"]["split"]["train_until"] == "2018-01-01"
    assert cfg["review"]["split"]["validation_until"] == "2018-03-01"
    assert cfg["recommend"]["evaluate"]["cutoff"] == "2018-06-01"
    with pytest.raises(ConfigError) as err:
        load_config(None, ["review.split.train_until=2018-03-01", "review.split.validation_until=2018-01-01"])
    assert "config key 'review.split.validation_until' must be after review.split.train_until (2018-03-01)" \
        in str(err.value)


def test_a_bad_emr_value_is_a_config_error_and_still_a_value_error():
    from ecomrec_spark.aws.settings import resolve_settings

    with pytest.raises(ConfigError) as err:
        resolve_settings({"bucket": "shop", "region": "eu-west-1", "idle_timeout_seconds": 10})
    assert isinstance(err.value, ValueError)
    assert str(err.value) == ("config key 'emr.idle_timeout_seconds' must be in [60, 604800], got 10; "
                              "fix: --set emr.idle_timeout_seconds=1800 (auto-termination stays on)")
    with pytest.raises(ValueError, match="unknown config key 'emr.encryption.at_rest'"):
        resolve_settings({"bucket": "shop", "region": "eu-west-1", "encryption": {"at_rest": False}})


def test_load_settings_gives_each_section_as_frozen_attributes():
    from ecomrec_spark.config import load_settings

    settings = load_settings(None, ["serving.k=7", "recommend.k=12"])
    assert (settings.serving.k, settings.recommend.k, settings.serving.gate.ndcg_drop) == (7, 12, 0.02)
    assert settings.paths.lake == str(REPO / "lake") and settings.source == str(REPO / "conf" / "local.yaml")
    # the recommend section dumps to what the mapping holds: the build records it (recommendation_runs, the version)
    assert settings.recommend.model_dump(mode="json") == load_config(None, ["serving.k=7", "recommend.k=12"])["recommend"]
    with pytest.raises(Exception, match="frozen"):
        settings.serving.k = 3  # type: ignore[misc]


# Keys conf/local.yaml sets to a value its model default deliberately differs from: {dotted key: why}.
DELIBERATE_DIFFERENCES: dict[str, str] = {}


def _differences(yaml_value: object, model_value: object, key: str) -> list[str]:
    """Every dotted key under ``key`` whose local.yaml value is not the model default (value and type)."""
    if isinstance(yaml_value, dict):
        if not isinstance(model_value, dict):
            return [f"{key}: local.yaml {yaml_value!r}, model {model_value!r}"]
        return [d for k, v in yaml_value.items()
                for d in (_differences(v, model_value[k], f"{key}.{k}") if k in model_value
                          else [f"{key}.{k}: no model field"])]
    if yaml_value != model_value or type(yaml_value) is not type(model_value):
        return [f"{key}: local.yaml {yaml_value!r}, model {model_value!r}"]
    return []


def test_the_model_defaults_are_what_local_yaml_sets_for_every_inherited_section():
    """Another conf inherits local.yaml's sections; the typed models must default to the same values."""
    import yaml

    from ecomrec_spark import config
    from ecomrec_spark.settings import Settings

    local = yaml.safe_load((REPO / "conf" / "local.yaml").read_text())
    model = Settings.model_validate({"paths": {"raw": "/data", "lake": "/lake"}}).model_dump()
    found = [d for section in config._INHERITED for d in _differences(local.get(section, {}), model[section], section)
             if d.split(":")[0] not in DELIBERATE_DIFFERENCES]
    assert found == []


def test_a_numeric_stock_code_is_read_as_text():
    from ecomrec_spark.config import load_settings

    codes = load_settings(None, ["sources.transactions.non_product_codes=[POST,23]"]).sources.transactions
    assert codes.non_product_codes == ["POST", "23"]  # YAML reads 23 as an int; transform upper-cases each code


def test_an_unset_optional_path_a_command_needs_names_the_key():
    from ecomrec_spark.settings import Paths

    paths = Paths.model_validate({"raw": "/r", "lake": "/l", "reports": "s3://shop/reports/"})
    assert paths.folder("reports") == "s3://shop/reports"
    with pytest.raises(ConfigError, match=r"config key 'paths.serving' is missing; .* --set paths.serving=\.\.\. \(or x\)"):
        paths.folder("serving", " (or x)")
