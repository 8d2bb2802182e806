"""What a metric's name says about it: whether lower or higher is better, and whether it
is a score bounded to [0, 1] (accuracy, F1, AUC), which a log scale only squashes."""

from __future__ import annotations

import re

import numpy as np

# A metric whose name says it measures a cost is better when lower; others when higher.
LOWER_IS_BETTER = re.compile(
    r"loss|err|mse|mae|rmse|mape|smape|perplexity|latency|time|duration|cost|regret|wer|cer",
    re.IGNORECASE,
)
# Scores whose values are fractions of a whole: drawn against 0..1, never on a log scale.
BOUNDED_SCORE = re.compile(
    r"acc|precision|recall|f1|f_?beta|f_?score|auc|roc|\bap\b|map|iou|jaccard|dice|r2"
    r"|ndcg|hit_?rate|specificity|sensitivity|balanced",
    re.IGNORECASE,
)


def direction(key: str, overrides: dict[str, str] | None = None) -> str:
    """``"min"`` or ``"max"``: the user's choice for ``key``, else inferred from its name."""
    chosen = (overrides or {}).get(key)
    if chosen in ("min", "max"):
        return chosen
    return "min" if LOWER_IS_BETTER.search(key) else "max"


def log_scale_unsuited(key: str, values: np.ndarray) -> str:
    """Why a log y scale does not suit this metric ("" if it does)."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return ""
    if finite.min() <= 0:
        return "has values <= 0"
    if BOUNDED_SCORE.search(key) and finite.max() <= 1:
        return "a score bounded to [0, 1]"
    return ""
