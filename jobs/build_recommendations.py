"""spark-submit entry point: `ecomrec build-recommendations`.

    spark-submit --properties-file .cache/jars/spark-local.conf jobs/build_recommendations.py --conf conf/local.yaml
"""

import sys

from ecomrec_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["build-recommendations", *sys.argv[1:]]))
