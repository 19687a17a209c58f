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

demo: jars
	$(VENV)/bin/ecomrec run-all --generate

test: jars jars-s3a
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check ecomrec_spark tests jobs bench && $(VENV)/bin/mypy ecomrec_spark

# the install only, not `setup`: the API needs no Java, it reads only the serving store (`make demo` publishes it)
serve: $(STAMP)
	$(VENV)/bin/ecomrec serve

clean-lake:
	rm -rf lake data/generated reports serving
