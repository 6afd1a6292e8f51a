"""Study config schema: models, training mixes (and controls), evaluation grid, seeds, analyses, as typed settings."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from qtalign.languages import PAPER_LANGS
from qtalign.models import DEFAULT_MODEL
from qtalign.settings import Settings

NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9._+-]*$"


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
    pairs: int | None = Field(None, ge=1)  # instead of per_lang: this many pairs in all, split equally over sources
    seed: int = 42  # sampling and shuffling seed of the pairs
    exclude: str | None = None  # evaluation folder: refuse pairs equal to its test items
    allow_contamination: bool = False
    control: Literal["shuffled", "copy", "english", "parallel"] | None = None
    control_of: str | None = None  # the real mix this control is compared with (default: same task/sources/target)
    parallel: str | None = None  # JSONL of {lang: text}, for control: parallel
    test_items: str | None = Field(None, pattern=r"^\d+:\d+$")  # pairs from these items of parallel test files
    demo_seeds: tuple[int, ...] | None = None  # evaluate this mix's adapters with these of seeds.demo (default all)
    train_seeds: tuple[int, ...] | None = None  # train this mix with these of seeds.train (default all)
    recipe: dict[str, Any] = Field(default_factory=dict)  # TrainSettings overrides on top of the study's recipe
    eval_tasks: tuple[str, ...] | None = Field(None, min_length=1)  # evaluation tasks of its adapters (None: all)

    @field_validator("data", "sources", "eval_tasks", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("demo_seeds", "train_seeds", mode="before")
    @classmethod
    def _one_seed(cls, v: Any) -> Any:
        return [v] if isinstance(v, int) else v

    @property
    def per_source(self) -> int | None:
        """Pairs per source language: pairs / number of sources when `pairs` is given, else per_lang."""
        return self.per_lang if self.pairs is None else self.pairs // len(self.sources)


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


class FindingSpec(Settings):
    """One claim tested by a contrast of arms: the mean change from base of the `plus` mixes minus that of the
    `minus` mixes (each group averaged), paired through the demonstration sets every arm ran."""

    id: str = Field(pattern=NAME_RE)
    claim: str  # the paper's claim, in words
    plus: tuple[str, ...] = ()  # mixes whose change from base counts positively (averaged)
    minus: tuple[str, ...] = ()  # mixes whose change from base is subtracted (averaged)
    langs: Literal["all", "unseen"] | tuple[str, ...] = "all"  # unseen: the evaluated languages no mix saw
    direction: Literal["up", "down", "similar"] = "up"  # the paper's direction; similar: within +-margin
    margin: float = Field(0.0, ge=0, lt=1)  # accuracy fraction; the equivalence margin of `similar`
    paper: str = ""  # the paper's own number, quoted
    untestable: str | None = None  # why this study cannot test it (no arms then)

    @field_validator("plus", "minus", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class FindingsSpec(Settings):
    """The paper's findings as contrasts of this study's arms (the report's findings table)."""

    model: str | None = None  # a model key (default: the first model)
    task: str | None = None  # an evaluation task (default: the first)
    labels: str | None = None  # a label mode (default: the first)
    modes: tuple[str, ...] = ("raw", "batch")  # scoring modes of the table: raw and calibration modes
    pairs: int | None = Field(None, ge=1)  # every mix a finding names has this many pairs in all (checked)
    train_sd: dict[str, float] = Field(default_factory=dict)  # per mode: SD of one training seed's effect (fraction),
    train_sd_from: str = ""  # added for arms with one seed; and where it was measured
    # bootstrap resamples of the findings' intervals (default report.findings.FINDINGS_BOOT, 20,000; at least the
    # report's --bootstrap): a percentile bound over 3 demonstration sets sits in a thin tail
    bootstrap: int | None = Field(None, ge=100)
    rows: tuple[FindingSpec, ...] = Field(min_length=1)

    @field_validator("modes", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class ProcessSpec(Settings):
    """Processes per step of each model kind (several: the step runs under torchrun, one GPU per process); how a
    step runs, not what it computes (not part of its hash)."""

    train: int = Field(1, ge=1)
    eval: int = Field(1, ge=1)
    lens: int = Field(1, ge=1)
    pca: int = Field(1, ge=1)


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
    findings: FindingsSpec | None = None  # the paper's findings tested by contrasts of the mixes (report)
    processes: ProcessSpec = ProcessSpec()

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

    def mix_train_seeds(self, mix: MixSpec) -> tuple[int, ...]:
        """The training seeds of a mix's adapters (all of seeds.train by default)."""
        return mix.train_seeds if mix.train_seeds is not None else self.seeds.train

    def mix_demo_seeds(self, mix: MixSpec) -> tuple[int, ...]:
        """The demonstration seeds a mix's adapters are evaluated with (all of seeds.demo by default)."""
        return tuple(d for d in self.seeds.demo if mix.demo_seeds is None or d in mix.demo_seeds)
