"""Study config: models, training mixes (and controls), evaluation grid, seeds, analyses; validated with one-line errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from qtalign.config import Settings, load_config_file
from qtalign.errors import QtalignError, raise_problems
from qtalign.languages import LANGUAGES, PAPER_LANGS
from qtalign.models import DEFAULT_MODEL

CONTROLS: tuple[str, ...] = ("shuffled", "copy", "english", "parallel")
CALIBRATIONS: tuple[str, ...] = ("batch", "content-free")
PKG_PREFIX = "pkg:"  # a path inside the installed qtalign package, e.g. pkg:demo/sentiment
PRESET_PREFIX = "preset:"
NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9._+-]*$"
# recipe keys the study sets itself
STUDY_OWNED = {"model": "models", "data": "mixes[].data", "out": "the study folder", "seed": "seeds.train",
               "device": "device", "stop_after": "(not for studies)"}


class ModelSpec(Settings):
    """A model to evaluate and tune: hub id, local folder, .gguf file or the packaged gemma-3-270m."""

    id: str = DEFAULT_MODEL
    name: str | None = Field(None, pattern=NAME_RE)  # short name in step ids and the report (default: from id)
    dtype: str | None = None
    load_in_4bit: bool = False  # evaluation only (bitsandbytes NF4), as the paper evaluated
    trust_remote_code: bool = False

    @property
    def key(self) -> str:
        if self.name:
            return self.name
        tail = self.id.rstrip("/").rsplit("/", 1)[-1].removesuffix(".gguf")
        return re.sub(r"[^A-Za-z0-9._+-]", "_", tail) or "model"


class MixSpec(Settings):
    """Question-translation training data (sources => target, questions of `task`) and the adapter tuned on it."""

    name: str = Field(pattern=NAME_RE)
    task: str  # the task whose questions are translated (may differ from the evaluation tasks)
    sources: tuple[str, ...] = Field(min_length=1)
    target: str = "en"
    data: tuple[str, ...] = Field(min_length=1)  # folders/files as for `qtalign data build --data`
    per_lang: int | None = Field(10000, ge=1)  # pairs per source language (None: all)
    seed: int = 42  # sampling and shuffling seed of the pairs
    exclude: str | None = None  # evaluation folder: refuse pairs equal to its test items
    allow_contamination: bool = False
    control: Literal["shuffled", "copy", "english", "parallel"] | None = None
    control_of: str | None = None  # the real mix this control is compared with (default: same task/sources/target)
    parallel: str | None = None  # JSONL of {lang: text}, for control: parallel
    test_items: str | None = Field(None, pattern=r"^\d+:\d+$")  # pairs from these items of parallel test files
    demo_seeds: tuple[int, ...] | None = None  # evaluate this mix's adapters with these of seeds.demo (default all)
    recipe: dict[str, Any] = Field(default_factory=dict)  # TrainSettings overrides on top of the study's recipe
    eval_tasks: tuple[str, ...] | None = Field(None, min_length=1)  # evaluation tasks of its adapters (None: all)

    @field_validator("data", "sources", "eval_tasks", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("demo_seeds", mode="before")
    @classmethod
    def _one_seed(cls, v: Any) -> Any:
        return [v] if isinstance(v, int) else v


class EvalTask(Settings):
    """Where one evaluation task's test items come from, and per-task overrides."""

    data: str
    demos: str | None = None  # demonstrations from this data instead of the test items
    shots: int | None = Field(None, ge=0)
    limit: int | None = Field(None, ge=1)
    items: str | None = Field(None, pattern=r"^\d+:\d+$")  # read only these item indices (START:END) of each file
    langs: tuple[str, ...] | None = None


