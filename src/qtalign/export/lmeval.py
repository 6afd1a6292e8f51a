"""`qtalign export lm-eval`: a qtalign task as lm-eval task YAMLs over local item files, one task per language and
a group, each item's prompt exactly the one `qtalign eval` scores (demonstrations and label words included)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qtalign import __version__
from qtalign.eval.prepare import prepare, prompt_sha
from qtalign.eval.settings import EvalSettings
from qtalign.runs.lmeval import TESTED_VERSIONS
from qtalign.runs.lmeval import exported as names
from qtalign.settings import Settings
from qtalign.store import atomic_write_text, open_run

# the eval settings that decide the prompts, the items and their gold labels (the rest: model, scoring, batching)
PROMPT_KEYS: tuple[str, ...] = ("task", "data", "langs", "shots", "labels", "seed", "demos", "limit", "items",
                                "protocol", "demos_file", "keep_demo_items", "gold_from")
TASK_VERSION = 1.0  # the version lm-eval records for each exported task


class ExportSettings(Settings):
    """What `qtalign export lm-eval` writes: the prompts of an eval (its data, demonstration and label options) as
    lm-eval tasks in out."""

    prompts: EvalSettings
    out: str
    overwrite: bool = False  # discard an earlier export of this task in out made with other settings


@dataclass
class ExportResult:
    """The lm-eval group written, its task per language, how many items each has, and the files."""

    group: str
    tasks: dict[str, str]  # lang -> lm-eval task name
    items: dict[str, int]  # lang -> items
    files: list[Path] = field(default_factory=list)


def _yaml(header: str, data: dict[str, Any]) -> str:
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120)


def task_config(task: str, lang: str, data_path: Path) -> dict[str, Any]:
    """One language's lm-eval task: a multiple-choice task whose context is the item's full prompt (it ends right
    after the answer's opening quote) and whose choices are the label words, each continuing the prompt directly."""
    return {
        "task": names.task_name(task, lang),
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data_path)}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "prompt",  # a field name: lm-eval takes the field's text as it is (no template)
        "doc_to_choice": "choices",
        "doc_to_target": "gold",
        "target_delimiter": "",  # the label word follows the opening quote with nothing between
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": TASK_VERSION},
    }


def group_config(task: str, langs: list[str]) -> dict[str, Any]:
    """The group over the languages: the unweighted mean of their accuracies, as the paper reports it."""
    return {
        "group": names.group_name(task),
        "task": [names.task_name(task, lang) for lang in langs],
        "aggregate_metric_list": [{"metric": "acc", "aggregation": "mean", "weight_by_size": False}],
        "metadata": {"version": TASK_VERSION},
    }


def run(s: ExportSettings) -> ExportResult:
    """Build the prompts exactly as `qtalign eval` / `qtalign prompts` do (same data checks), then write into s.out:
    qtalign_<task>_<lang>.yaml per language, qtalign_<task>.yaml (the group), data/qtalign_<task>_<lang>.jsonl (per
    item: index, label, gold, choices, prompt, prompt_sha) and qtalign_<task>.export.json (settings, data hashes,
    the files' names). The resume/overwrite rule of every command: other settings are refused unless overwrite."""
    p = s.prompts
    prep = prepare(p)  # reads and checks the data, builds the prompts; nothing is written before this succeeds
    task, langs = prep.task.name, list(prep.prompts)
    settings = {**p.model_dump(include=set(PROMPT_KEYS), mode="json"), "data_sha256": prep.data_hashes}
    out = Path(s.out)
    patterns = (f"{names.group_name(task)}_*.yaml", f"{names.DATA}/{names.group_name(task)}_*.jsonl")
    earlier = [str(f.relative_to(out)) for pattern in patterns for f in out.glob(pattern)] if out.is_dir() else []
    outputs = list(dict.fromkeys(names.outputs(task, langs) + sorted(earlier)))  # an earlier export's other languages
    run_folder = open_run(out, names.record(task), settings, outputs, overwrite=s.overwrite, ignore={"files"})
    folder = run_folder.path
    header = (f"# written by `qtalign export lm-eval` (qtalign {__version__}; read back by qtalign for lm-eval "
              f"{', '.join(TESTED_VERSIONS)}): each item's prompt is the one `qtalign prompts` prints with the same "
              f"options\n")
    result = ExportResult(names.group_name(task), {}, {})
    for lang, lp in prep.prompts.items():
        rows = []
        for i, it in enumerate(lp.items):
            prompt = lp.prompt(i)
            rows.append({"index": it.index, "label": it.label, "gold": prep.task.labels.index(str(it.label)),
                         "choices": list(lp.label_words), "prompt": prompt, "prompt_sha": prompt_sha(prompt)})
        data_path = folder / names.data_file(task, lang)
        data_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(data_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        yaml_path = folder / names.task_yaml(task, lang)
        atomic_write_text(yaml_path, _yaml(header, task_config(task, lang, data_path.resolve())))
        result.tasks[lang] = names.task_name(task, lang)
        result.items[lang] = len(rows)
        result.files += [yaml_path, data_path]
    group_path = folder / names.group_yaml(task)
    atomic_write_text(group_path, _yaml(header, group_config(task, langs)))
    result.files.insert(0, group_path)
    run_folder.commit({**settings, "files": [str(f.relative_to(folder)) for f in result.files]})
    return result
