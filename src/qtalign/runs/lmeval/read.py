"""An lm-eval run read into qtalign's in-memory run record: one task group, items by (language, index), scores."""

from __future__ import annotations

import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qtalign import calibration
from qtalign.errors import QtalignError
from qtalign.languages import PAPER_LANGS
from qtalign.runs.lmeval.folder import LmevalFiles, read_files
from qtalign.runs.lmeval.langmap import read_lang_map
from qtalign.runs.lmeval.tables import GROUPS, Group
from qtalign.runs.scored import Run
from qtalign.store import read_jsonl_rows

PART_STRIDE = 1_000_000  # item index = part * PART_STRIDE + doc index where a language's items span several tasks
CAL_MODES = ("batch",)  # lm-eval logs no content-free prompts; batch calibration needs only the per-choice scores


def _place(task: str, groups: Sequence[Group]) -> tuple[Group, str] | None:
    for g in groups:
        hit = g.match(task)
        if hit is not None:
            return g, hit[0]
    return None


def _pick_group(files: LmevalFiles, groups: Sequence[Group], want: str | None, where: Path
                ) -> tuple[Group, dict[str, str]]:
    """The group to read and its tasks {task: language}: the one asked for, else the only one present."""
    placed = {t: _place(t, groups) for t in files.samples}
    by_group: dict[str, dict[str, str]] = {}
    found: dict[str, Group] = {}
    for t, hit in placed.items():
        if hit is not None:
            found[hit[0].name] = hit[0]
            by_group.setdefault(hit[0].name, {})[t] = hit[1]
    if want is not None:
        if want not in by_group:
            have = ", ".join(by_group) or "none of qtalign's task groups"
            raise QtalignError(f"{where}: no tasks of group {want!r} (it holds {have})")
        return found[want], by_group[want]
    unplaced = sorted(t for t, hit in placed.items() if hit is None)
    if unplaced:
        known = ", ".join(dict.fromkeys(g.name if not g.index_field else f"qtalign_{g.name}" for g in GROUPS))
        raise QtalignError(f"{where}: lm-eval task {unplaced[0]!r} is in no task table qtalign knows ({known}); "
                           f"map its tasks to languages with --lang-map FILE"
                           + (f", or choose a group with --task ({', '.join(by_group)})" if by_group else ""))
    if len(by_group) > 1:
        raise QtalignError(f"{where}: holds tasks of several groups ({', '.join(by_group)}); choose one with --task")
    name = next(iter(by_group))
    return found[name], by_group[name]


def groups_in(path: str | Path, lang_map: str | Path | None = None) -> list[str]:
    """The task groups an lm-eval folder holds (each read by load_lmeval(path, group=...)); one error line when a
    task is in no table and no lang map."""
    path = Path(path)
    files = read_files(path)
    groups = ([read_lang_map(lang_map)] if lang_map is not None else []) + list(GROUPS)
    placed = {t: _place(t, groups) for t in files.samples}
    if any(hit is None for hit in placed.values()):
        _pick_group(files, groups, None, path)  # raises, naming the task
    return list(dict.fromkeys(hit[0].name for hit in placed.values() if hit is not None))


def _gold(sample: dict[str, Any], conts: list[str], where: str) -> int:
    """The gold choice position: lm-eval logs str(doc_to_target), an index or the choice's text."""
    target = str(sample.get("target", ""))
    if target.lstrip("-").isdigit():
        k = int(target)
    else:
        texts = [c.strip() for c in conts]
        k = texts.index(target.strip()) if target.strip() in texts else -1
    if not 0 <= k < len(conts):
        raise QtalignError(f"{where}: target {target!r} is not one of the {len(conts)} choices")
    return k


def _sample_scores(sample: dict[str, Any], where: str) -> tuple[list[float], list[str], str]:
    """(log-likelihood of each choice, each choice's continuation text, the prompt) of a multiple-choice sample."""
    resps, args = sample.get("filtered_resps"), sample.get("arguments")
    if not isinstance(resps, list) or not isinstance(args, dict) or len(resps) != len(args) or len(resps) < 2:
        raise QtalignError(f"{where}: not a multiple-choice sample (per-choice log-likelihoods); qtalign compares "
                           f"multiple-choice tasks only")
    try:
        lls = [float(r[0]) for r in resps]
        keys = sorted(args, key=lambda k: int(str(k).rsplit("_", 1)[-1]))
        conts = [str(args[k]["arg_1"]) for k in keys]
        prompt = str(args[keys[0]]["arg_0"])
    except (TypeError, ValueError, KeyError, IndexError):
        raise QtalignError(f"{where}: not a multiple-choice sample (per-choice log-likelihoods); qtalign compares "
                           f"multiple-choice tasks only") from None
    return lls, conts, prompt


