"""Detection-quality measures shared by training and evaluation."""

import sys

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve


def tpr_at_fpr(labels, scores, fpr_target):
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(tpr[np.searchsorted(fpr, fpr_target, side="right") - 1])


def threshold_at_fpr(labels, scores, fpr_target):
    """Lowest threshold whose false-positive rate (score >= t) is <= target."""
    negatives = np.sort(np.asarray(scores)[np.asarray(labels) == 0])[::-1]
    allowed = int(np.floor(fpr_target * len(negatives)))
    # Strictly above the (allowed+1)-th highest negative score.
    return float(np.nextafter(np.float32(negatives[allowed]), np.float32(1.0)))


def summary(labels, scores):
    return {
        "roc_auc": round(float(roc_auc_score(labels, scores)), 4),
        "tpr_at_1pct_fpr": round(tpr_at_fpr(labels, scores, 0.01), 4),
        "tpr_at_5pct_fpr": round(tpr_at_fpr(labels, scores, 0.05), 4),
        "positives": int(np.sum(labels)),
        "negatives": int(len(labels) - np.sum(labels)),
    }


def at_threshold(labels, scores, threshold):
    labels = np.asarray(labels)
    flagged = np.asarray(scores) >= threshold
    pos = labels == 1
    return {
        "threshold": round(float(threshold), 4),
        "tpr_at_threshold": round(float(flagged[pos].mean()) if pos.any() else 0.0, 4),
        "fpr_at_threshold": round(float(flagged[~pos].mean()) if (~pos).any() else 0.0, 4),
    }


def choose_c(grid, fit, validation):
    """The C of `grid` whose model does best on validation: by the worse of
    the validation sets' TPR at 1% FPR, then AUC. `fit(c)` returns a fitted
    model with `decision_function`; `validation` is a list of (x, y).
    Returns (c, model)."""
    best = None
    for c in grid:
        model = fit(c)
        per = [summary(y, model.decision_function(x)) for x, y in validation]
        key = (min(p["tpr_at_1pct_fpr"] for p in per), min(p["roc_auc"] for p in per))
        print(f"C={c}: validation {per}", file=sys.stderr)
        if best is None or key > best[0]:
            best = (key, c, model)
    return best[1], best[2]
