"""What each part of `--protocol paper` does to the numbers: the runs behind docs/paper-protocol.md, "Measured effects".

    python benchmarks/protocol_effects.py --data DATA --out OUT [--model gemma-3-270m] [--device cpu]

DATA: the paper's files in the layout of `qtalign data fetch paper --dest DATA` (emotion/, snli/, demos/). Each
row of the page's tables is one `qtalign eval` run into OUT/<name>/ (a finished run is reused; delete it to redo
it; its output goes to OUT/<name>.log), all in float32. Prints one JSON object, also written to OUT/protocol_effects.json: per run its command line
(DATA and OUT as written here), and per language the item count, accuracy, the paper scripts' accuracy where
scored, the predicted labels and the demonstration items; for each later emotion row, how many predictions changed
against the default row on the items both scored.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

EMOTION = ["--task", "emotion", "--langs", "en,de,zh", "--limit", "80"]
NLI = ["--task", "nli", "--langs", "en,ja,bn,no", "--limit", "60"]
NORWEGIAN = ["--task", "nli", "--langs", "no", "--limit", "60"]
# (name, data subfolder, options); each emotion row adds one option to the row above, the last is --protocol paper
RUNS: list[tuple[str, str, list[str]]] = [
    ("emotion-default", "emotion", [*EMOTION, "--seed", "0"]),
    ("emotion-demos-file", "emotion", [*EMOTION, "--demos-file", "auto"]),
    ("emotion-keep-demo-items", "emotion", [*EMOTION, "--demos-file", "auto", "--keep-demo-items"]),
    ("emotion-protocol-paper", "emotion", [*EMOTION, "--protocol", "paper"]),
    ("nli-protocol-paper", "snli", [*NLI, "--protocol", "paper"]),
    ("nli-no-default", "snli", NORWEGIAN),
    ("nli-no-gold-from-en", "snli", [*NORWEGIAN, "--gold-from", "en"]),
]


def run(name: str, sub: str, options: list[str], args: argparse.Namespace) -> list[str]:
    """One qtalign eval run into OUT/name (skipped when its results.json is there); its command line."""
    out = Path(args.out) / name
    argv = ["qtalign", "eval", "--model", args.model, "--device", args.device, "--dtype", "float32",
            "--data", str(Path(args.data) / sub), *options, "--out", str(out), "--no-progress"]
    if not (out / "results.json").is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        with (out.parent / f"{name}.log").open("w", encoding="utf-8") as log:  # eval's table and messages
            subprocess.run([sys.executable, "-m", *argv], check=True, stdout=log, stderr=subprocess.STDOUT)
    return argv


def summary(out: Path) -> dict[str, Any]:
    """Per language: n, accuracy, paper_accuracy (if scored), predicted labels, demonstration items."""
    res = json.loads((out / "results.json").read_text(encoding="utf-8"))
    keys = ("n", "accuracy", "paper_accuracy", "predicted", "demos")
    langs = {lang: {k: v[k] for k in keys if k in v} for lang, v in res["languages"].items()}
    return {"languages": langs, "mean_accuracy": sum(v["accuracy"] for v in langs.values()) / len(langs)}


def predictions(out: Path) -> dict[tuple[str, int], str]:
    rows = (json.loads(line) for line in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines())
    return {(r["lang"], r["index"]): r["pred"] for r in rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="the paper's files (emotion/, snli/, demos/)")
    ap.add_argument("--out", required=True, help="folder for the runs and protocol_effects.json")
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    doc: dict[str, Any] = {"model": args.model, "device": args.device, "dtype": "float32", "runs": {}}
    default = Path(args.out) / RUNS[0][0]
    for name, sub, options in RUNS:
        argv = run(name, sub, options, args)
        out = Path(args.out) / name
        doc["runs"][name] = {"command": " ".join(argv), **summary(out)}
        if name.startswith("emotion") and out != default:
            before, now = predictions(default), predictions(out)
            common = sorted(set(before) & set(now))
            doc["runs"][name]["vs_default"] = {"items_both_scored": len(common),
                                               "predictions_changed": sum(before[k] != now[k] for k in common)}
    text = json.dumps(doc, indent=1, ensure_ascii=False)
    (Path(args.out) / "protocol_effects.json").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
