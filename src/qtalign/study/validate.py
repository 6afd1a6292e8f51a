"""Semantic checks of a study config: impossible combinations are one line each, naming the key; all are listed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from qtalign.data.demonstrations_file import resolve_demos_file
from qtalign.data.ranges import parse_item_range
from qtalign.data.readers import demo_file, find_lang_file
from qtalign.data.sources import scan_sources
from qtalign.errors import QtalignError, raise_problems
from qtalign.languages import LANGUAGES, PAPER_LANGS
from qtalign.models import DEFAULT_MODEL
from qtalign.protocol import PROTOCOLS
from qtalign.settings import Settings, explain
from qtalign.study.eval_grid import eval_fields
from qtalign.study.findings_check import check_findings
from qtalign.study.schema import MixSpec, StudyConfig
from qtalign.tasks import TASKS, get_task

# recipe keys the study sets itself
STUDY_OWNED = {"model": "models", "data": "mixes[].data", "out": "the study folder", "seed": "seeds.train",
               "device": "device", "stop_after": "(not for studies)"}


class _Stop(Exception):
    """Ends one check section after its problem was noted (later checks of that section depend on it)."""


def check_study(cfg: StudyConfig, source: str) -> None:
    """Every problem of a parsed study config, one line each (errors.QtalignProblems; one problem: QtalignError)."""
    problems: list[str] = []

    def fail(key: str, msg: str, stop: bool = True) -> None:
        problems.append(f"{source}: {key}: {msg}")
        if stop:
            raise _Stop

    @contextmanager
    def section() -> Iterator[None]:
        try:
            yield
        except _Stop:
            pass

    def known_task(key: str, name: str) -> Any:
        if name not in TASKS:
            fail(key, f"unknown task {name!r} (known: {', '.join(TASKS)})")
        return TASKS[name]

    def known_langs(key: str, task: Any, langs: tuple[str, ...]) -> None:
        for lang in langs:
            if lang not in LANGUAGES:
                fail(key, f"unknown language {lang!r} (known: {', '.join(PAPER_LANGS)})")
            if lang not in task.table:
                fail(key, f"task {task.name!r} has no prompt table for language {lang!r}")
        if len(set(langs)) != len(langs):
            fail(key, "a language is listed twice")

    def own_recipe_fail(key: str, m: MixSpec, fail: Any) -> Any:
        """fail for a mix's recipe, less the problems of top-level recipe keys it inherits (listed once, above)."""
        def mix_fail(k: str, msg: str, stop: bool = True) -> None:
            field = k.removeprefix(f"{key}.recipe.").split(".")[0] if k.startswith(f"{key}.recipe.") else None
            if field is not None and field in cfg.recipe and field not in m.recipe:
                if stop:
                    raise _Stop
                return
            fail(k, msg, stop)

        return mix_fail

    keys = [m.key for m in cfg.models]
    dup = next((k for k in keys if keys.count(k) > 1), None)
    with section():
        if dup:
            fail("models", f"two models are both called {dup!r}; give one a `name`")
    for i, m in enumerate(cfg.models):
        with section():
            if "/" not in m.id and not Path(m.id).exists() and m.id != DEFAULT_MODEL and not m.id.endswith(".gguf"):
                fail(f"models[{i}].id", f"{m.id!r} is neither a folder, a .gguf file, {DEFAULT_MODEL!r} nor a hub id "
                                        "(owner/name)")
            if Path(m.id).is_absolute() and not Path(m.id).exists():
                fail(f"models[{i}].id", f"{m.id}: no such model folder or file")
    for k, dup_s in (("seeds.train", cfg.seeds.train), ("seeds.demo", cfg.seeds.demo)):
        if len(set(dup_s)) != len(dup_s):
            fail(k, "a seed is listed twice", stop=False)

    # evaluation
    for name, t in cfg.eval.tasks.items():
        with section():
            task = known_task(f"eval.tasks.{name}", name)
            langs = cfg.task_langs(name)
            known_langs(f"eval.tasks.{name}.langs" if t.langs else "eval.langs", task, langs)
            with section():
                _check_eval_data(f"eval.tasks.{name}.data", task, t.data, langs, "test", fail)
            if t.items is not None:
                try:
                    parse_item_range(t.items, "items")
                except QtalignError as e:
                    fail(f"eval.tasks.{name}.items", str(e), stop=False)
            if t.demos is not None:
                with section():
                    _check_eval_data(f"eval.tasks.{name}.demos", task, t.demos, langs, "train", fail)
            for mode in cfg.eval.labels:
                try:
                    task.label_words(langs[0], mode if mode in ("en", "native") else mode.split(","))
                except ValueError as e:
                    fail("eval.labels", str(e), stop=False)
    with section():
        _check_eval_passthrough(cfg, fail)

    # mixes
    with section():
        _check_recipe("recipe", cfg.recipe, fail)
    names = [m.name for m in cfg.mixes]
    for i, m in enumerate(cfg.mixes):
        key = f"mixes[{i}] ({m.name})"
        if m.name == "base":
            fail(f"{key}.name", "'base' is reserved for the untuned model", stop=False)
        if names.count(m.name) > 1:
            fail(f"{key}.name", "two mixes have this name", stop=False)
        missing = [d for d in m.data if not Path(d).exists()]
        for d in missing:
            fail(f"{key}.data", f"{d}: no such file or folder", stop=False)
        if m.exclude is not None and not Path(m.exclude).is_dir():
            fail(f"{key}.exclude", f"{m.exclude}: no such folder", stop=False)
        with section():
            _check_recipe(f"{key}.recipe", {**cfg.recipe, **m.recipe}, own_recipe_fail(key, m, fail))
        with section():
            task = known_task(f"{key}.task", m.task)
            known_langs(f"{key}.sources", task, m.sources)
            known_langs(f"{key}.target", task, (m.target,))
            if m.target in m.sources:
                fail(f"{key}.sources", f"source language {m.target!r} equals the target language")
            if m.control is None and (m.control_of or m.parallel):
                fail(f"{key}.{'control_of' if m.control_of else 'parallel'}",
                     "only a control mix (control: ...) takes it")
            if m.control == "parallel":
                if not m.parallel:
                    fail(f"{key}.parallel", "control 'parallel' needs a parallel file (JSONL of {lang: text})")
                if m.parallel != "demo" and not Path(m.parallel).is_file():
                    fail(f"{key}.parallel", f"{m.parallel}: no such file")
            elif m.parallel:
                fail(f"{key}.parallel", f"only control 'parallel' takes a parallel file (this mix: {m.control})")
            if m.control_of is not None:
                real = [x for x in cfg.mixes if x.name == m.control_of]
                if not real:
                    fail(f"{key}.control_of", f"no mix named {m.control_of!r} (mixes: {', '.join(names)})")
                if real[0].control is not None:
                    fail(f"{key}.control_of", f"{m.control_of!r} is itself a control")
            elif m.control is not None:
                same = [x.name for x in cfg.mixes if x.control is None and (x.task, x.sources, x.target) ==
                        (m.task, m.sources, m.target)]
                if len(same) > 1:
                    fail(f"{key}.control_of", f"several real mixes fit ({', '.join(same)}); name one")
            for ds in m.demo_seeds or ():
                if ds not in cfg.seeds.demo:
                    fail(f"{key}.demo_seeds", f"seed {ds} is not in seeds.demo ({', '.join(map(str, cfg.seeds.demo))})"
                                              ": the base model is evaluated with seeds.demo only", stop=False)
            _check_mix_size_and_seeds(key, m, cfg, fail)
            for t in m.eval_tasks or ():
                if t not in cfg.eval.tasks:
                    fail(f"{key}.eval_tasks", f"{t!r} is not an evaluation task (eval.tasks: "
                                              f"{', '.join(cfg.eval.tasks)})", stop=False)
            if m.eval_tasks is not None and len(set(m.eval_tasks)) != len(m.eval_tasks):
                fail(f"{key}.eval_tasks", "a task is listed twice", stop=False)
            real_name = cfg.real_of(m)
            if real_name is not None and any(x.name == real_name for x in cfg.mixes) and \
                    not set(cfg.mix_tasks(m)) <= set(cfg.mix_tasks(cfg.mix(real_name))):
                lacking = sorted(set(cfg.mix_tasks(m)) - set(cfg.mix_tasks(cfg.mix(real_name))))
                fail(f"{key}.eval_tasks", f"its real mix {real_name!r} is not evaluated on {', '.join(lacking)}; "
                                          "a control is compared on its real mix's tasks only", stop=False)
            if not missing:
                if m.test_items is not None:
                    _check_test_items(key, task, m, cfg, fail)
                else:
                    _check_mix_sources(key, task, m, fail)

    if cfg.findings is not None:
        with section():
            check_findings(cfg, fail)

    # analyses
    for kind in ("lens", "pca"):
        a = getattr(cfg.analyses, kind)
        if a is None:
            continue
        key = f"analyses.{kind}"
        with section():
            if a.protocol is not None and a.protocol not in PROTOCOLS:
                fail(f"{key}.protocol", f"unknown protocol {a.protocol!r} (known: {', '.join(PROTOCOLS)})", stop=False)
            for mx in a.mixes or ():
                if mx not in names:
                    fail(f"{key}.mixes", f"no mix named {mx!r} (mixes: {', '.join(names) or 'none'})", stop=False)
            task_name = a.task or next(iter(cfg.eval.tasks))
            if task_name not in cfg.eval.tasks:
                fail(f"{key}.task",
                     f"{task_name!r} is not an evaluation task (eval.tasks: {', '.join(cfg.eval.tasks)})")
            task = TASKS[task_name]
            if a.langs:
                known_langs(f"{key}.langs", task, a.langs)
                _check_eval_data(f"{key}.langs", task, cfg.eval.tasks[task_name].data, a.langs, "test", fail)
    raise_problems(list(dict.fromkeys(problems)))


