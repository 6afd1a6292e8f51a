"""Run records: the resume/overwrite rule of every command that writes a folder, and changed settings in words."""

from __future__ import annotations

import json
import shutil
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qtalign.errors import QtalignError
from qtalign.store.claims import claim_out, hold_folder
from qtalign.store.io import atomic_write_json


def flag_name(key: str) -> str:
    """The command-line spelling of a settings key: batch_size -> --batch-size."""
    return "--" + key.replace("_", "-")


def _show(value: Any, width: int = 60) -> str:
    if value is None:
        text = "(none)"
    elif isinstance(value, bool):
        text = "on" if value else "off"
    elif isinstance(value, (list, tuple)):
        text = ",".join(map(str, value)) or "(none)"
    elif isinstance(value, dict):
        text = ", ".join(f"{k}={v}" for k, v in value.items()) or "(none)"
    else:
        text = str(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def describe_changes(old: Mapping[str, Any], new: Mapping[str, Any], names: Mapping[str, str] | None = None,
                     ignore: Collection[str] = ()) -> list[str]:
    """Differences between two run records in the user's terms, one short phrase per changed setting.

    Keys ending in _sha256 are content hashes: a dict of file -> hash names the changed files (files added or removed
    follow from other settings and are not listed); a single hash says the content changed; a hash missing on one side
    (a record from before it was kept) is not a difference. Other keys are shown as
    `--flag OLD -> NEW` (names maps a key to another label, e.g. analysis -> command).
    """
    names = names or {}
    out: list[str] = []
    unexplained: list[str] = []
    for key in sorted(set(old) | set(new)):
        if key in ignore or old.get(key) == new.get(key):
            continue
        a, b = old.get(key), new.get(key)
        what = names.get(key)
        if key.endswith("_sha256"):
            if a is None or b is None:
                continue  # a record written before this hash was kept: nothing to compare
            subject = what or key.removesuffix("_sha256").replace("_", " ")
            changed: list[str] = []
            if isinstance(a, dict) and isinstance(b, dict):
                changed = sorted(Path(k).name for k in set(a) & set(b) if a[k] != b[k])
            if changed:
                more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
                out.append(f"{subject} changed since ({', '.join(changed[:3])}{more})")
            elif isinstance(a, str) and isinstance(b, str):
                out.append(f"{subject} changed since")
            else:
                unexplained.append(f"{subject} differs")
            continue
        out.append(f"{what or flag_name(key)} {_show(a)} -> {_show(b)}")
    return out or unexplained


@dataclass
class RunFolder:
    """A claimed output folder and the settings record that a rerun must match; commit() writes the record."""

    path: Path
    record: Path
    settings: dict[str, Any]
    resumed: bool  # a record with the same settings was there

    def commit(self, settings: Mapping[str, Any] | None = None) -> None:
        """Write the run record; call once setup (model, adapter, data) has succeeded."""
        if settings is not None:
            self.settings = dict(settings)
        atomic_write_json(self.record, self.settings)


def _has_content(path: Path) -> bool:
    """A non-empty file, or a folder holding at least one non-empty file."""
    if path.is_file():
        return path.stat().st_size > 0
    return path.is_dir() and any(_has_content(p) for p in path.iterdir())


RESUME_HINT = "rerun with the same settings to resume, add --overwrite to start over, or use another --out"


def open_run(out: str | Path, record: str, settings: Mapping[str, Any], outputs: Sequence[str] = (),
             overwrite: bool = False, names: Mapping[str, str] | None = None, ignore: Collection[str] = (),
             flag: str = "--out", defaults: Mapping[str, Any] | None = None) -> RunFolder:
    """The one resume/overwrite rule of every command that writes a folder, checked before any slow setup.

    Claims out (claim_out) and holds it (hold_folder: a second writer is refused). With overwrite, the record and the command's outputs (names relative to out; files or
    folders) are deleted. Otherwise an existing record must equal settings except for keys in ignore (settings that
    cannot change results), else a QtalignError names each changed flag, unless the earlier run left no output with
    content (a start that failed before producing anything); outputs without a record are refused too. defaults: the
    value of settings that a record written by an older qtalign lacks (a setting added later, at its default).
    Nothing is written: RunFolder.commit() writes the record once setup has succeeded, so a failed start never
    blocks the corrected command.
    """
    folder = claim_out(out, flag)
    hold_folder(folder)  # one writer at a time, from here until the command ends
    path = folder / record
    if overwrite:
        for name in [record, *outputs]:
            target = folder / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
        return RunFolder(folder, path, dict(settings), False)
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            raise QtalignError(f"{path}: unreadable run record; add --overwrite to start over") from None
        if not isinstance(old, dict):
            raise QtalignError(f"{path}: unreadable run record; add --overwrite to start over")
        old = {**{k: v for k, v in (defaults or {}).items() if k not in old and k in settings}, **old}
        changes = describe_changes(old, settings, names, ignore)
        if changes and not any(_has_content(folder / name) for name in outputs):
            return RunFolder(folder, path, dict(settings), False)  # the earlier run produced nothing to protect
        if changes:
            raise QtalignError(f"{folder}: holds results made with other settings ({'; '.join(changes)}); "
                               f"{RESUME_HINT}")
        return RunFolder(folder, path, dict(settings), True)
    found = [name for name in outputs if (folder / name).exists()]
    if found:
        raise QtalignError(f"{folder}: holds {', '.join(found)} but no run record ({record}); add --overwrite to "
                           "start over or use another --out")
    return RunFolder(folder, path, dict(settings), False)
