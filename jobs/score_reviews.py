"""spark-submit entry point: `ecomrec score-reviews`.

    spark-submit --properties-file .cache/jars/spark-local.conf jobs/score_reviews.py --conf conf/local.yaml
"""

import sys

from ecomrec_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["score-reviews", *sys.argv[1:]]))
