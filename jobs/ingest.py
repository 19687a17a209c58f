"""spark-submit entry point: `ecomrec ingest`.

    spark-submit --properties-file .cache/jars/spark-local.conf jobs/ingest.py --conf conf/local.yaml
"""

import sys

from ecomrec_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest", *sys.argv[1:]]))
