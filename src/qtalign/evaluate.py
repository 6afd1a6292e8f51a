"""The evaluation loop: validate data, build prompts, score per language with resume, aggregate results."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import textwrap
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from qtalign import __version__, calibration
from qtalign.batchsize import BatchSize, BatchSizer, batch_sizer, memory_key, run_split
from qtalign.calibration import pick
from qtalign.config import Settings
from qtalign.data.check import context_problems
from qtalign.data.demonstrations_file import load_demos_file, resolve_demos_file
from qtalign.data.parallel import apply_gold_from, reference_items
from qtalign.data.ranges import parse_item_range, select_dataset, select_items
from qtalign.data.readers import Dataset, parallel_disagreements, read_dataset
from qtalign.distributed import Shard
from qtalign.errors import QtalignError
from qtalign.languages import PAPER_LANGS, language
from qtalign.metrics import bootstrap_accuracy, bootstrap_mean_accuracy, resampling_scheme
from qtalign.models import DEFAULT_MODEL, check_finite
from qtalign.prompts import LangPrompts, build_file_prompts, build_prompts, parse_labels, prompt_rows
from qtalign.protocol import paper_correct, paper_label_token_sets
from qtalign.scoring import Scorer, TokenIndex, continuation_ids, label_token_sets
from qtalign.store import (
    JsonlWriter,
    RunFolder,
    atomic_write_json,
    atomic_write_text,
    open_run,
    read_jsonl_rows,
    sha256_file,
    sha256_json,
)
from qtalign.tasks import Task, get_task

log = logging.getLogger(__name__)

PREDICTIONS = "predictions.jsonl"
RESULTS = "results.json"
RUN = "run.json"
CONTENT_FREE = "content_free.json"
PROMPTS = "prompts.jsonl"
PARTS = "parts"  # predictions.RANK.jsonl of each process of a multi-process run, gathered into PREDICTIONS at the end
_SLOW_TEST = float(os.environ.get("QTALIGN_SLOW_TEST", "0") or 0)


class EvalSettings(Settings):
    """Everything that defines an evaluation run."""

    task: str
    data: str
    model: str = DEFAULT_MODEL
    adapter: str | None = None
    langs: tuple[str, ...] = PAPER_LANGS
    shots: int | None = Field(None, ge=0)
    labels: str = "en"
    scoring: Literal["first-token", "loglik"] = "first-token"
    seed: int = 0
    demos: str | None = None
    limit: int | None = Field(None, ge=1)
    items: str | None = Field(None, pattern=r"^\d+:\d+$")  # START:END: read only these item indices of each file (qtalign.data.ranges)
    batch_size: BatchSize = 8  # a positive integer, or auto (largest that fits; qtalign.batchsize)
    device: str = "auto"
    dtype: str | None = None
    load_in_4bit: bool = False
    trust_remote_code: bool = False
    allow_pickle: bool = False
    n_boot: int = Field(1000, ge=10)
    # issue 7: protocols (qtalign.protocol), fixed demonstrations, parallel gold, the paper's scoring
    protocol: str = "qtalign"
    demos_file: str | None = None  # a demos file (the paper's layout), or "auto": found beside data
    keep_demo_items: bool = False  # demonstration items stay in the scored set (the paper's scripts)
    gold_from: str | None = None  # score every language against this parallel language's labels
    paper_gold: bool = False  # also score with the paper's exact gold strings (needs demos_file)
    label_tokens: Literal["qtalign", "paper"] = "qtalign"  # whose token sets a label word's mass sums
    log_prompts: bool = False  # write prompts.jsonl beside the predictions
    # calibrated predictions to add when the run finishes (qtalign.calibration.MODES); () = raw only
    calibrate: tuple[Literal["batch", "content-free"], ...] = calibration.MODES

    def identity(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run it continues (those that cannot change results, such as
        device, batch size and n_boot, may change; calibrate only changes what is computed from the stored scores)."""
        return self.model_dump(exclude=IDENTITY_EXCLUDES, mode="json")

    @classmethod
    def identity_defaults(cls) -> dict[str, Any]:
        """Each optional setting at its default, as JSON values (for run records made before a setting existed)."""
        return {name: json.loads(json.dumps(f.default)) for name, f in cls.model_fields.items()
                if not f.is_required()}