def _check_mix_size_and_seeds(key: str, m: MixSpec, cfg: StudyConfig, fail: Any) -> None:
    """`pairs` instead of per_lang, split equally; train_seeds within seeds.train; a control's runs all have a
    real-mix run to be compared with (the same training seed and demonstration seed)."""
    if m.pairs is not None:
        if "per_lang" in m.model_fields_set:
            fail(f"{key}.pairs", "give pairs (in all) or per_lang (per source language), not both", stop=False)
        elif m.pairs % len(m.sources):
            fail(f"{key}.pairs", f"{m.pairs} pairs do not split equally over {len(m.sources)} source languages",
                 stop=False)
    if m.train_seeds is not None:
        if len(set(m.train_seeds)) != len(m.train_seeds) or not m.train_seeds:
            fail(f"{key}.train_seeds", "list each seed once, at least one", stop=False)
        for ts in m.train_seeds:
            if ts not in cfg.seeds.train:
                fail(f"{key}.train_seeds", f"seed {ts} is not in seeds.train "
                                           f"({', '.join(map(str, cfg.seeds.train))})", stop=False)
    real = cfg.real_of(m)
    if real is None or not any(x.name == real for x in cfg.mixes):
        return
    for what, mine, theirs in (("train_seeds", cfg.mix_train_seeds(m), cfg.mix_train_seeds(cfg.mix(real))),
                               ("demo_seeds", cfg.mix_demo_seeds(m), cfg.mix_demo_seeds(cfg.mix(real)))):
        lacking = [str(x) for x in mine if x not in theirs]
        if lacking:
            fail(f"{key}.{what}", f"its real mix {real!r} has no run with seed {', '.join(lacking)}; a control is "
                                  "compared with its real mix seed by seed", stop=False)


