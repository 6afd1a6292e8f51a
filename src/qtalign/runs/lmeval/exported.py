"""A folder of lm-eval tasks written by `qtalign export lm-eval`: its file names (YAMLs, item files, record)."""

from __future__ import annotations

from pathlib import Path

DATA = "data"  # the item files, one per language: data/qtalign_<task>_<lang>.jsonl


def group_name(task: str) -> str:
    """The lm-eval group of a qtalign task: qtalign_<task>."""
    return f"qtalign_{task}"


def task_name(task: str, lang: str) -> str:
    """The lm-eval task of one language: qtalign_<task>_<lang>."""
    return f"qtalign_{task}_{lang}"


def task_yaml(task: str, lang: str) -> str:
    return f"{task_name(task, lang)}.yaml"


def group_yaml(task: str) -> str:
    return f"{group_name(task)}.yaml"


def data_file(task: str, lang: str) -> str:
    """The item file of one language, relative to the export folder."""
    return f"{DATA}/{task_name(task, lang)}.jsonl"


def record(task: str) -> str:
    """The export's record (settings, data hashes, files), one per task so several tasks can share a folder."""
    return f"{group_name(task)}.export.json"


def outputs(task: str, langs: list[str]) -> list[str]:
    """Every file an export of task over langs writes (relative to the folder), the record excepted."""
    return [group_yaml(task)] + [x for lang in langs for x in (task_yaml(task, lang), data_file(task, lang))]


def exported_paths(folder: Path, task: str, langs: list[str]) -> dict[str, Path]:
    """{relative name: path} of an export's files."""
    return {name: folder / name for name in outputs(task, langs)}
