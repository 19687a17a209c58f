"""Classification metrics from a prediction frame; only the confusion matrix reaches the driver.

``evaluate`` groups ``(label, prediction)`` in Spark (at most K x K rows come back)
and derives accuracy, macro/weighted F1 and per-class precision/recall from it;
for two classes it adds ROC-AUC and PR-AUC from MLlib's
``BinaryClassificationEvaluator``.

>>> evaluate(model.transform(test), "label_score", 5)["accuracy"]  # doctest: +SKIP
0.61
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def confusion_matrix(pred: DataFrame, label_col: str, n_classes: int, prediction_col: str = "prediction") -> list[list[int]]:
    """``cm[true][predicted]`` counts for classes ``0..n_classes-1`` (rows with a label outside are ignored)."""
    cells = (pred.groupBy(F.col(label_col).cast("int").alias("t"), F.col(prediction_col).cast("int").alias("p"))
             .agg(F.count(F.lit(1)).alias("n")).collect())  # <= K*K aggregate rows
    cm = [[0] * n_classes for _ in range(n_classes)]
    for row in cells:
        if row["t"] is not None and row["p"] is not None and 0 <= row["t"] < n_classes and 0 <= row["p"] < n_classes:
            cm[row["t"]][row["p"]] += int(row["n"])
    return cm


def scores_from_confusion(cm: Sequence[Sequence[int]]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support, macro and weighted F1.

    A class never predicted has precision 0; the macro mean runs over the classes
    that occur as a label or a prediction (as scikit-learn does).
    """
    k = len(cm)
    total = sum(sum(r) for r in cm)
    support = [sum(cm[i]) for i in range(k)]
    predicted = [sum(cm[i][j] for i in range(k)) for j in range(k)]
    precision = [cm[j][j] / predicted[j] if predicted[j] else 0.0 for j in range(k)]
    recall = [cm[i][i] / support[i] if support[i] else 0.0 for i in range(k)]
    f1 = [2 * p * r / (p + r) if p + r else 0.0 for p, r in zip(precision, recall, strict=True)]
    present = [i for i in range(k) if support[i] or predicted[i]]
    return {
        "n": total,
        "accuracy": sum(cm[i][i] for i in range(k)) / total if total else 0.0,
        "macro_f1": sum(f1[i] for i in present) / len(present) if present else 0.0,
        "weighted_f1": sum(f1[i] * support[i] for i in range(k)) / total if total else 0.0,
        "precision": precision, "recall": recall, "f1": f1, "support": support,
    }


def binary_auc(pred: DataFrame, label_col: str, probability_col: str = "probability") -> dict[str, float]:
    """ROC-AUC and PR-AUC of P(class 1) in a probability vector column."""
    from pyspark.ml.evaluation import BinaryClassificationEvaluator

    ev = BinaryClassificationEvaluator(labelCol=label_col, rawPredictionCol=probability_col)
    return {"roc_auc": ev.setMetricName("areaUnderROC").evaluate(pred), "pr_auc": ev.setMetricName("areaUnderPR").evaluate(pred)}


def evaluate(pred: DataFrame, label_col: str, n_classes: int, prediction_col: str = "prediction",
             probability_col: str | None = "probability") -> dict[str, Any]:
    """Every metric of the comparison table for one model's predictions.

    Parameters
    ----------
    pred : rows with ``label_col``, ``prediction_col`` (class index) and, for the AUCs,
        a probability vector ``probability_col``.
    n_classes : 5 for the score, 2 for satisfied.
    """
    cm = confusion_matrix(pred, label_col, n_classes, prediction_col)
    out = {**scores_from_confusion(cm), "confusion": cm, "roc_auc": None, "pr_auc": None}
    if n_classes == 2 and probability_col and probability_col in pred.columns:
        out.update(binary_auc(pred, label_col, probability_col))
    return out
