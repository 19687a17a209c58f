"""spark-submit entry point: `ecomrec register-tables`.

    spark-submit --properties-file .cache/jars/spark-local.conf jobs/register_tables.py --conf conf/local.yaml
"""

import sys

from ecomrec_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["register-tables", *sys.argv[1:]]))