def _check_eval_data(key: str, task: Any, data: str, langs: tuple[str, ...], split: str, fail: Any) -> None:
    if data.startswith("hf:"):
        return
    if data == "demo":
        try:
            path = demo_file(task)
        except QtalignError as e:
            fail(key, str(e))
    else:
        path = Path(data)
    if not path.exists():
        fail(key, f"{data}: no such file or folder")
    if path.is_dir():
        for lang in langs:
            try:
                found = find_lang_file(task, path, lang, split)
            except QtalignError as e:
                fail(key, str(e))
            if found is None:
                fail(key, f"{data}: no {split} file for language {lang!r} "
                          f"(expected {task.file_stem}_{lang}<N>_{split}.json or {lang}.jsonl)")


def _check_mix_sources(key: str, task: Any, m: MixSpec, fail: Any) -> None:
    """Each source language needs a question file, or parallel training files of it and the target."""
    try:
        found = scan_sources(task, list(m.data))
    except QtalignError as e:
        fail(f"{key}.data", str(e))
    have = sorted(set(found.question_files) | set(found.train_files))
    for src in m.sources:
        if src in found.question_files:
            continue
        if src in found.train_files and (m.target in found.train_files or m.control == "copy"):
            continue
        what = f"no {task.file_stem} question file or parallel training file for {src}"
        if src in found.train_files:
            what = f"a training file for {src} but none for the target {m.target!r}"
        fail(f"{key}.sources", f"source language {src!r} has no data ({what} in {', '.join(m.data)}; "
                               f"found languages: {', '.join(have) or 'none'})")


