"""Evaluate the committed model (filter/core/models/injection.onnx) with
onnxruntime, independently of the training code's own scoring. See
scripts/eval-classifier."""

import argparse
import json
import sys

import numpy as np
import onnxruntime

import data
import featurize
import metrics

MODEL = data.ROOT / "filter" / "core" / "models" / "injection.onnx"
TRAINED = data.ROOT / "filter" / "core" / "models" / "injection.metrics.json"
BENIGN = data.ROOT / "tests" / "data" / "benign_trigger_prompts.txt"


def scorer(path):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def score(text):
        feats = featurize.features(text)
        if not feats:
            return 0.0
        indices = np.array([i for i, _ in feats], dtype=np.int64)
        values = np.array([v for _, v in feats], dtype=np.float32)
        return float(session.run(None, {"indices": indices, "values": values})[0].ravel()[0])

    return score


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(MODEL))
    parser.add_argument("--threshold", type=float, help="block threshold (default: the trained recommendation)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    trained = json.loads(TRAINED.read_text())
    threshold = args.threshold or trained["recommended"]["block_threshold"]
    score = scorer(args.model)

    results = {"model": args.model, "threshold": threshold, "test": {}}
    for ds in data.DATASETS:
        rows = data.load(ds, "test")
        y = np.array([l for _, l in rows])
        s = np.array([score(t) for t, _ in rows])
        results["test"][ds] = metrics.summary(y, s) | metrics.at_threshold(y, s, threshold)
    held = [score(t) for t, _ in data.load_held_out()]
    results["held_out"] = {"yanismiraoui/prompt_injections.csv": {
        "rows": len(held), "all_injections": True,
        "detected_at_threshold": round(float(np.mean(np.array(held) >= threshold)), 4)}}
    benign = [line for line in BENIGN.read_text().splitlines() if line.strip() and not line.startswith("#")]
    b = np.array([score(t) for t in benign])
    results["benign_trigger_words"] = {
        "file": str(BENIGN.relative_to(data.ROOT)), "rows": len(benign),
        "fpr_at_threshold": round(float(np.mean(b >= threshold)), 4),
        "max_score": round(float(b.max()), 4),
        "flagged": [t for t, v in zip(benign, b) if v >= threshold],
    }
    text = json.dumps(results, indent=2)
    if args.json:
        with open(args.json, "w") as out:
            out.write(text + "\n")
    print(text)
    print("\n| dataset (test split) | ROC AUC | TPR @ 1% FPR | TPR @ 5% FPR | TPR / FPR at threshold |", file=sys.stderr)
    print("|---|---|---|---|---|", file=sys.stderr)
    for ds, r in results["test"].items():
        print(f"| {ds} | {r['roc_auc']:.4f} | {r['tpr_at_1pct_fpr']:.3f} | {r['tpr_at_5pct_fpr']:.3f} | "
              f"{r['tpr_at_threshold']:.3f} / {r['fpr_at_threshold']:.3f} |", file=sys.stderr)


if __name__ == "__main__":
    main()
