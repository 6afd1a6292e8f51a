"""GPU check: a Qwen1.5-1.8B-shaped model with random weights, evaluated (bf16, 4-bit) and LoRA/QLoRA-trained on one GPU.

Run through benchmarks/gpu_check.sh (which first runs the tests marked `cuda`). Steps, each timed, each failure
recorded without stopping the others:

1. a byte-level BPE tokenizer (16,000 tokens) trained here on qtalign's shipped multilingual demo text (12 languages;
   German needs ~0.26 tokens per character with it, Gemma 3's tokenizer 0.24), and the model built from Qwen1.5-1.8B's
   published configuration with random weights directly on the device, saved as safetensors;
2. evaluation on German data made from the demo reviews (emotion items 1-8 reviews, ~480 characters on average like
   the paper's German Amazon reviews, so the short ones become the demonstrations as in the paper; NLI and
   paraphrase pairs cut from them): bf16 with --batch-size auto, the default --batch-size 8 as the
   baseline, and 4-bit NF4 with auto; items/s, tokens/s (tokens the model ran: the shared prefix once + each item)
   and prompt tokens/s (each item's whole prompt, the work a scorer without the prefix cache would do);
3. LoRA training steps with the paper's recipe (batch 4 x accumulation 4, q_proj/v_proj, r 8): bf16 and QLoRA;
   tokens/s from the training log and the seconds per optimizer step;
4. a table, and everything as JSON in --out (the device tool's $OUT when set).

    bash benchmarks/gpu_check.sh                      # on the GPU machine (< 8 minutes on an H100)
    bash benchmarks/gpu_check.sh --cpu-dry-run        # here: the same steps, tiny model, CPU, seconds
    python benchmarks/gpu_check.py --device cpu --items 16 --train-steps 2 --skip-4bit   # full size on CPU
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "src" / "qtalign" / "demo"
LANG = "de"

# Qwen/Qwen1.5-1.8B config.json as published (Qwen2ForCausalLM); weights are random here.
QWEN15_18B: dict[str, Any] = {
    "hidden_size": 2048, "intermediate_size": 5504, "num_hidden_layers": 24, "num_attention_heads": 16,
    "num_key_value_heads": 16, "vocab_size": 151936, "max_position_embeddings": 32768, "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6, "hidden_act": "silu", "tie_word_embeddings": False, "use_sliding_window": False,
    "sliding_window": 32768, "max_window_layers": 21, "attention_dropout": 0.0, "initializer_range": 0.02,
    "bos_token_id": 151643, "eos_token_id": 151643,
}
# --cpu-dry-run: the same architecture, 64 wide, 2 layers deep, the tokenizer's 16,000-token vocabulary.
TINY = {**QWEN15_18B, "vocab_size": 16000, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 4}
TASKS = ("emotion", "nli", "paraphrase")
BPE_VOCAB = 16000


# ---- data and tokenizer -----------------------------------------------------------------------------------------
def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def corpus() -> list[str]:
    """All shipped demo text: reviews in 12 languages, question-translation texts (zh, es, en), parallel sentences."""
    texts = [r["input"] for f in sorted((DEMO / "sentiment").glob("*.jsonl")) for r in read_jsonl(f)]
    texts += [r["input"] for f in sorted((DEMO / "qt").glob("*.jsonl")) for r in read_jsonl(f)]
    texts += [t for r in read_jsonl(DEMO / "parallel.jsonl") for t in r.values()]
    return texts


def build_tokenizer(folder: Path) -> Any:
    """Byte-level BPE (as Qwen's), 16,000 tokens, trained on corpus(); Qwen's special tokens; no BOS added."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus(), trainers.BpeTrainer(vocab_size=BPE_VOCAB, special_tokens=specials,
                                                          initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                          show_progress=False))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                   additional_special_tokens=specials[1:])
    fast.save_pretrained(folder)
    return fast