def _task_rows(group: Group, task: str, lang: str, path: Path, files: LmevalFiles) -> list[dict[str, Any]]:
    samples = read_jsonl_rows(path)
    expected = ((files.results.get("n-samples") or {}).get(task) or {}).get("effective")
    docs: dict[int, dict[str, Any]] = {}
    for s in samples:
        try:
            doc_id = int(s["doc_id"])
        except (KeyError, TypeError, ValueError):
            raise QtalignError(f"{path}: a line without an integer doc_id (not an lm-eval samples file)") from None
        if doc_id in docs:
            raise QtalignError(f"{path}: doc_id {doc_id} appears twice (several filters: not a multiple-choice "
                               f"task; qtalign compares multiple-choice tasks only)")
        docs[doc_id] = s
    if expected is not None and len(docs) != int(expected):
        raise QtalignError(f"{path}: {len(docs)} items, but {files.results_path.name} says lm-eval scored "
                           f"{expected}: an incomplete samples file")
    rows = []
    for doc_id, s in sorted(docs.items()):
        where = f"{path} doc_id {doc_id}"
        lls, conts, _ = _sample_scores(s, where)
        labels = group.labels or tuple(string.ascii_uppercase[: len(lls)])
        if len(lls) != len(labels):
            raise QtalignError(f"{where}: {len(lls)} choices, but group {group.name!r} has {len(labels)} "
                               f"({', '.join(labels)})")
        gold = _gold(s, conts, where)
        pred = int(np.argmax(lls))  # lm-eval's acc: the first choice of highest log-likelihood
        if "acc" in s and bool(float(s["acc"])) != (pred == gold):
            raise QtalignError(f"{where}: logged acc {s['acc']} disagrees with the logged log-likelihoods (argmax "
                               f"{pred}, target {gold}); this task does not score by log-likelihood")
        index = int(s["doc"][group.index_field]) if group.index_field else doc_id
        rows.append({"task": group.name, "lang": lang, "index": index, "item": f"{task}/{doc_id}",
                     "gold": labels[gold], "pred": labels[pred], "correct": pred == gold,
                     "tie": lls.count(max(lls)) > 1, "loglik": dict(zip(labels, lls)),
                     "prompt_sha": str(s.get("prompt_hash", ""))[:16] or None,
                     "item_sha": str(s.get("doc_hash", ""))[:16] or None})
    return rows


def _languages(group: Group, tasks: dict[str, str]) -> list[str]:
    """The group's languages in its table's order (the paper's order where the table is open), then by code."""
    rank = {lang: k for k, lang in enumerate(dict.fromkeys(group.codes.values()) or PAPER_LANGS)}
    return sorted(set(tasks.values()), key=lambda x: (rank.get(x, len(rank)), x))


def _parallel_audit(rows: dict[tuple[str, int], dict[str, Any]], langs: list[str]) -> bool:
    """Whether every language has the same items with the same gold choice at each index (translations of one item
    set); the other evidence, equal item indices, is checked where the means are resampled."""
    gold: dict[str, dict[int, str]] = {lang: {} for lang in langs}
    for (lang, i), r in rows.items():
        gold[lang][i] = r["gold"]
    first = gold[langs[0]]
    return all(g == first for g in gold.values())


def load_lmeval(path: str | Path, name: str | None = None, group: str | None = None,
                lang_map: str | Path | None = None) -> Run:
    """An lm-eval output folder written with --log_samples (or one results_*.json file) as a qtalign Run of one task
    group: languages from the group's table (or lang_map), items by doc_id (or the exported qtalign index), prompts
    and items identified by lm-eval's prompt_hash / doc_hash, raw predictions as lm-eval's acc takes them (argmax of
    the choices' log-likelihoods) and batch-calibrated ones from the same scores."""
    path = Path(path)
    files = read_files(path)
    groups = ([read_lang_map(lang_map)] if lang_map is not None else []) + list(GROUPS)
    g, tasks = _pick_group(files, groups, group, path)
    by_lang: dict[str, list[str]] = {}
    for t, lang in tasks.items():
        by_lang.setdefault(lang, []).append(t)
    missing = sorted(t for t in files.results.get("configs", {}) if t not in files.samples and g.match(t))
    if missing:
        raise QtalignError(f"{files.results_path}: task {missing[0]!r} has no samples file; rerun lm_eval with "
                           f"--log_samples")
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for lang, ts in by_lang.items():
        for part, t in enumerate(sorted(ts)):
            for r in _task_rows(g, t, lang, files.samples[t], files):
                if len(ts) > 1:
                    r["index"] += part * PART_STRIDE
                key = (lang, int(r["index"]))
                if key in rows:
                    raise QtalignError(f"{files.samples[t]}: item {r['index']} of {lang} appears twice")
                rows[key] = r
    langs = _languages(g, tasks)
    labels = list(g.labels or next(iter(rows.values()))["loglik"])
    for r in rows.values():
        if list(r["loglik"]) != labels:
            raise QtalignError(f"{path}: {r['item']} has {len(r['loglik'])} choices, other items {len(labels)}; "
                               f"qtalign compares tasks whose items share one set of choices")
    items: dict[str, list[int]] = {lang: [] for lang in langs}
    for lang, i in rows:
        items[lang].append(i)
    for lang in langs:
        items[lang].sort()
        lang_rows = [rows[lang, i] for i in items[lang]]
        for r, cal in zip(lang_rows, calibration.calibrate_language(lang_rows, labels, CAL_MODES, seed=0)):
            r["pred_cal"] = cal
            r["correct_cal"] = {m: cal[m] == r["gold"] for m in cal}
    run = Run(name or path.name, path, g.name, langs, labels, rows, items, None, list(CAL_MODES),
              model=files.model, parallel_audit=_parallel_audit(rows, langs), source=f"lm-eval {files.version}")
    run.notes.append(f"{run.name}: lm-eval {files.version} run {files.results_path}, group {g.name} "
                     f"({len(tasks)} task(s), {len(langs)} language(s)); raw = lm-eval's acc (argmax of the "
                     f"choices' full log-likelihoods), batch = the same scores batch-calibrated")
    return run