class EvalSpec(Settings):
    """The evaluation grid: every model (base and tuned) on every task, label mode and demonstration seed."""

    tasks: dict[str, EvalTask] = Field(min_length=1)
    langs: tuple[str, ...] = PAPER_LANGS
    limit: int | None = Field(None, ge=1)
    shots: int | None = Field(None, ge=0)
    labels: tuple[str, ...] = ("en",)  # each: en, native, or a comma list of words such as "ox,horse"
    scoring: Literal["first-token", "loglik"] = "first-token"
    calibration: tuple[Literal["batch", "content-free"], ...] = ("batch", "content-free")  # compare/report show them
    protocol: str | None = None  # e.g. "paper" (exact gold-string matching), where evaluation offers it
    batch_size: int = Field(8, ge=1)
    n_boot: int = Field(1000, ge=10)
    extra: dict[str, Any] = Field(default_factory=dict)  # further EvalSettings fields, passed through

    @field_validator("tasks", mode="before")
    @classmethod
    def _task_shorthand(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: {"data": x} if isinstance(x, str) else x for k, x in v.items()}
        return v

    @field_validator("labels", "langs", "calibration", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class SeedSpec(Settings):
    train: tuple[int, ...] = Field((42,), min_length=1)  # LoRA init, split and batch order
    demo: tuple[int, ...] = Field((0,), min_length=1)  # choice of demonstrations

    @field_validator("train", "demo", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, int) else v


class AnalysisSpec(Settings):
    task: str | None = None  # an evaluation task (its data and prompts); default: the first
    langs: tuple[str, ...] | None = None  # default: the evaluation languages
    limit: int | None = Field(30, ge=1)
    mixes: tuple[str, ...] | None = None  # which adapters to analyse (default: all mixes)
    train_seeds: Literal["first", "all"] = "first"
    batch_size: int = Field(8, ge=1)
    protocol: str | None = None  # e.g. paper: the paper scripts' lens/PCA settings (docs/paper-protocol.md)


class LensSpec(AnalysisSpec):
    bootstrap: int = Field(1000, ge=10)


class PCASpec(AnalysisSpec):
    layers: str | None = None  # comma list; default: all
    pool: Literal["mean", "item", "last"] = "mean"


class Analyses(Settings):
    lens: LensSpec | None = None
    pca: PCASpec | None = None

    @field_validator("lens", "pca", mode="before")
    @classmethod
    def _on_off(cls, v: Any) -> Any:
        if v is True:
            return {}
        return None if v is False else v


class CompareSpec(Settings):
    n_boot: int = Field(2000, ge=100)
    seed: int = 0


class StudyConfig(Settings):
    """A whole study; `qtalign run` plans it as steps (build -> train -> eval -> compare -> analyses -> report)."""

    name: str = Field(pattern=NAME_RE)
    description: str = ""
    data_root: str | None = None  # relative data paths are resolved against it (default: the config's folder)
    device: str = "auto"
    models: tuple[ModelSpec, ...] = Field(min_length=1)
    recipe: dict[str, Any] = Field(default_factory=dict)  # TrainSettings overrides for every mix
    mixes: tuple[MixSpec, ...] = ()
    eval: EvalSpec
    seeds: SeedSpec = SeedSpec()
    analyses: Analyses = Analyses()
    compare: CompareSpec | None = CompareSpec()
    report: bool = True

    @field_validator("models", mode="before")
    @classmethod
    def _model_shorthand(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [v]
        return [{"id": x} if isinstance(x, str) else x for x in v] if isinstance(v, list | tuple) else v

    @field_validator("compare", mode="before")
    @classmethod
    def _compare_on_off(cls, v: Any) -> Any:
        if v is True:
            return {}
        return None if v is False else v

    # ---- derived views ----
    def mix(self, name: str) -> MixSpec:
        return next(m for m in self.mixes if m.name == name)

    def real_of(self, mix: MixSpec) -> str | None:
        """The real mix a control is compared with (None for a real mix, or a control without one)."""
        if mix.control is None:
            return None
        if mix.control_of:
            return mix.control_of
        same = [m.name for m in self.mixes if m.control is None and (m.task, m.sources, m.target) ==
                (mix.task, mix.sources, mix.target)]
        return same[0] if len(same) == 1 else None

    def mix_tasks(self, mix: MixSpec) -> tuple[str, ...]:
        """The evaluation tasks a mix's adapters are evaluated on, in eval.tasks order (all of them by default)."""
        return tuple(t for t in self.eval.tasks if mix.eval_tasks is None or t in mix.eval_tasks)

    def task_langs(self, task: str) -> tuple[str, ...]:
        return self.eval.tasks[task].langs or self.eval.langs


# ---- loading ----------------------------------------------------------------------------------------------------
def preset_dir() -> Path:
    return Path(str(files("qtalign.study").joinpath("presets")))


def presets() -> list[str]:
    return sorted(p.stem for p in preset_dir().glob("*.yaml"))


def config_path(spec: str) -> tuple[Path, bool]:
    """(file, is_preset) for `preset:NAME` or a path."""
    if spec.startswith(PRESET_PREFIX):
        name = spec[len(PRESET_PREFIX):]
        path = preset_dir() / f"{name}.yaml"
        if not path.is_file():
            raise QtalignError(f"{spec}: no such preset (known: {', '.join(presets())})")
        return path, True
    return Path(spec), False


def load_study(spec: str, data_root: str | None = None, overrides: dict[str, Any] | None = None) -> StudyConfig:
    """Read, validate and check a study config (file path or preset:NAME); relative paths become absolute.

    Relative data paths resolve against data_root (the argument, else the config's `data_root`, itself relative to
    the config's folder), else the config's folder; for presets, against the current directory. overrides are
    top-level keys replacing the file's (for `qtalign demo`).
    """
    path, is_preset = config_path(spec)
    raw = load_config_file(path)
    raw.update(overrides or {})
    cfg = StudyConfig.parse(raw, str(path))
    home = Path.cwd() if is_preset else path.resolve().parent
    if data_root is not None:
        base = Path(data_root).resolve()
    elif cfg.data_root is not None:
        base = (home / cfg.data_root).resolve()
    else:
        base = home
    cfg = resolve_paths(cfg, base)
    check_study(cfg, str(path))
    return cfg


def resolve_path(value: str, base: Path) -> str:
    """pkg:REL -> inside the installed package; `demo` and hf:NAME unchanged; relative paths against base."""
    if value.startswith(PKG_PREFIX):
        return str(Path(str(files("qtalign"))) / value[len(PKG_PREFIX):])
    if value == "demo" or value.startswith("hf:"):
        return value
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def resolve_paths(cfg: StudyConfig, base: Path) -> StudyConfig:
    def opt(v: str | None) -> str | None:
        return None if v is None else resolve_path(v, base)

    def model_id(v: str) -> str:
        # a hub id stays as it is unless a folder/file of that name exists (or it is explicitly relative/pkg:)
        if v.startswith((PKG_PREFIX, "./", "../", "~")) or (base / v).exists() or Path(v).is_absolute():
            return resolve_path(v, base)
        return v

    models = tuple(m.model_copy(update={"id": model_id(m.id)}) for m in cfg.models)
    mixes = tuple(m.model_copy(update={"data": tuple(resolve_path(d, base) for d in m.data),
                                       "exclude": opt(m.exclude), "parallel": opt(m.parallel)}) for m in cfg.mixes)
    tasks = {k: t.model_copy(update={"data": resolve_path(t.data, base), "demos": opt(t.demos)})
             for k, t in cfg.eval.tasks.items()}
    ev = cfg.eval.model_copy(update={"tasks": tasks})
    return cfg.model_copy(update={"models": models, "mixes": mixes, "eval": ev, "data_root": str(base)})


# ---- semantic checks: impossible combinations are one line each, naming the key; all of them are listed ---------
class _Stop(Exception):
    """Ends one check section after its problem was noted (later checks of that section depend on it)."""


def check_study(cfg: StudyConfig, source: str) -> None:
    """Every problem of a parsed study config, one line each (errors.QtalignProblems; one problem: QtalignError)."""
    from qtalign.tasks import TASKS

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
                from qtalign.data.ranges import parse_item_range

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

    # analyses
    for kind in ("lens", "pca"):
        a = getattr(cfg.analyses, kind)
        if a is None:
            continue
        key = f"analyses.{kind}"
        with section():
            if a.protocol is not None:
                from qtalign.protocol import PROTOCOLS

                if a.protocol not in PROTOCOLS:
                    fail(f"{key}.protocol", f"unknown protocol {a.protocol!r} (known: {', '.join(PROTOCOLS)})",
                         stop=False)
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


def _check_eval_data(key: str, task: Any, data: str, langs: tuple[str, ...], split: str, fail: Any) -> None:
    from qtalign.data.readers import demo_file, find_lang_file

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
    from qtalign.data.build import scan_sources

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
    from qtalign.data.ranges import parse_item_range
    from qtalign.data.readers import find_lang_file

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
    from qtalign.train import TrainSettings

    for k in recipe:
        if k in STUDY_OWNED:
            fail(f"{key}.{k}", f"set by the study ({STUDY_OWNED[k]}), not in a recipe")
    _validate_as(TrainSettings, {**recipe, "data": "x", "out": "x"}, key, fail)


def _validate_as(cls: type[Settings], data: dict[str, Any], key: str, fail: Any) -> None:
    """Validate data as cls; each problem becomes one line naming key.field."""
    from pydantic import ValidationError

    from qtalign.config import explain

    try:
        cls.model_validate(data)
    except ValidationError as e:
        for err in e.errors():
            where = ".".join(str(x) for x in err["loc"])
            fail(f"{key}.{where}" if where else key, explain(err, cls), stop=False)


def _check_eval_passthrough(cfg: StudyConfig, fail: Any) -> None:
    from qtalign.eval import EvalSettings

    fields = EvalSettings.model_fields
    if cfg.eval.protocol is not None and "protocol" not in fields:
        fail("eval.protocol", "this qtalign's evaluation has no protocol setting")
    if cfg.eval.protocol is not None:
        from qtalign.protocol import PROTOCOLS

        if cfg.eval.protocol not in PROTOCOLS:
            fail("eval.protocol", f"unknown protocol {cfg.eval.protocol!r} (known: {', '.join(PROTOCOLS)})")
    for k in cfg.eval.extra:
        if k in ("task", "data", "model", "adapter", "langs", "seed", "limit", "labels", "shots", "demos"):
            fail(f"eval.extra.{k}", "set by the study config, not in eval.extra")
    for name in cfg.eval.tasks:
        for m in cfg.models:
            fields = eval_fields(cfg, name, m, None, cfg.eval.labels[0], cfg.seeds.demo[0])
            _validate_as(EvalSettings, fields, "eval", fail)
        if fields.get("demos_file"):  # e.g. the paper's fixed demonstrations, found beside the data
            from qtalign.data.demos_file import resolve_demos_file
            from qtalign.tasks import get_task

            key = "eval.protocol" if "demos_file" not in cfg.eval.extra else "eval.extra.demos_file"
            try:
                path = resolve_demos_file(get_task(name), fields["demos_file"], fields["data"])
            except QtalignError as e:
                fail(key, f"task {name}: {e}")
            if path is None or not Path(path).is_file():
                fail(key, f"task {name}: no demonstrations file {path}")


def eval_fields(cfg: StudyConfig, task: str, model: ModelSpec, adapter: str | None, labels: str,
                demo_seed: int) -> dict[str, Any]:
    """The EvalSettings fields of one evaluation of the grid."""
    from qtalign.eval import EvalSettings

    t = cfg.eval.tasks[task]
    fields: dict[str, Any] = {
        "task": task, "data": t.data, "model": model.id, "adapter": adapter, "langs": list(cfg.task_langs(task)),
        "shots": t.shots if t.shots is not None else cfg.eval.shots, "labels": labels, "scoring": cfg.eval.scoring,
        "seed": demo_seed, "demos": t.demos, "limit": t.limit or cfg.eval.limit, "batch_size": cfg.eval.batch_size,
        **({"items": t.items} if t.items is not None else {}),
        "device": cfg.device, "dtype": model.dtype, "load_in_4bit": model.load_in_4bit,
        "trust_remote_code": model.trust_remote_code, "n_boot": cfg.eval.n_boot, **cfg.eval.extra,
    }
    have = EvalSettings.model_fields
    if cfg.eval.protocol is not None:
        fields["protocol"] = cfg.eval.protocol
        fields.update(protocol_preset(cfg, fields))
    for name in ("calibrate", "calibration"):  # where evaluation computes the modes itself
        if name in have:
            fields[name] = list(cfg.eval.calibration)
    return fields


def protocol_preset(cfg: StudyConfig, fields: dict[str, Any]) -> dict[str, Any]:
    """The options an evaluation protocol presets (e.g. the paper's fixed demonstrations), except those the config
    sets itself (eval.scoring, or a key of eval.extra), as `qtalign eval --protocol` resolves them."""
    from qtalign.eval import EvalSettings
    from qtalign.protocol import DEFAULTS, resolve_options

    explicit = set(cfg.eval.extra) | ({"scoring"} & cfg.eval.model_fields_set)
    given = {k: (fields.get(k) if k in explicit else None) for k in DEFAULTS
             if k in EvalSettings.model_fields and k not in ("langs", "labels")}
    return resolve_options("eval", cfg.eval.protocol, given)
