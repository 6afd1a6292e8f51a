"""Token counts of the paper's evaluation grid and training pairs for one tokenizer: the inputs of the cost formula in
docs/scaling.md.

Evaluation: every task and language of the paper's released test files with --protocol paper prompts (qtalign's
prefix-cached scorer runs each language's demonstration prefix once, then each item's own tokens). PAWS is not in
the shared data: its per-language prefix comes from the paper's paws_demos.json and its items are estimated as long
as its demonstration items (500 items per language, as the paper's file names say). Training: the released
snli_{X}10k_train_question.json pairs, rendered as `qtalign train` does by default (BOS + input; output + EOS).

    python benchmarks/grid_tokens.py [--tokenizer gemma-3-270m | FOLDER | HF id] [--data ../shared/data/paper]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "paper"
TASKS = (("emotion", "emotion"), ("nli", "snli"), ("paraphrase", "paws"))
PAWS_ITEMS = 500


def load_tokenizer(name: str) -> Any:
    from qtalign.models import load_tokenizer as load
    from qtalign.models import resolve_model_path

    return load(resolve_model_path(name))


def task_tokens(task: str, folder: Path, tok: Any) -> dict[str, Any]:
    from qtalign.eval import EvalSettings, prepare
    from qtalign.scoring import encode_items, encode_prefix

    # the prompts `qtalign prompts --protocol paper --task TASK --data FOLDER` prints: the same settings
    prep = prepare(EvalSettings(task=task, data=str(folder), protocol="paper"))
    langs: dict[str, Any] = {}
    for lang, lp in prep.prompts.items():
        rows, _ = encode_items(tok, lp.prefix, lp.texts)
        langs[lang] = {"items": len(rows), "prefix": len(encode_prefix(tok, lp.prefix)),
                       "item_mean": statistics.mean(map(len, rows))}
    return summarize(langs, estimated=False)


def paws_estimate(demos_file: Path, tok: Any) -> dict[str, Any]:
    from qtalign.scoring import encode_prefix

    data = json.loads(demos_file.read_text(encoding="utf-8"))
    langs: dict[str, Any] = {}
    for lang, entry in data["demos"].items():
        prefix = entry["prefix"]
        # an item is its lines without the answer line, plus the answer cue (as the demonstrations show them)
        items = ["\n".join(d["lines"][:-1]) for d in entry["items"]]
        item_mean = statistics.mean(len(tok(t, add_special_tokens=False)["input_ids"]) for t in items) + 4
        langs[lang] = {"items": PAWS_ITEMS, "prefix": len(encode_prefix(tok, prefix)), "item_mean": item_mean}
    return summarize(langs, estimated=True)


def summarize(langs: dict[str, Any], estimated: bool) -> dict[str, Any]:
    items = sum(v["items"] for v in langs.values())
    item_tokens = sum(v["items"] * v["item_mean"] for v in langs.values())
    prefix_once = sum(v["prefix"] for v in langs.values())
    prompt_tokens = sum(v["items"] * (v["prefix"] + v["item_mean"]) for v in langs.values())
    return {"languages": len(langs), "items": items, "prefix_mean": prefix_once / len(langs),
            "item_mean": item_tokens / items, "run_tokens": prefix_once + item_tokens, "prompt_tokens": prompt_tokens,
            "estimated": estimated, "per_language": langs}


def train_tokens(folder: Path, tok: Any) -> dict[str, Any]:
    from qtalign.templates import TEMPLATES
    from qtalign.templates import encode_pairs as encode

    out: dict[str, Any] = {}
    for path in sorted(folder.glob("snli_*10k_train_question.json")):
        rows = json.loads(path.read_text(encoding="utf-8"))
        pairs = [(r["input"], r["answer"]) for r in rows]
        enc = encode(TEMPLATES["empty"], tok, pairs)
        lengths = [len(p) + len(o) for p, o in enc]
        out[path.name.split("_")[1].removesuffix("10k")] = {"pairs": len(pairs), "tokens_mean": statistics.mean(lengths),
                                                            "output_tokens_mean": statistics.mean(len(o) for _, o in enc)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", default="gemma-3-270m")
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--json", default=None, help="also write the counts here")
    args = ap.parse_args()
    data = Path(args.data)
    tok = load_tokenizer(args.tokenizer)
    result: dict[str, Any] = {"tokenizer": args.tokenizer, "vocab": len(tok), "eval": {}, "train": {}}
    for task, folder in TASKS:
        if (data / folder).is_dir():
            result["eval"][task] = task_tokens(task, data / folder, tok)
        elif task == "paraphrase" and (data / "demos" / "paws_demos.json").is_file():
            result["eval"][task] = paws_estimate(data / "demos" / "paws_demos.json", tok)
    result["train"] = train_tokens(data / "snli", tok)
    print(f"tokenizer {args.tokenizer} ({len(tok)} tokens)")
    print(f"{'task':<12}{'langs':>6}{'items':>8}{'prefix':>8}{'item':>7}{'run tokens':>12}{'prompt tokens':>15}")
    for task, r in result["eval"].items():
        est = " (estimated)" if r["estimated"] else ""
        print(f"{task:<12}{r['languages']:>6}{r['items']:>8}{r['prefix_mean']:>8.0f}{r['item_mean']:>7.0f}"
              f"{r['run_tokens']:>12.0f}{r['prompt_tokens']:>15.0f}{est}")
    tot = {k: sum(r[k] for r in result["eval"].values()) for k in ("items", "run_tokens", "prompt_tokens")}
    print(f"{'all':<12}{'':>6}{tot['items']:>8}{'':>8}{'':>7}{tot['run_tokens']:>12.0f}{tot['prompt_tokens']:>15.0f}")
    for lang, r in result["train"].items():
        print(f"train {lang}: {r['pairs']} pairs, {r['tokens_mean']:.0f} tokens/pair ({r['output_tokens_mean']:.0f} output)")
    result["total"] = tot
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