def write_task_data(root: Path, n: int) -> dict[str, Path]:
    """German items per task, made from the 80 demo reviews (seeded): emotion = 4 reviews (~430 characters, like the
    paper's Amazon reviews, 1 to 8 of them), NLI = a review and the start of another, paraphrase = a review and it with two words
    swapped (same) or another review (different)."""
    reviews = read_jsonl(DEMO / "sentiment" / f"{LANG}.jsonl")
    texts = [r["input"] for r in reviews]
    rng = random.Random(0)
    rows: dict[str, list[dict[str, str]]] = {t: [] for t in TASKS}
    for i in range(n):
        picks = rng.sample(range(len(texts)), 8)
        k = rng.randint(1, 8)  # ~480 characters on average, like the paper's German reviews; short ones become demos
        rows["emotion"].append({"input": " ".join(texts[j] for j in picks[:k]), "answer": reviews[picks[0]]["answer"]})
        a, b = texts[picks[1]], texts[picks[2]]
        hyp = b[: 45].rsplit(" ", 1)[0]
        rows["nli"].append({"premise": a, "hypothesis": hyp,
                            "answer": ("entailment", "neutral", "contradiction")[i % 3]})
        words = a.split()
        if i % 2 == 0 and len(words) > 3:
            j = rng.randrange(len(words) - 1)
            words[j], words[j + 1] = words[j + 1], words[j]
            rows["paraphrase"].append({"sentence1": a, "sentence2": " ".join(words), "answer": "same"})
        else:
            rows["paraphrase"].append({"sentence1": a, "sentence2": b, "answer": "different"})
    out = {}
    for task, items in rows.items():
        folder = root / task
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{LANG}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in items),
                                              encoding="utf-8")
        out[task] = folder
    return out