IDENTITY_EXCLUDES = {"device", "n_boot", "calibrate", "trust_remote_code", "allow_pickle", "batch_size", "log_prompts"}


def identity_defaults() -> dict[str, Any]:
    """EvalSettings.identity_defaults (the analyses share eval's prompt settings)."""
    return EvalSettings.identity_defaults()


@dataclass
class Prepared:
    """Validated data and prompts, before any model is loaded."""

    task: Task
    data: Dataset
    prompts: dict[str, LangPrompts]
    data_hashes: dict[str, str]
    disagreements: dict[str, list[int]]
    parallel_audit: bool | None = None  # every language's file parallel to English (None: no English file)


def summarize_problems(data: Dataset, limit: int = 5) -> str:
    errs = data.errors
    lines = [str(p) for p in errs[:limit]]
    more = f"\n  ... and {len(errs) - limit} more" if len(errs) > limit else ""
    return "\n  ".join(lines) + more


def warn_problems(problems: list[Any], per_source: int = 3) -> None:
    """Log data warnings: the first few of each file, then how many more (`qtalign data check` lists them all)."""
    shown: Counter[str] = Counter()
    for p in problems:
        shown[p.source] += 1
        if shown[p.source] <= per_source:
            log.warning("warning: %s", p)
    for source, n in shown.items():
        if n > per_source:
            log.warning("warning: %s: %d more warning(s); `qtalign data check` lists them all", source, n - per_source)


def prepare(s: EvalSettings) -> Prepared:
    """Read and validate data (the checks of `qtalign data check`) and build the prompts."""
    try:
        task = get_task(s.task)
        for lang in s.langs:
            language(lang)
            task.lang(lang)
    except ValueError as e:
        raise QtalignError(str(e)) from None
    rng = parse_item_range(s.items) if s.items is not None else None
    data = select_dataset(read_dataset(task, s.data, s.langs), rng)
    if data.errors:
        n = len(data.errors)
        raise QtalignError(
            f"{n} problem(s) in the data; fix them or run `qtalign data check` for the full list:\n  "
            + summarize_problems(data)
        )
    warn_problems(data.problems)
    demo_data = None
    if s.demos is not None:
        demo_data = read_dataset(task, s.demos, s.langs, split="train")
        demo_data.problems = [p for p in demo_data.problems if "no usable items" not in p.message]
        if demo_data.errors:
            raise QtalignError("problems in the demonstration data:\n  " + summarize_problems(demo_data))
    reference = reference_items(task, s.data, data)
    if reference is not None and rng is not None:
        reference = select_items(reference, rng)
    disagreements = parallel_disagreements(data, ref=reference)
    for lang, idx in disagreements.items():
        if idx:
            log.warning(
                "warning: %s: %d item(s) have a gold label that differs from the parallel English item "
                "(first: %s); %s",
                data.sources[lang], len(idx), ", ".join(map(str, idx[:5])),
                "scored against the English labels (--gold-from en)" if s.gold_from else
                "accuracy uses this file's labels (--gold-from en scores against the English ones)",
            )
    if s.gold_from:
        gold_ref = reference if s.gold_from == "en" else reference_items(task, s.data, data, s.gold_from)
        if gold_ref is not None and rng is not None:
            gold_ref = select_items(gold_ref, rng)
        data = apply_gold_from(task, data, gold_ref, s.gold_from)
    labels = parse_labels(s.labels)
    demos_path = resolve_demos_file(task, s.demos_file, s.data)
    if demos_path is not None:
        if demo_data is not None:
            raise QtalignError("--demos and --demos-file both give demonstrations; use one")
        demos = load_demos_file(demos_path, task)
        if s.shots is not None and s.shots != demos.shots:
            raise QtalignError(f"--shots {s.shots}: {demos_path} has {demos.shots} demonstrations per language")
        prompts = build_file_prompts(task, data, s.langs, demos, labels=labels, limit=s.limit,
                                     keep_demo_items=s.keep_demo_items, gold=s.paper_gold)
    else:
        if s.paper_gold:
            raise QtalignError("--paper-gold needs the paper's label tables: give --demos-file or --protocol paper")
        prompts = build_prompts(
            task, data, s.langs, shots=s.shots, labels=labels, seed=s.seed, demo_data=demo_data, limit=s.limit,
            reference=reference, keep_demo_items=s.keep_demo_items,
        )
    hashes = {}
    sources = set(data.sources.values()) | (set(demo_data.sources.values()) if demo_data else set())
    sources |= {str(demos_path)} if demos_path is not None else set()
    sources |= {reference[0].source} if reference else set()
    for src in sorted(sources):
        hashes[src] = sha256_file(src) if Path(src).is_file() else "unhashed"
    audit = None if not reference else all(lang == "en" or lang in disagreements
                                            for lang, its in data.items.items() if its)
    return Prepared(task, data, prompts, hashes, disagreements, audit)


