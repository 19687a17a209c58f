"""XGBoost gain importance by feature name: the review model's and the ranker's, one reader for both."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pyspark.ml import PipelineModel


def gain_importance(model: PipelineModel, names: Sequence[str]) -> dict[str, float]:
    """XGBoost gain importance per feature name, largest first (0 for a feature never split on).

    The booster names features ``f0, f1, ...`` in the assembled vector's order, so ``names`` maps them back.
    """
    xgb: Any = model.stages[-1]  # the fitted xgboost.spark model, last stage of the pipeline
    booster = xgb.get_booster()
    raw = booster.get_score(importance_type="gain")
    out = {n: 0.0 for n in names}
    for key, value in raw.items():
        name = names[int(key[1:])] if key.startswith("f") and key[1:].isdigit() and int(key[1:]) < len(names) else key
        out[name] = float(value)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))
