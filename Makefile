# Two commands set everything up from nothing: a .venv, the project, Delta's jars.
#   make demo   generate a data set, run the whole pipeline, print where the tables and the report are
#   make test   run the test suite
#   make lint   ruff (style, imports, bugbear, pyupgrade) and mypy (the library)
#   make serve  the online API and page (ecomrec serve) on the demo's serving store, http://127.0.0.1:8000/
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
JARS := .cache/jars/spark-local.conf
S3A_JARS := .cache/jars/spark-local-s3a.conf

.PHONY: demo test lint serve setup jars jars-s3a java clean-lake help

help:
	@echo "make demo   - generate data, run the whole pipeline, print the tables and the report path"
	@echo "make test   - run the test suite"
	@echo "make lint   - ruff on the code, tests, jobs and bench; mypy on the library"
	@echo "make serve  - start the API and page on the demo's serving store (http://127.0.0.1:8000/)"

java:
	@command -v java >/dev/null 2>&1 || [ -x "$$JAVA_HOME/bin/java" ] || { \
	  echo "error: Java was not found. Spark 4 needs Java 17+: apt-get install openjdk-17-jre-headless (macOS: brew install openjdk@17), then set JAVA_HOME." >&2; exit 1; }
	@v=$$( ($${JAVA_HOME:+$$JAVA_HOME/bin/}java -version 2>&1) | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1); \
	  if [ -z "$$v" ] || [ "$$v" -lt 17 ]; then echo "error: Java $$v found, Spark 4 needs Java 17+: apt-get install openjdk-17-jre-headless and set JAVA_HOME." >&2; exit 1; fi

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "error: Python 3.11+ is needed (found %s)" % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e ".[test,serve]"
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

setup: java $(STAMP)

$(JARS): | setup
	$(PY) -c 'from ecomrec_spark.session import fetch_jars; fetch_jars()'

jars: setup $(JARS)

# hadoop-aws (= pyspark's Hadoop) + the AWS SDK v2 bundle (~550 MB, once) for s3a:// and the moto S3 test
$(S3A_JARS): | setup
	$(PY) -c 'from ecomrec_spark.session import fetch_jars; fetch_jars(s3a=True)'

jars-s3a: setup $(S3A_JARS)

# The demo runs every stage with one-point tuning: the values below are what the full grids of conf/local.yaml
# (which stay as they are for real data) picked on the demo's 20,000 generated orders on 2026-12-06 (the build's
# recommendation_runs row and the review model's metadata). Each grid point is one more fit of a model.
DEMO_SETS := recommend.als.tune=false recommend.als.rank=64 recommend.als.reg_param=1.0 recommend.als.alpha=10.0 \
	recommend.item_item.tune=false recommend.item_item.ease_lambda=250.0 \
	recommend.hybrid.tune=false recommend.hybrid.weights.review=0.3 recommend.hybrid.weights.price=0.0 \
	recommend.hybrid.weights.popularity=1.0 recommend.rank.grid.max_depth=[6] review.grid.max_depth=[4]

demo: jars
	$(VENV)/bin/ecomrec run-all --generate $(foreach s,$(DEMO_SETS),--set '$(s)')

test: jars jars-s3a
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check ecomrec_spark tests jobs bench && $(VENV)/bin/mypy ecomrec_spark

# the install only, not `setup`: the API needs no Java, it reads only the serving store (`make demo` publishes it)
serve: $(STAMP)
	$(VENV)/bin/ecomrec serve

clean-lake:
	rm -rf lake data/generated reports serving
