"""The data-build stage's entry: BuildSettings in, question-translation pairs and their records written, a BuildResult out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qtalign.data.build import BuildReport, Translate
from qtalign.data.ranges import ItemRange
from qtalign.errors import QtalignError
from qtalign.settings import Progress, Settings, bars
from qtalign.tasks import Task

# builds the machine translator of --translate-with (qtalign.translate.Translator: it loads a model, so it sits above
# the data layer and is handed in): (model, cache=, device=, batch_size=, max_new_tokens=, trust_remote_code=,
# progress=)
MakeTranslator = Callable[..., Translate]


class BuildSettings(Settings):
    """What `qtalign data build` builds: the task's items as questions in each source language => the target."""

    task: str
    data: list[str]
    sources: list[str]
    out: str
    target: str = "en"
    per_lang: int | None = 10000  # pairs per source language (None: all)
    seed: int = 42
    exclude: str | None = None
    allow_contamination: bool = False
    translate_with: str | None = None
    control: str | None = None
    parallel: str | None = None
    test_items: str | None = None  # START:END
    mt_batch_size: int = 16
    mt_max_new_tokens: int = 256
    template: str | None = None
    device: str = "auto"
    trust_remote_code: bool = False
    overwrite: bool = False  # replace an earlier build of out made with other settings

    def record(self, task: str, test_items: ItemRange | None) -> dict[str, Any]:
        """The settings a build's manifest records (and a rerun is checked against)."""
        settings: dict[str, Any] = {
            "task": task, "data": list(self.data), "sources": list(self.sources), "target": self.target,
            "per_lang": self.per_lang, "seed": self.seed, "exclude": self.exclude,
            "allow_contamination": self.allow_contamination, "translate_with": self.translate_with,
            "control": self.control, "parallel": self.parallel, "template": self.template}
        if test_items is not None:  # only when given, so that earlier builds resume unchanged
            settings["test_items"] = str(test_items)
        return settings


@dataclass
class BuildResult:
    """A finished build: its report (pairs, counts, contamination, control) and the pairs file written."""

    settings: BuildSettings
    report: BuildReport
    out: Path
    test_items: ItemRange | None = None

    def lines(self) -> list[str]:
        """What `qtalign data build` prints: the counts, a control's length check, the contamination check."""
        s, report = self.settings, self.report
        parts = ", ".join(f"{k}: {v}" for k, v in report.counts.items())
        kind = f"{s.control} control " if s.control else ""
        lines = [f"wrote {len(report.pairs)} {kind}pairs ({parts}) -> {self.out}"]
        if report.control is not None:
            diff = report.length_profile["difference"]["all"]
            lines.append("length vs the real mix (mean, target-equivalent characters): "
                         f"question {diff['input_eq']['mean']:+.1%}, output {diff['output_eq']['mean']:+.1%}")
        if s.exclude is not None:
            total = sum(report.contaminated.values())
            action = "kept (--allow-contamination)" if s.allow_contamination else "refused"
            what = ("sharing a text with an item outside " + str(self.test_items) if self.test_items is not None
                    else "equal to evaluation items")
            lines.append(f"contamination check against {s.exclude}: {total} pair(s) {what} {action}")
        return lines


def check_settings(s: BuildSettings) -> tuple[Task, ItemRange | None]:
    """The task and item range of s, every setting checked before any data is read (one error line each)."""
    from qtalign.data.controls import check_control
    from qtalign.tasks import get_task

    try:
        task = get_task(s.task)
    except ValueError as e:
        raise QtalignError(str(e)) from None
    if s.template is not None:
        from qtalign.templates import TEMPLATES, get_template

        if s.template not in TEMPLATES:
            raise QtalignError(f"--template: {s.template!r} is not a template name here (choose from "
                               f"{', '.join(TEMPLATES)}; `auto` picks by model only at training time)")
        get_template(s.template)
    if not s.sources:
        raise QtalignError("--sources needs at least one language code")
    if s.per_lang is not None and s.per_lang < 1:
        raise QtalignError(f"--per-lang {s.per_lang}: must be at least 1")
    check_control(s.control, s.parallel, s.target)
    test_items = None
    if s.test_items is not None:
        from qtalign.data.ranges import parse_item_range

        test_items = parse_item_range(s.test_items, "--test-items")
        if s.translate_with:
            raise QtalignError("--test-items and --translate-with: the test files are parallel already; use one")
    return task, test_items


def run(s: BuildSettings, *, progress: Progress = True, translator: MakeTranslator | None = None) -> BuildResult:
    """Build the pairs of s into s.out (a .jsonl file) with its Alpaca copy, dataset_info.json and manifest; progress:
    the machine translation's bar (--translate-with).

    The resume rule (data.build_output.claim_build) is checked first: the same settings rebuild, others are refused
    unless s.overwrite. translator: makes the --translate-with model (a service from above the data layer, needed
    only then). A failed build leaves no empty folder behind."""
    from qtalign.data.build_output import claim_build
    from qtalign.store import missing_folders, remove_empty_folders

    task, test_items = check_settings(s)
    settings = s.record(task.name, test_items)
    new_folders = missing_folders(Path(s.out).parent)
    out = claim_build(s.out, settings, s.overwrite)
    try:
        return _build(s, task, settings, out, test_items, translator, bars(progress))
    except BaseException:
        remove_empty_folders(new_folders)  # a failed build leaves no empty output folder behind
        raise


def _build(s: BuildSettings, task: Task, settings: dict[str, Any], out: Path, test_items: ItemRange | None,
           translator: MakeTranslator | None, progress: bool) -> BuildResult:
    from qtalign.data.build import build_pairs
    from qtalign.data.build_output import write_outputs

    translate = None
    if s.translate_with:
        if translator is None:
            raise QtalignError("--translate-with: no machine translator given to the build")
        translate = translator(s.translate_with, cache=out.with_name(out.stem + ".mt_cache.jsonl"), device=s.device,
                               batch_size=s.mt_batch_size, max_new_tokens=s.mt_max_new_tokens,
                               trust_remote_code=s.trust_remote_code, progress=progress)
    report = build_pairs(task, s.data, s.sources, s.target, s.per_lang, s.seed, s.exclude, s.allow_contamination,
                         translate, s.translate_with, s.control, s.parallel, test_items=test_items)
    write_outputs(report, out, settings)
    return BuildResult(s, report, out, test_items)
