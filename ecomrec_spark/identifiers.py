"""The id rules and served model names every entry point checks against (CLI, config, the API).

Pure Python with no Spark import, so the online API (``ecomrec serve``), which runs
without a JVM, checks ids with exactly the rule the Spark CLI uses.
"""

from __future__ import annotations

import re

CUSTOMER_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
PRODUCT_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
# the lists `build-recommendations` writes to gold/recommendations, in the order they are shown
SERVE_MODELS = ("ltr", "ltr_new", "ease", "item_knn", "knn", "hybrid", "als", "content", "popular")
