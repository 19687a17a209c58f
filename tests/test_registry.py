"""The stage registry (ecomrec_spark.registry) is the one list of stages: everything else follows it. No Spark."""

from __future__ import annotations

import subprocess
import sys

from ecomrec_spark import registry
from ecomrec_spark.aws import layout
from ecomrec_spark.cli import COMMANDS, build_parser
from ecomrec_spark.config import REPO_ROOT

JOB = '''"""spark-submit entry point: `ecomrec {name}`.

    spark-submit --properties-file .cache/jars/spark-local.conf jobs/{script} --conf conf/local.yaml
"""

import sys

from ecomrec_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["{name}", *sys.argv[1:]]))
'''
TOOLS = {"generate": "generate.py", "run-all": "run_all.py"}  # entry points that are not pipeline stages


def test_the_pipeline_order_is_declared_once():
    assert registry.NAMES == ("ingest", "transform", "train-review", "score-reviews", "build-recommendations",
                              "evaluate-recommendations", "insights", "ab-report", "register-tables", "report",
                              "publish")
    assert layout.PIPELINE == registry.NAMES
    assert layout.JOB_SCRIPTS == {s.name: s.script for s in registry.PIPELINE}
    commands = list(COMMANDS)
    assert [c for c in commands if c in registry.BY_NAME] == list(registry.NAMES)  # help lists them in order
    assert all(name in COMMANDS["run-all"] for name in registry.NAMES)
    parser_commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(parser_commands) == set(COMMANDS)
    for stage in registry.PIPELINE:
        assert parser_commands[stage.name].description == stage.help


def test_every_entry_point_is_the_same_three_lines_for_its_stage():
    scripts = {**{s.name: s.script for s in registry.PIPELINE}, **TOOLS}
    assert sorted(p.name for p in (REPO_ROOT / "jobs").glob("*.py")) == sorted(scripts.values())
    for name, script in scripts.items():
        assert (REPO_ROOT / "jobs" / script).read_text() == JOB.format(name=name, script=script), script


def test_each_stage_names_a_function_and_a_summary_that_exist_without_loading_spark():
    code = ("import sys; from ecomrec_spark import registry, summary, cli; "
            "import ecomrec_spark.aws.layout; "
            "assert 'pyspark' not in sys.modules, 'the registry, summary and CLI parser must not import pyspark'; "
            "[registry._resolve(s.summary) for s in registry.PIPELINE]; "
            "assert 'pyspark' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)
    for stage in registry.PIPELINE:
        assert callable(stage.load()), stage.name


def test_the_summary_follows_the_registry_with_the_times_before_publish():
    from ecomrec_spark.runs import TIMINGS
    from ecomrec_spark.summary import summarize

    result = {
        "transform": {"tables": {"silver/orders": 3}},
        "train-review": {"skipped": "no gold/order_features table"},
        "register-tables": {"database": "ecomrec", "tables": ["orders"]},
        "publish": {"skipped": "no gold/recommendations"},
        TIMINGS: {"transform": 2.4, "train-review": 0.2, "register-tables": 1.0, "publish": 0.1},
    }
    assert summarize(result, "/lake").splitlines() == [
        "tables:",
        f"  /lake/{'silver/orders':<34} {3:>9} rows",
        "train-review: skipped, no gold/order_features table",
        "register-tables: 1 tables in database ecomrec (e.g. spark.sql('select * from ecomrec.recommendations'))",
        "stage times (total 4 s): transform 2 s, train-review 0 s, register-tables 1 s, publish 0 s",
        "publish: skipped, no gold/recommendations",
    ]