def write_pairs(path: Path, n: int) -> Path:
    """Question-translation pairs zh/es => en from the demo's parallel texts, in qtalign's build format."""
    en = [r["input"] for r in read_jsonl(DEMO / "qt" / "emotion_en_train.jsonl")]
    rows = []
    for lang, name in (("zh", "Chinese"), ("es", "Spanish")):
        src = [r["input"] for r in read_jsonl(DEMO / "qt" / f"emotion_{lang}_train.jsonl")]
        rows += [{"input": f'Review: {s}\nEmotion: "\nTranslate the input from {name} to English:\n',
                  "output": f'Review: {e}\nEmotion: "'} for s, e in zip(src, en)]
    random.Random(0).shuffle(rows)
    rows = (rows * (n // len(rows) + 1))[:n]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


# ---- measuring --------------------------------------------------------------------------------------------------
class Device:
    """Synchronize, reset and read the peak memory of the device (no-ops on CPU)."""

    def __init__(self, name: str) -> None:
        import torch

        self.torch = torch
        self.cuda = name.startswith("cuda")

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def reset(self) -> None:
        if self.cuda:
            import gc

            gc.collect()
            self.torch.cuda.empty_cache()
            self.torch.cuda.reset_peak_memory_stats()

    def peak_gib(self) -> float | None:
        return self.torch.cuda.max_memory_allocated() / 2**30 if self.cuda else None

    def name(self) -> str:
        if not self.cuda:
            return f"cpu ({os.cpu_count()} cores, {self.torch.get_num_threads()} threads)"
        p = self.torch.cuda.get_device_properties(0)
        return f"{p.name}, {p.total_memory / 2**30:.0f} GiB"


def prompt_tokens(s: Any, tokenizer: Any) -> tuple[int, int, int]:
    """(items, tokens the prefix-cached scorer runs, tokens of the whole prompts) for an eval's settings."""
    from qtalign.eval import prepare
    from qtalign.scoring import encode_items, encode_prefix

    items = run_tok = full_tok = 0
    for lp in prepare(s).prompts.values():
        pre = len(encode_prefix(tokenizer, lp.prefix))
        rows, _ = encode_items(tokenizer, lp.prefix, lp.texts)
        items += len(rows)
        run_tok += pre + sum(map(len, rows))
        full_tok += sum(pre + len(r) for r in rows)
    return items, run_tok, full_tok


def remembered(prefix: str) -> int | None:
    from qtalign.batchsize import memory_path

    try:
        data = json.loads(memory_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    hits = [v for k, v in data.items() if k.startswith(prefix)]
    return hits[0] if hits else None


def eval_phase(name: str, dev: Device, model_dir: Path, data: dict[str, Path], args: argparse.Namespace,
               work: Path, load_in_4bit: bool, batch_size: int | str, tasks: tuple[str, ...]) -> list[dict[str, Any]]:
    """Load once, then run_eval per task (the loaded model reused); one row per task."""
    from qtalign import models
    from qtalign.eval import EvalSettings
    from qtalign.eval import run as run_eval

    dev.reset()
    t0 = time.perf_counter()
    lm = models.load_model(str(model_dir), device=args.device, load_in_4bit=load_in_4bit)
    dev.sync()
    load_s = time.perf_counter() - t0
    real_load = models.load_model
    models.load_model = lambda *a, **k: lm  # run_eval loads through qtalign.models.load_model: reuse this one
    rows = []
    try:
        warm = EvalSettings(task="emotion", data=str(data["emotion"]), model=str(model_dir), langs=(LANG,),
                            device=args.device, load_in_4bit=load_in_4bit, limit=4, batch_size=4)
        t0 = time.perf_counter()
        run_eval(warm.model_copy(update={"out": str(work / f"{name}-warmup")}), progress=False)  # first kernels
        dev.sync()
        warm_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        # 4 items: ~ the fixed cost of a run (data, prompts, vocabulary index, prefix)
        run_eval(warm.model_copy(update={"out": str(work / f"{name}-fixed")}), progress=False)
        dev.sync()
        fixed_s = time.perf_counter() - t0
        for task in tasks:
            s = EvalSettings(task=task, data=str(data[task]), model=str(model_dir), langs=(LANG,), device=args.device,
                             load_in_4bit=load_in_4bit, batch_size=batch_size, limit=args.items)
            items, run_tok, full_tok = prompt_tokens(s, lm.tokenizer)
            dev.reset()
            dev.sync()
            t0 = time.perf_counter()
            res = run_eval(s.model_copy(update={"out": str(work / f"{name}-{task}")}), progress=False).results
            dev.sync()
            sec = time.perf_counter() - t0
            used = batch_size
            if batch_size == "auto":
                used = remembered(f"eval-first-token|{model_dir}|{task}|") or (8 if not dev.cuda else "?")
            rows.append({"phase": name, "task": task, "lang": LANG, "items": items, "seconds": sec,
                         "items_per_s": items / sec, "tokens_per_s": run_tok / sec, "prompt_tokens_per_s": full_tok / sec,
                         "fixed_s": fixed_s, "warmup_s": warm_s,
                         "net_tokens_per_s": run_tok / max(sec - fixed_s, 1e-9),
                         "tokens_per_item": full_tok / items, "prefix_tokens": (full_tok - run_tok) / max(items - 1, 1),
                         "batch_size": batch_size, "batch_size_used": used, "peak_gib": dev.peak_gib(),
                         "load_s": load_s, "dtype": res["model"]["dtype"],
                         "quantization": res["model"].get("quantization"), "complete": res["complete"]})
            print(f"  {name} {task}: {items} items in {sec:.2f} s ({items / sec:.1f} items/s, "
                  f"{run_tok / sec:.0f} tokens/s), batch {used}", flush=True)
    finally:
        models.load_model = real_load
    return rows


def train_phase(name: str, dev: Device, model_dir: Path, pairs: Path, args: argparse.Namespace, work: Path,
                load_in_4bit: bool) -> dict[str, Any]:
    from qtalign.train import TrainSettings
    from qtalign.train import run as train

    out = work / f"train-{name}"
    shutil.rmtree(out, ignore_errors=True)
    s = TrainSettings(model=str(model_dir), data=str(pairs), out=str(out), max_steps=args.train_steps,
                      batch_size=4, grad_accum=4, val_ratio=0.02, save_every=10**6, device=args.device,
                      load_in_4bit=load_in_4bit, lr=1e-4)
    dev.reset()
    t0 = time.perf_counter()
    res = train(s, progress=False)
    dev.sync()
    sec = time.perf_counter() - t0
    log = read_jsonl(out / "train_log.jsonl")
    steady = log[1:] or log  # the first step includes one-time work (kernels, allocator)
    summary = json.loads((out / "train_summary.json").read_text())
    record = json.loads((out / "adapter" / "qtalign_train.json").read_text())
    row = {"phase": name, "steps": res.steps, "seconds_total": sec, "train_seconds": summary["seconds"],
           "tokens_per_s": statistics.median(r["tokens_per_s"] for r in steady),
           "s_per_step": statistics.median(r["seconds"] for r in steady), "first_step_s": log[0]["seconds"],
           "tokens_per_step": statistics.mean(r["tokens_per_s"] * r["seconds"] for r in steady),
           "peak_gib": dev.peak_gib(),
           "loss_first": log[0]["loss"], "loss_last": log[-1]["loss"], "micro_batch": summary.get("micro_batch"),
           "precision": record.get("precision"), "val_loss": res.best_val_loss}
    print(f"  {name}: {res.steps} steps in {summary['seconds']:.1f} s ({row['tokens_per_s']:.0f} tokens/s, "
          f"{row['s_per_step']:.3f} s/step), loss {row['loss_first']:.3f} -> {row['loss_last']:.3f}", flush=True)
    return row


# ---- the run ----------------------------------------------------------------------------------------------------
def versions() -> dict[str, str | None]:
    import importlib.metadata as md

    out: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in ("torch", "transformers", "peft", "accelerate", "bitsandbytes", "tokenizers", "pydantic"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    from qtalign.compat import cache_name

    out["kv_cache_argument"] = cache_name()
    return out


def table(result: dict[str, Any]) -> str:
    head = (f"device: {result['device']}   model: {result['model']['name']} ({result['model']['params'] / 1e9:.2f}B "
            f"params, random weights)   tokenizer: BPE {result['tokenizer']['vocab']} "
            f"({result['tokenizer']['de_tokens_per_char']:.3f} tokens/char on German)")
    cols = (f"{'eval':<14}{'task':<11}{'items':>6}{'batch':>6}{'items/s':>9}{'tokens/s':>10}{'net tok/s':>10}"
            f"{'prompt tok/s':>13}{'tok/item':>9}{'fixed s':>8}{'peak GiB':>9}")
    lines = [head, cols]
    for r in result["eval"]:
        peak = f"{r['peak_gib']:.2f}" if r["peak_gib"] is not None else "-"
        lines.append(f"{r['phase']:<14}{r['task']:<11}{r['items']:>6}{r['batch_size_used']!s:>6}"
                     f"{r['items_per_s']:>9.1f}{r['tokens_per_s']:>10.0f}{r['net_tokens_per_s']:>10.0f}"
                     f"{r['prompt_tokens_per_s']:>13.0f}{r['tokens_per_item']:>9.0f}{r['fixed_s']:>8.2f}{peak:>9}")
    lines.append(f"{'train':<14}{'steps':>8}{'s/step':>9}{'pairs/s':>9}{'tokens/s':>11}{'tok/step':>10}{'peak GiB':>10}"
                 f"{'loss first -> last':>22}")
    for r in result["train"]:
        peak = f"{r['peak_gib']:.2f}" if r["peak_gib"] is not None else "-"
        lines.append(f"{r['phase']:<14}{r['steps']:>8}{r['s_per_step']:>9.3f}{16 / r['s_per_step']:>9.1f}"
                     f"{r['tokens_per_s']:>11.0f}{r['tokens_per_step']:>10.0f}{peak:>10}{r['loss_first']:>12.3f} -> {r['loss_last']:.3f}")
    for k, v in result["ratios"].items():
        lines.append(f"ratio {k}: {v:.2f}x")
    for e in result["errors"]:
        lines.append(f"FAILED {e['step']}: {e['error']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu-dry-run", action="store_true", help="tiny model (64 wide, 2 layers) on CPU, few items")
    ap.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    ap.add_argument("--items", type=int, default=None, help="items per task (default 960, 12 in the dry run)")
    ap.add_argument("--train-steps", type=int, default=None, help="optimizer steps per training run (default 20)")
    ap.add_argument("--skip-4bit", action="store_true", help="no 4-bit eval / QLoRA (automatic without CUDA)")
    ap.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "runs" / "gpu_check"),
                    help="where gpu_check.json goes (default: $OUT, else runs/gpu_check)")
    ap.add_argument("--work", default=None, help="scratch folder for the model and runs (default: a temp folder)")
    args = ap.parse_args(argv)

    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.items = args.items or (12 if args.cpu_dry_run else 960)
    args.train_steps = args.train_steps or (2 if args.cpu_dry_run else 20)
    four_bit = not args.skip_4bit and args.device.startswith("cuda")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="qtalign-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["QTALIGN_CACHE"] = str(work / "cache")  # remembered batch sizes start empty
    dev = Device(args.device)
    result: dict[str, Any] = {"device": dev.name(), "versions": versions(), "settings": vars(args) | {"work": str(work)},
                              "eval": [], "train": [], "ratios": {}, "errors": [], "seconds": {}}
    print(f"gpu_check on {result['device']}; " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()),
          flush=True)
    started = time.perf_counter()

    def save() -> None:
        result["seconds"]["total"] = time.perf_counter() - started
        tmp = out / "gpu_check.json.tmp"
        tmp.write_text(json.dumps(result, indent=1, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, out / "gpu_check.json")

    def step(name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        print(f"[{name}]", flush=True)
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - one failing step must not cost the others (one device run)
            traceback.print_exc()
            result["errors"].append({"step": name, "error": f"{type(e).__name__}: {str(e).strip()[:300]}"})
            return None
        finally:
            result["seconds"][name] = time.perf_counter() - t0
            save()

    model_dir = work / "model"

    def build() -> None:
        from transformers import AutoModelForCausalLM, Qwen2Config

        tok = build_tokenizer(model_dir)
        de = [r["input"] for r in read_jsonl(DEMO / "sentiment" / f"{LANG}.jsonl")]
        result["tokenizer"] = {"kind": "byte-level BPE trained on qtalign's demo text (12 languages)",
                               "vocab": len(tok), "de_tokens_per_char": sum(len(tok(t)["input_ids"]) for t in de)
                               / sum(map(len, de))}
        config = Qwen2Config(**(TINY if args.cpu_dry_run else QWEN15_18B))
        dtype = torch.bfloat16 if dev.cuda else torch.float32
        torch.manual_seed(0)
        dev.sync()
        t0 = time.perf_counter()
        with torch.device(args.device):
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        dev.sync()
        init_s = time.perf_counter() - t0
        params = sum(p.numel() for p in model.parameters())
        t0 = time.perf_counter()
        model.save_pretrained(model_dir)
        result["model"] = {"name": "Qwen1.5-1.8B architecture" if not args.cpu_dry_run else "tiny Qwen2 (dry run)",
                           "config": config.to_diff_dict(), "params": params, "init_s": init_s,
                           "save_s": time.perf_counter() - t0, "saved_dtype": str(dtype)}
        del model
        dev.reset()
        print(f"  {params / 1e9:.3f}B parameters, built in {init_s:.1f} s; tokenizer {len(tok)} tokens, "
              f"{result['tokenizer']['de_tokens_per_char']:.3f} tokens/char (German)", flush=True)

    step("build", build)
    data = write_task_data(work / "data", max(args.items + 8, 24))
    pairs = write_pairs(work / "pairs.jsonl", 16 * args.train_steps + 32)
    half = "bf16" if dev.cuda else "fp32"  # qtalign's default dtype on this device
    if (model_dir / "config.json").is_file():
        bf = step("eval-auto", lambda: eval_phase(f"{half}-auto", dev, model_dir, data, args, work, False, "auto", TASKS))
        result["eval"] += bf or []
        base = step("eval-batch8", lambda: eval_phase(f"{half}-batch8", dev, model_dir, data, args, work, False, 8,
                                                            ("emotion",)))
        result["eval"] += base or []
        if bf and base:
            result["ratios"][f"eval emotion {half}: auto batch vs batch 8 (items/s)"] = (
                bf[0]["items_per_s"] / base[0]["items_per_s"])
        if four_bit:
            q = step("eval-4bit", lambda: eval_phase("nf4-auto", dev, model_dir, data, args, work, True, "auto", TASKS))
            result["eval"] += q or []
            if bf and q:
                result["ratios"][f"eval emotion: 4-bit vs {half} (items/s)"] = q[0]["items_per_s"] / bf[0]["items_per_s"]
        lora = step("train-lora", lambda: train_phase(f"lora-{half}", dev, model_dir, pairs,
                                                       args, work, False))
        if lora:
            result["train"].append(lora)
        if four_bit:
            qlora = step("train-qlora", lambda: train_phase("qlora-nf4", dev, model_dir, pairs, args, work, True))
            if qlora:
                result["train"].append(qlora)
                if lora:
                    result["ratios"][f"train: QLoRA vs {half} LoRA (tokens/s)"] = qlora["tokens_per_s"] / lora["tokens_per_s"]
    save()
    if "model" in result:
        try:
            print(table(result), flush=True)
        except (KeyError, TypeError, ValueError) as e:  # a partial result: the JSON has what there is
            print(f"(no table: {e!r})", flush=True)
    print(f"wrote {out / 'gpu_check.json'} ({time.perf_counter() - started:.0f} s)", flush=True)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
