"""Checks of a study's `findings` block: every contrast names mixes the study evaluates, on shared demonstration
sets, with the same number of training pairs where it asks for that."""

from __future__ import annotations

from typing import Any

from qtalign.calibration import MODES as CALIBRATION_MODES
from qtalign.data.controls import trained_languages
from qtalign.languages import LANGUAGES
from qtalign.study.schema import StudyConfig


def unseen_languages(cfg: StudyConfig, task: str) -> tuple[str, ...]:
    """The evaluated languages of `task` that no mix of the study trains on (controls included)."""
    seen = {x for m in cfg.mixes for x in trained_languages(m.sources, m.target, m.control)}
    return tuple(x for x in cfg.task_langs(task) if x not in seen)


def check_findings(cfg: StudyConfig, fail: Any) -> None:
    """One line per problem of cfg.findings (fail(key, message, stop))."""
    f = cfg.findings
    assert f is not None
    names = [m.name for m in cfg.mixes]
    if f.model is not None and f.model not in [m.key for m in cfg.models]:
        fail("findings.model", f"no model called {f.model!r} (models: {', '.join(m.key for m in cfg.models)})",
             stop=False)
    task = f.task or next(iter(cfg.eval.tasks))
    if task not in cfg.eval.tasks:
        fail("findings.task", f"{task!r} is not an evaluation task (eval.tasks: {', '.join(cfg.eval.tasks)})")
    if f.labels is not None and f.labels not in cfg.eval.labels:
        fail("findings.labels", f"{f.labels!r} is not one of eval.labels ({', '.join(cfg.eval.labels)})", stop=False)
    modes = ("raw", *cfg.eval.calibration)
    for mode in f.modes:
        if mode not in modes:
            fail("findings.modes", f"{mode!r} is not raw or a calibration mode of eval.calibration "
                                   f"(known: {', '.join(('raw', *CALIBRATION_MODES))})", stop=False)
    for mode, sd in f.train_sd.items():
        if mode not in f.modes:
            fail(f"findings.train_sd.{mode}", f"not one of findings.modes ({', '.join(f.modes)})", stop=False)
        if not 0 <= sd < 1:
            fail(f"findings.train_sd.{mode}", f"{sd}: an SD of accuracy, a fraction in [0, 1)", stop=False)
    ids = [r.id for r in f.rows]
    for k, row in enumerate(f.rows):
        key = f"findings.rows[{k}] ({row.id})"
        if ids.count(row.id) > 1:
            fail(f"{key}.id", "two findings have this id", stop=False)
        arms = (*row.plus, *row.minus)
        if row.untestable is not None:
            if arms:
                fail(f"{key}.untestable", "an untestable finding names no mixes (plus/minus)", stop=False)
            continue
        if not row.plus:
            fail(f"{key}.plus", "name the mixes the finding compares (or say why it is untestable)", stop=False)
        for mx in arms:
            if mx not in names:
                fail(f"{key}.plus" if mx in row.plus else f"{key}.minus",
                     f"no mix named {mx!r} (mixes: {', '.join(names) or 'none'})", stop=False)
        if set(row.plus) & set(row.minus) or len(set(arms)) != len(arms):
            fail(f"{key}.minus", "a mix is named twice", stop=False)
        if row.direction == "similar" and row.margin <= 0:
            fail(f"{key}.margin", "direction 'similar' needs a margin > 0 (a fraction of accuracy, e.g. 0.03)",
                 stop=False)
        _check_langs(cfg, task, key, row.langs, fail)
        known = [cfg.mix(mx) for mx in arms if mx in names]
        for m in known:
            if task not in cfg.mix_tasks(m):
                fail(f"{key}.plus", f"mix {m.name!r} is not evaluated on {task}", stop=False)
        common = set(cfg.seeds.demo).intersection(*(cfg.mix_demo_seeds(m) for m in known)) if known else set()
        if known and not common:
            fail(key, f"its mixes share no demonstration seed ({', '.join(m.name for m in known)}): a contrast is "
                      "paired through the demonstration sets every arm ran", stop=False)
        if f.pairs is not None:
            for m in known:
                per = m.per_source
                total = None if per is None else per * len(m.sources)
                if total != f.pairs:
                    fail(f"{key}.plus", f"mix {m.name!r} has {total if total is not None else 'all available'} "
                                        f"pairs, findings.pairs asks for {f.pairs} in every mix", stop=False)


def _check_langs(cfg: StudyConfig, task: str, key: str, langs: Any, fail: Any) -> None:
    evaluated = cfg.task_langs(task)
    if langs == "unseen":
        if not unseen_languages(cfg, task):
            fail(f"{key}.langs", "every evaluated language is in some mix: no unseen language left", stop=False)
        return
    if langs == "all":
        return
    for lang in langs:
        if lang not in LANGUAGES or lang not in evaluated:
            fail(f"{key}.langs", f"{lang!r} is not an evaluated language ({', '.join(evaluated)})", stop=False)