def prompt_task_name(s: EvalSettings, task: Task) -> str:
    """The task name on prompt lines: the paper's (emotion, snli, paws) under --protocol paper, so the lines diff
    directly against the prompts of the paper's scripts; else qtalign's."""
    return task.file_stem if s.protocol == "paper" else task.name


def format_prompt_lines(s: EvalSettings, prep: Prepared) -> str:
    """What `qtalign prompts` prints and `eval --log-prompts` writes: one JSON object per line, every line ending in
    a newline."""
    rows = prompt_rows(prompt_task_name(s, prep.task), prep.prompts)
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def prompt_sha(prompt: str) -> str:
    """The `prompt_sha` of a predictions row: first 16 hex chars of sha256 of the full prompt string (utf-8)."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


def versions() -> dict[str, str]:
    import torch
    import transformers

    out = {"qtalign": __version__, "python": platform.python_version(), "torch": torch.__version__,
           "transformers": transformers.__version__}
    try:
        import peft

        out["peft"] = peft.__version__
    except ImportError:  # pragma: no cover
        pass
    return out


def run_eval(s: EvalSettings, out: str | Path, overwrite: bool = False, progress: bool = True,
             score: bool = True) -> dict[str, Any]:
    """Evaluate, writing predictions as they are scored; resumes an interrupted run in the same folder.

    The folder is checked (store.open_run) before the model loads; run.json is written once the model and adapter
    have loaded, so a failed start leaves nothing that blocks the corrected command.

    Launched in several processes (torchrun, accelerate launch), each process scores its share of the batches into
    its own part file (parts/predictions.RANK.jsonl). The main process alone claims the folder, scores the
    content-free prompts (content_free.json), gathers the parts into one predictions.jsonl and finishes the run
    (calibration, results.json); results equal a one-process run's. A run killed part-way resumes with any process
    count.
    """
    from qtalign.distributed import get_dist
    from qtalign.models import adapter_sha256, load_model, resolve_adapter

    dist = get_dist(s.device)

    def setup() -> tuple[EvalSettings, Prepared, dict[str, Any]]:
        resolved = s if s.adapter is None else s.model_copy(update={"adapter": str(resolve_adapter(s.adapter))})
        prep = prepare(resolved)
        identity = {**resolved.identity(), "data_sha256": prep.data_hashes}
        if resolved.adapter is not None:
            identity["adapter_sha256"] = adapter_sha256(resolved.adapter)
        return resolved, prep, identity

    s, prep, identity = dist.agree(setup)

    def claim() -> RunFolder:  # main process: check the folder, gather what a killed multi-process run left
        run = open_run(out, RUN, identity, outputs=(PREDICTIONS, RESULTS, PROMPTS, CONTENT_FREE, PARTS),
                       overwrite=overwrite, ignore=IDENTITY_EXCLUDES, defaults=EvalSettings.identity_defaults())
        gather_parts(run.path)
        return run

    run = dist.on_main(claim)
    out = run.path
    dist.check_shared(out)
    if not score and not run.resumed:
        raise QtalignError(f"{out}: no finished `qtalign eval` run with these settings and data to recalibrate")

    def commit() -> None:  # main process, once setup succeeded: the run record, and the prompts if asked for
        run.commit()
        if s.log_prompts:
            atomic_write_text(out / PROMPTS, format_prompt_lines(s, prep))

    def found() -> tuple[set[tuple[str, int]], dict[str, Any]]:  # main process: the items and content-free scores
        done = {(r["lang"], r["index"]) for r in read_jsonl_rows(out / PREDICTIONS) if r.get("task") == s.task}
        return done, read_content_free(out / CONTENT_FREE)

    done, cf = dist.on_main(found)
    todo = {lang: [it.index for it in p.items if (lang, it.index) not in done] for lang, p in prep.prompts.items()}
    total = sum(len(v) for v in todo.values())
    cf_todo = [lang for lang, lp in prep.prompts.items() if not _content_free_done(cf, lp)]
    model_info = {"model": s.model, "adapter": s.adapter, "adapter_sha256": identity.get("adapter_sha256")}
    if not score:
        if total:
            raise QtalignError(f"{out}: {total} item(s) not scored yet; finish the run with `qtalign eval` first")
        if cf_todo and "content-free" in s.calibrate:
            raise QtalignError(
                f"{out / CONTENT_FREE}: no content-free scores for {', '.join(cf_todo)} (run made before they were "
                "stored); use --calibrate batch, or rerun `qtalign eval` with the run's settings and --out to score "
                f"only the {len(calibration.CONTENT_FREE_INPUTS)} content-free prompts per language")
    elif total or cf_todo:
        lm = dist.local_main_first(lambda: load_model(
            s.model, adapter=s.adapter, device=dist.local_device(s.device), dtype=s.dtype,
            load_in_4bit=s.load_in_4bit, trust_remote_code=s.trust_remote_code, allow_pickle=s.allow_pickle))
        dist.on_main(commit)
        max_len = getattr(lm.base.config, "max_position_embeddings", None)
        sizer = batch_sizer(s.batch_size, lm.device, memory_key(f"eval-{s.scoring}", s.model, s.task, lm.device,
                                                                lm.dtype, lm.quantization))
        sizer.size = dist.broadcast(sizer.size)  # the same batches in every process (a remembered auto size may differ)
        scorer = Scorer(lm.model, lm.tokenizer, batch_size=sizer.size)
        index = TokenIndex(lm.tokenizer) if s.scoring == "first-token" else None
        from tqdm.auto import tqdm

        # the main process shows its own share, about 1/world of the items
        bar = tqdm(total=-(-total // dist.world), unit="item", disable=not progress or not dist.is_main,
                   dynamic_ncols=True)
        shard = dist.shard()

        def score_all() -> None:
            with JsonlWriter(part_path(out, dist.rank) if dist.enabled else out / PREDICTIONS) as writer:
                for lang, lp in prep.prompts.items():
                    # content-free prompts: the main process scores them and alone writes content_free.json
                    content_free = (cf, out / CONTENT_FREE) if lang in cf_todo and dist.is_main else None
                    if not todo[lang] and content_free is None:
                        continue
                    bar.set_postfix_str(lang)
                    _score_language(s, prep.task, lp, scorer, index, max_len, done, writer, bar, content_free, sizer,
                                    lm.dtype, shard)

        dist.agree(score_all)
        bar.close()
        mismatches = sum(dist.gather(scorer.boundary_mismatches))
        if mismatches and dist.is_main:
            log.warning("warning: %d item(s) tokenized on their own (prefix tokens changed at the boundary)",
                        mismatches)
        model_info = lm.describe()
    else:
        dist.on_main(commit)

    def finish() -> dict[str, Any]:  # main process: gather the parts, calibrate, write results.json
        gather_parts(out)
        info = model_info
        if not score or not (total or cf_todo):  # nothing scored now: keep what the run recorded about its model
            info = _recorded_model_info(out / RESULTS) or info
        return finish_run(s, prep, out, info, cf)

    return dist.on_main(finish)


def part_path(out: Path, rank: int) -> Path:
    """The predictions part file of one process of a multi-process run."""
    return out / PARTS / f"predictions.{rank}.jsonl"


def gather_parts(out: Path) -> int:
    """Append the rows of the processes' part files (out/parts/predictions.RANK.jsonl, any process count) that
    predictions.jsonl lacks to it, then delete the parts; returns the number of rows added (finish_run puts the rows
    in item order).

    Crash-safe: the rows are appended (fsynced) before the parts are deleted, and a row already present is skipped,
    so a kill in between only leaves parts whose rows the next gathering skips.
    """
    folder = out / PARTS
    parts = sorted(folder.glob("predictions.*.jsonl"), key=lambda p: (len(p.name), p.name)) if folder.is_dir() else []
    if not parts:
        return 0
    key = lambda r: (r.get("task"), r.get("lang"), r.get("index"))
    have = {key(r) for r in read_jsonl_rows(out / PREDICTIONS)}
    new: list[dict[str, Any]] = []
    for part in parts:
        for row in read_jsonl_rows(part):
            if key(row) not in have:
                have.add(key(row))
                new.append(row)
    if new:
        with JsonlWriter(out / PREDICTIONS) as writer:
            writer.write_many(new)
    for part in parts:
        part.unlink()
    shutil.rmtree(folder, ignore_errors=True)
    return len(new)


def read_content_free(path: Path) -> dict[str, Any]:
    """content_free.json of a run folder: {"inputs": [...], "languages": {lang: {"rows": [...]}}} (empty if none)."""
    if not path.is_file():
        return {"inputs": list(calibration.CONTENT_FREE_INPUTS), "languages": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise QtalignError(f"{path}: not valid JSON; delete it and rerun `qtalign eval` to score it again") from None
    if not isinstance(data, dict) or not isinstance(data.get("languages"), dict):
        raise QtalignError(f"{path}: unexpected content; delete it and rerun `qtalign eval` to score it again")
    return data


def _content_free_done(cf: dict[str, Any], lp: LangPrompts) -> bool:
    entry = cf["languages"].get(lp.lang)
    return bool(entry) and [r.get("text") for r in entry.get("rows", [])] == list(lp.content_free)


def _recorded_model_info(path: Path) -> dict[str, Any] | None:
    try:
        info = json.loads(path.read_text(encoding="utf-8")).get("model")
    except (OSError, ValueError, AttributeError):
        return None
    return info if isinstance(info, dict) else None


def finish_run(s: EvalSettings, prep: Prepared, out: Path, model_info: dict[str, Any],
               cf: dict[str, Any]) -> dict[str, Any]:
    """Add the calibrated predictions, rewrite predictions.jsonl in item order and write results.json."""
    rows = ordered_rows(prep, s.task, read_jsonl_rows(out / PREDICTIONS))
    by_lang: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_lang.setdefault(r["lang"], []).append(r)
    for lang in prep.prompts:
        got = by_lang.get(lang, [])
        cf_rows = cf["languages"].get(lang, {}).get("rows")
        preds = calibration.calibrate_language(got, prep.task.labels, s.calibrate, s.seed, cf_rows)
        for r, p in zip(got, preds):
            r.pop("pred_cal", None)
            r.pop("correct_cal", None)
            if p:
                r["pred_cal"] = p
                r["correct_cal"] = {m: lb == r["gold"] for m, lb in p.items()}
    atomic_write_text(out / PREDICTIONS, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    results = aggregate(s, prep, rows, model_info)
    atomic_write_json(out / RESULTS, results)
    return results


def ordered_rows(prep: Prepared, task: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """This run's rows in item order (languages in settings order, items in prompt order), one per item; rows of no
    item of this run are kept after them, in file order."""
    keys = [(lang, it.index) for lang, lp in prep.prompts.items() for it in lp.items]
    wanted = set(keys)
    by_key = {(r["lang"], r["index"]): r for r in rows if r.get("task") == task}
    extra = [r for r in rows if r.get("task") != task or (r["lang"], r["index"]) not in wanted]
    return [dict(by_key[k]) for k in keys if k in by_key] + extra


def _score_language(
    s: EvalSettings,
    task: Task,
    lp: LangPrompts,
    scorer: Scorer,
    index: TokenIndex | None,
    max_len: int | None,
    done: set[tuple[str, int]],
    writer: JsonlWriter,
    bar: Any,
    content_free: tuple[dict[str, Any], Path] | None = None,
    sizer: BatchSizer | None = None,
    dtype: Any = None,
    shard: Shard | None = None,
) -> None:
    """Score one language's remaining items in deterministic batches; write each finished batch.

    content_free: (the run's content-free record, its path): first score this language's content-free prompts
    (lp.content_free after the same prefix) and write them into the record atomically.
    sizer: how many items go through the model at once (--batch-size auto halves it on out-of-memory: a batch is then
    scored in pieces; the batches themselves stay those of scorer.batch_size).
    shard: in a multi-process run, the batches of this process (each batch with items left is one unit of work)."""
    prefix_ids = scorer.encode_prefix(lp.prefix)
    rows = scorer.encode_items(lp.prefix, lp.texts)
    if max_len:
        too_long = context_problems(lp.items, len(prefix_ids), rows, max_len)
        if too_long:
            more = f" (and {len(too_long) - 1} more)" if len(too_long) > 1 else ""
            raise QtalignError(f"{too_long[0]}{more}")
    if s.scoring == "first-token":
        assert index is not None
        try:
            if s.label_tokens == "paper":
                model_type = getattr(scorer.base.config, "model_type", None)
                sets = paper_label_token_sets(scorer.tokenizer, lp.label_words, model_type)
            else:
                sets = label_token_sets(index, lp.label_words)
        except QtalignError as e:
            raise QtalignError(f"language {lp.lang!r}: {e}") from None
        score = lambda state, batch_rows: scorer.first_token_batch(state, batch_rows, sets)
        kind = "probs"
    else:
        ids = [continuation_ids(scorer.tokenizer, w) for w in lp.label_words]
        score = lambda state, batch_rows: scorer.loglik_batch(state, batch_rows, ids)
        kind = "loglik"
    state = scorer.prefix_state(prefix_ids)
    sizer = sizer or BatchSizer(scorer.batch_size)
    if content_free is not None:
        cf, cf_path = content_free
        cf_texts = list(lp.content_free)
        cf_rows = scorer.encode_items(lp.prefix, cf_texts)
        cf_scores = np.concatenate([part for _, part in run_split(sizer, list(range(len(cf_rows))), lambda piece: score(
            state, [cf_rows[i] for i in piece]))])  # [M, L]
        if not np.isfinite(cf_scores).all():
            check_finite(cf_scores, f"language {lp.lang!r}, content-free prompts", dtype)
        cf["inputs"] = list(calibration.CONTENT_FREE_INPUTS)
        cf["languages"][lp.lang] = {"rows": [
            {"input": x, "text": t, kind: {label: float(v) for label, v in zip(task.labels, row)}}
            for x, t, row in zip(calibration.CONTENT_FREE_INPUTS, cf_texts, cf_scores)]}
        atomic_write_json(cf_path, cf)
    # batches depend only on the full item list, so a resumed run scores each item in the same batch as before
    for batch in scorer.batches([len(r) for r in rows]):
        missing = [i for i in batch if (lp.lang, lp.items[i].index) not in done]
        if not missing or (shard is not None and not shard.mine()):
            continue
        t0 = time.perf_counter()
        # --batch-size auto: a batch that runs out of device memory is scored in smaller pieces (in order)
        scores = np.concatenate([part for _, part in run_split(sizer, batch, lambda piece: score(
            state, [rows[i] for i in piece]))])  # [B, L]
        bad = ~np.isfinite(scores).all(axis=1)
        if bad.any():
            check_finite(scores, f"language {lp.lang!r}, item {lp.items[batch[int(np.argmax(bad))]].index}", dtype)
        out_rows = []
        for b, i in enumerate(batch):
            it = lp.items[i]
            if (lp.lang, it.index) in done:
                continue
            pred, tie = pick(scores[b], task.labels, s.seed, lp.lang, it.index)
            row = {
                "task": task.name, "lang": lp.lang, "index": it.index, "gold": it.label, "gold_answer": it.answer,
                "pred": pred, "correct": pred == it.label, "tie": tie,
                "prompt_sha": prompt_sha(lp.prompt(i)),
                kind: {label: float(v) for label, v in zip(task.labels, scores[b])},
            }
            if lp.gold_table is not None:
                row["paper_correct"] = paper_correct(it.answer, pred, lp.gold_table)
            out_rows.append(row)
        writer.write_many(out_rows)
        if _SLOW_TEST:  # lets the resume test interrupt a run part-way with a tiny model
            time.sleep(_SLOW_TEST)
        done.update((lp.lang, r["index"]) for r in out_rows)
        bar.update(len(out_rows))
        log.debug("%s: batch of %d in %.2fs", lp.lang, len(batch), time.perf_counter() - t0)


def aggregate(s: EvalSettings, prep: Prepared, rows: list[dict[str, Any]], model_info: dict[str, Any]) -> dict[str, Any]:
    """results.json content from the prediction rows of the items this run scores (in item order)."""
    by_key = {(r["lang"], r["index"]): r for r in rows if r.get("task") == s.task}
    per_lang: dict[str, Any] = {}
    correct_by_lang: dict[str, list[bool]] = {}
    paper_by_lang: dict[str, list[bool]] = {}
    for lang, lp in prep.prompts.items():
        got = [by_key[(lang, it.index)] for it in lp.items if (lang, it.index) in by_key]
        correct = [bool(r["correct"]) for r in got]
        correct_by_lang[lang] = correct
        ci = bootstrap_accuracy(correct, s.n_boot, s.seed)
        dist = Counter(r["pred"] for r in got)
        per_lang[lang] = {
            "accuracy": ci.value, "ci95": [ci.lo, ci.hi], "n": len(got), "n_expected": len(lp.items),
            "predicted": {label: dist.get(label, 0) for label in prep.task.labels},
            "gold": {label: sum(r["gold"] == label for r in got) for label in prep.task.labels},
            "ties": sum(bool(r["tie"]) for r in got),
            "label_words": list(lp.label_words),
            "demos": [d.index if d.index >= 0 else None for d in lp.demos],  # None: not an item of the data
            "gold_disagrees_with_en": len(prep.disagreements.get(lang, [])),
        }
        if lp.gold_table is not None:
            paper = [bool(r.get("paper_correct")) for r in got]
            paper_by_lang[lang] = paper
            pci = bootstrap_accuracy(paper, s.n_boot, s.seed)
            per_lang[lang].update({"paper_accuracy": pci.value, "paper_ci95": [pci.lo, pci.hi]})
    rows_by_lang = {lang: [by_key[(lang, it.index)] for it in lp.items if (lang, it.index) in by_key]
                    for lang, lp in prep.prompts.items()}
    resampling = resampling_scheme({lang: [int(r["index"]) for r in got] for lang, got in rows_by_lang.items()},
                                   prep.parallel_audit)
    mean = bootstrap_mean_accuracy(correct_by_lang, s.n_boot, s.seed, resampling=resampling)
    mean_row: dict[str, Any] = {"accuracy": mean.value, "ci95": [mean.lo, mean.hi], "n_languages": len(per_lang)}
    if paper_by_lang:
        pm = bootstrap_mean_accuracy(paper_by_lang, s.n_boot, s.seed, resampling=resampling)
        mean_row.update({"paper_accuracy": pm.value, "paper_ci95": [pm.lo, pm.hi]})
    bias_lang, bias_mean = calibration.run_summaries(rows_by_lang, prep.task.labels, s.calibrate, s.n_boot, s.seed,
                                                     resampling)
    for lang, extra in bias_lang.items():
        per_lang[lang].update(extra)
    mean_row.update(bias_mean)
    return {
        "task": s.task,
        "protocol": s.protocol,
        "languages": per_lang,
        "mean": mean_row,
        "complete": all(v["n"] == v["n_expected"] for v in per_lang.values()),
        "model": model_info,
        "settings": s.model_dump(mode="json"),
        "data_sha256": prep.data_hashes,
        "settings_sha256": sha256_json(s.identity()),
        "versions": versions(),
    }


def format_table(results: dict[str, Any]) -> str:
    """The per-language table printed at the end of a run: raw and each calibrated mode side by side (accuracy with
    its 95% interval, macro-F1, % of items predicted each label)."""
    langs = results["languages"]
    labels = list(next(iter(langs.values()))["predicted"]) if langs else []
    modes = list(results["mean"].get("calibrated", {}))
    share_head = "/".join(lb[:3] for lb in labels)
    share_w = max(len(share_head), 4 * len(labels) - 1)
    block_w = 24 + share_w

    def block(r: dict[str, Any]) -> str:
        ci = f"[{r['ci95'][0]:.2f},{r['ci95'][1]:.2f}]"
        shares = r.get("predicted_share") or {}
        pct = "/".join(f"{100 * shares.get(lb, float('nan')):.0f}" for lb in labels)
        return f"{r['accuracy']:>5.3f} {ci:<11} {r.get('macro_f1', float('nan')):>5.3f} {pct:>{share_w}}"

    protocol = results.get("protocol", "qtalign")
    title = (f"task {results['task']}, model {results['model'].get('model')}"
             + (f" + adapter {results['model']['adapter']}" if results["model"].get("adapter") else "")
             + (f", protocol {protocol}" if protocol != "qtalign" else ""))
    groups = " " * 11 + "  ".join(f" {name} ".center(block_w, "-") for name in ["raw", *modes])
    head = f"{'lang':<5}{'n':>5} " + "  ".join(
        f"{'acc':>5} {'95% CI':<11} {'F1':>5} {share_head:>{share_w}}" for _ in ["raw", *modes])
    lines = [title, groups, head]
    for lang, r in langs.items():
        lines.append(f"{lang:<5}{r['n']:>5} " + "  ".join(
            block(x) for x in [r, *(r.get("calibrated", {})[m] for m in modes)]))
    m = results["mean"]
    lines.append(f"{'mean':<5}{'':>5} " + "  ".join(block(x) for x in [m, *(m["calibrated"][k] for k in modes)]))
    lines.append(f"mean: unweighted over {m['n_languages']} languages; F1: macro-F1; {share_head}: % of items predicted "
                 + ", ".join(labels))
    if m.get("resampling"):
        lines.append(f"mean intervals: {m['resampling']['text']}")
    if "paper_accuracy" in m:  # --paper-gold: the paper scripts' exact gold-string matching, on lines of its own
        accs = [f"{lang} {r['paper_accuracy']:.3f}" for lang, r in langs.items()] + [f"mean {m['paper_accuracy']:.3f}"]
        lines += textwrap.wrap("acc by the paper scripts' exact gold-string matching (paper): " + ", ".join(accs), 118,
                               subsequent_indent="  ")
    if modes:
        lines.append("calibrated predictions: see docs/calibration.md; recompute with `qtalign calibrate RUN_DIR`")
    return "\n".join(lines)