def _check_test_items(key: str, task: Any, m: MixSpec, cfg: StudyConfig, fail: Any) -> None:
    """Pairs from a range of test items: test files of every source and the target, the range valid, and disjoint
    from the items every evaluation of the same data reads."""
    try:
        rng = parse_item_range(m.test_items or "", "test_items")
    except QtalignError as e:
        fail(f"{key}.test_items", str(e))
    if m.exclude is None and not m.allow_contamination:
        fail(f"{key}.exclude", "pairs from test items (test_items) need `exclude`: the evaluation folder whose other "
                               "items are checked against them")
    for lang in (*m.sources, m.target):
        if not any(Path(d).is_dir() and find_lang_file(task, Path(d), lang, "test") for d in m.data):
            fail(f"{key}.data", f"no {task.file_stem} test file for {lang!r} in {', '.join(m.data)} (test_items "
                                "reads the test files)")
    for name, t in cfg.eval.tasks.items():
        same = m.exclude is not None and Path(t.data) == Path(m.exclude)
        if not same:
            continue
        if t.items is None:
            fail(f"eval.tasks.{name}.items", f"mix {m.name} trains on items {rng} of {t.data}: give the evaluation "
                                             f"a disjoint range (e.g. items: 0:{rng.start})")
        try:
            ev = parse_item_range(t.items, f"eval.tasks.{name}.items")
        except QtalignError:
            continue  # listed with the evaluation's problems
        if ev.start < rng.end and rng.start < ev.end:
            fail(f"eval.tasks.{name}.items", f"{ev} overlaps mix {m.name}'s test_items {rng}")


def _check_recipe(key: str, recipe: dict[str, Any], fail: Any) -> None:
    from qtalign.train import TrainSettings  # here: it imports torch

    for k in recipe:
        if k in STUDY_OWNED:
            fail(f"{key}.{k}", f"set by the study ({STUDY_OWNED[k]}), not in a recipe")
    _validate_as(TrainSettings, {**recipe, "data": "x", "out": "x"}, key, fail)


def _validate_as(cls: type[Settings], data: dict[str, Any], key: str, fail: Any) -> None:
    """Validate data as cls; each problem becomes one line naming key.field."""
    try:
        cls.model_validate(data)
    except ValidationError as e:
        for err in e.errors():
            where = ".".join(str(x) for x in err["loc"])
            fail(f"{key}.{where}" if where else key, explain(err, cls), stop=False)


def _check_eval_passthrough(cfg: StudyConfig, fail: Any) -> None:
    from qtalign.eval import EvalSettings  # here: it imports torch

    if cfg.eval.protocol is not None and cfg.eval.protocol not in PROTOCOLS:
        fail("eval.protocol", f"unknown protocol {cfg.eval.protocol!r} (known: {', '.join(PROTOCOLS)})")
    fields: dict[str, Any] = {}
    for k in cfg.eval.extra:
        if k in ("task", "data", "model", "adapter", "langs", "seed", "limit", "labels", "shots", "demos"):
            fail(f"eval.extra.{k}", "set by the study config, not in eval.extra")
    for name in cfg.eval.tasks:
        for m in cfg.models:
            fields = eval_fields(cfg, name, m, None, cfg.eval.labels[0], cfg.seeds.demo[0])
            _validate_as(EvalSettings, fields, "eval", fail)
        if fields.get("demos_file"):  # e.g. the paper's fixed demonstrations, found beside the data
            key = "eval.protocol" if "demos_file" not in cfg.eval.extra else "eval.extra.demos_file"
            try:
                path = resolve_demos_file(get_task(name), fields["demos_file"], fields["data"])
            except QtalignError as e:
                fail(key, f"task {name}: {e}")
            if path is None or not Path(path).is_file():
                fail(key, f"task {name}: no demonstrations file {path}")
