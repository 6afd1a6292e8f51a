"""Plan a study as steps (build -> train -> eval -> compare -> lens/pca -> report), each keyed by what it reads."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from qtalign.protocol import presets
from qtalign.study.eval_grid import eval_fields
from qtalign.study.keys import (
    content_key,
    eval_data_files,
    files_digest,
    legacy_key,
    mix_data_files,
    mix_inputs,
    model_content,
    model_fingerprint,
    prompt_inputs,
)
from qtalign.study.schema import ModelSpec, StudyConfig

# bump a kind's version when what its step computes changes, so cached results of older code are not reused
# compare 2, report 2: intervals of means resample parallel items jointly, record the scheme, power, seed-aware report
STEP_VERSIONS: dict[str, int] = {"build": 1, "train": 1, "eval": 1, "compare": 2, "lens": 1, "pca": 1, "report": 2}


@dataclass
class Step:
    id: str
    kind: str
    deps: tuple[str, ...]
    params: dict[str, Any]  # settings that define the result (keyed without the paths in them: keys.portable)
    runtime: dict[str, Any] = field(default_factory=dict)  # how to run it (device, batch size: not keyed)
    inputs: dict[str, Any] = field(default_factory=dict)  # what it reads: file contents by given name, the model
    record: dict[str, Any] | None = None  # its entry in study.json's trains/evals/compares/analyses
    fingerprint: dict[str, Any] = field(default_factory=dict)  # the previous key's fingerprints (absolute paths)
    same_as_before: bool = True  # computes what the previous qtalign computed for the same config (legacy key)
    hash: str = ""  # the key: keys.content_key of params, inputs and the keys of its dependencies
    legacy: str | None = None  # the key the previous qtalign gave it (keys.legacy_key), None if it computes anew
    out: str = ""  # folder relative to the study folder (study.verify may find it under an earlier key's name)

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
        steps.append(Step(f"build:{m.name}", "build", (), params, inputs=mix_inputs(cfg, m.name),
                          fingerprint={"files": files_digest(mix_data_files(cfg, m.name))}))

    eval_fp: dict[tuple[str, int, str], dict[str, Any]] = {}
    eval_in: dict[str, dict[str, Any]] = {}

    def eval_fingerprint(task: str) -> dict[str, Any]:
        t = cfg.eval.tasks[task]
        langs = cfg.task_langs(task)
        files = eval_data_files(task, t.data, langs, "test")
        if t.demos:
            files += eval_data_files(task, t.demos, langs, "train")
        return {"files": files_digest(files)}

    def eval_inputs(task: str, fields: dict[str, Any]) -> dict[str, Any]:
        if task not in eval_in:
            t = cfg.eval.tasks[task]
            eval_in[task] = prompt_inputs(task, t.data, cfg.task_langs(task), t.demos, fields.get("demos_file"),
                                          fields.get("gold_from"))
        return eval_in[task]

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
        return Step(sid, "eval", deps, {"settings": fields}, runtime, {"model": model_content(model),
                                                                    **eval_inputs(task, fields)}, record,
                    fingerprint={"model": model_fingerprint(model), **eval_fp[key]})

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
                before = {**recipe, "model": model.id, "seed": seed, "dtype": recipe.get("dtype", model.dtype),
                          "trust_remote_code": model.trust_remote_code}
                # the recipe's protocol presets, as TrainSettings resolves them (earlier versions left them out)
                given = {k: v for k, v in presets(before.get("protocol"), "train").items() if before.get(k) is None}
                settings = {**before, **given}
                sid = f"train:{model.key}:{m.name}:s{seed}"
                steps.append(Step(sid, "train", (f"build:{m.name}",), {"settings": settings},
                                  {"device": cfg.device}, {"model": model_content(model)},
                                  {"id": sid, "model": model.key, "mix": m.name, "control": m.control,
                                   "train_seed": seed}, fingerprint={"model": model_fingerprint(model)},
                                  same_as_before=not given))
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
        reads = prompt_inputs(task, t.data, tuple(common["langs"]), t.demos,
                              presets(a.protocol, kind).get("demos_file"))
        mixes = [m for m in cfg.mixes if a.mixes is None or m.name in a.mixes]
        for model in cfg.models:
            base_id = f"{kind}:{model.key}:base"
            mp = {"model": model.id, "dtype": model.dtype, "trust_remote_code": model.trust_remote_code}
            runtime = {"device": cfg.device, "batch_size": a.batch_size}
            steps.append(Step(base_id, kind, (), {**common, **mp}, runtime, {**reads, "model": model_content(model)},
                              {"id": base_id, "kind": kind, "model": model.key, "mix": None, "train_seed": None},
                              fingerprint={**fp, "model": model_fingerprint(model)}))
            for m in mixes:
                for seed in cfg.mix_train_seeds(m)[:None if a.train_seeds == "all" else 1]:
                    sid = f"{kind}:{model.key}:{m.name}:s{seed}"
                    steps.append(Step(sid, kind, (f"train:{model.key}:{m.name}:s{seed}", base_id), {**common, **mp},
                                      runtime, {**reads, "model": model_content(model)},
                                      {"id": sid, "kind": kind, "model": model.key, "mix": m.name,
                                       "control": m.control, "train_seed": seed},
                                      fingerprint={**fp, "model": model_fingerprint(model)}))

    if cfg.report:
        steps.append(Step("report", "report", tuple(s.id for s in steps), {}))

    plan = Plan(dependency_order(steps))
    for s in plan.steps:  # every dep is earlier in the list
        version = STEP_VERSIONS[s.kind]
        s.hash = content_key(s.kind, version, s.params, s.inputs, [plan[d].hash for d in s.deps])
        s.legacy = legacy_key(s.kind, version, s.params, s.fingerprint, [plan[d].legacy for d in s.deps]) \
            if s.same_as_before else None
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
