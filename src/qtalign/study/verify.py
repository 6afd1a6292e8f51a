"""Which cached steps of a study may be reused: each finished step found (also under an earlier key), its outputs
verified against its marker, and every step depending on one that runs again distrusted; `qtalign run --verify` too."""

from __future__ import annotations

import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qtalign.runs.study import MARKER, NOT_OUTPUTS, write_marker
from qtalign.runs.verify import check_complete, check_recorded
from qtalign.store import read_json_object
from qtalign.study.plan import Plan, Step

VERIFIED, OLDER, FAILED, DEPENDENT, NOT_RUN = "verified", "older", "failed", "dependent", "not run"


@dataclass
class StepCheck:
    """What the check found for one step of the plan.

    status: verified (its files are as its marker recorded), older (an older qtalign's marker without a file list;
    the folder read complete), failed (an output missing, truncated or changed), dependent (finished, but a step it
    depends on runs again), not run (no marker: never run, or interrupted; it resumes)."""

    status: str
    problems: list[str] = field(default_factory=list)  # failed: one line per file, relative to the step's folder
    marker: dict[str, Any] | None = None
    cause: str | None = None  # dependent: the step it depends on that runs again
    clear: bool = False  # its folder is emptied before the run: its outputs cannot be trusted or resumed
    rekey: bool = False  # found under the key an earlier qtalign gave it: its marker gets the content key when reused

    @property
    def reused(self) -> bool:
        return self.status in (VERIFIED, OLDER)


def check_steps(root: Path, plan: Plan) -> dict[str, StepCheck]:
    """Every step's check, in plan order. A step is reused only when its marker verifies and every step it depends
    on is reused; a failed step and everything downstream of it (finished or part-done) is cleared and runs again."""
    checks: dict[str, StepCheck] = {}
    for s in plan.steps:
        marker, rekey = locate(root, s)
        upstream = next((d for d in s.deps if not checks[d].reused), None)
        tainted = any(checks[d].clear for d in s.deps)  # made (maybe in part) from outputs that are recomputed
        if marker is None:
            checks[s.id] = StepCheck(NOT_RUN, cause=upstream, clear=tainted)
            continue
        folder = root / s.out
        if "files" in marker:
            problems = check_recorded(folder, marker["files"])
        else:
            problems = check_complete(folder, s.kind)
        if problems:
            checks[s.id] = StepCheck(FAILED, problems, marker, clear=True)
        elif upstream is not None:
            checks[s.id] = StepCheck(DEPENDENT, marker=marker, cause=upstream, clear=True)
        else:
            checks[s.id] = StepCheck(VERIFIED if "files" in marker else OLDER, marker=marker, rekey=rekey)
    return checks


def locate(root: Path, s: Step) -> tuple[dict[str, Any] | None, bool]:
    """The finished-step marker of s and whether it holds s's earlier key (s.legacy) rather than its key.

    The folder the plan names (its key's) comes first; else another folder of the same step: steps/KIND/SLUG-*/ (or
    report/) whose marker holds s's key (a folder adopted before) or s.legacy (a study run by a qtalign that keyed
    steps by where their data was). s.out becomes the folder found, so the step is reused, or resumed, where it is;
    without a marker anywhere, a part-done folder named by the earlier key is resumed (the same computation)."""
    marker = read_json_object(root / s.out / MARKER)
    if marker is not None and marker.get("hash") == s.hash:
        return marker, False
    here, slug = root / Path(s.out).parent, re.sub(r"-[0-9a-f]{12}$", "", Path(s.out).name)
    named = re.compile(re.escape(slug) + r"-[0-9a-f]{12}")
    folders = [root / s.out] if s.kind == "report" else sorted(
        p for p in (here.iterdir() if here.is_dir() else ()) if p.is_dir() and named.fullmatch(p.name))
    keys = {s.hash} | ({s.legacy} if s.legacy is not None else set())
    for folder in folders:
        found = read_json_object(folder / MARKER)
        if found is not None and found.get("hash") in keys:
            s.out = folder.relative_to(root).as_posix()
            return found, found["hash"] != s.hash
    part = here / f"{slug}-{s.legacy[:12]}" if s.legacy is not None and s.kind != "report" else None
    if part is not None and part.is_dir() and not (root / s.out).exists():
        s.out = part.relative_to(root).as_posix()
    return None, False


def reused_steps(checks: dict[str, StepCheck]) -> set[str]:
    return {i for i, c in checks.items() if c.reused}


def problem_lines(root: Path, plan: Plan, checks: dict[str, StepCheck]) -> list[str]:
    """One line per failed step naming its first bad file and what is wrong; a line counting the steps that run again
    because they depend on one; a line for markers of an older qtalign found complete; a line for the steps found
    under their earlier keys."""
    lines = []
    for s in plan.steps:
        c = checks[s.id]
        if c.status == FAILED:
            more = f" (and {len(c.problems) - 1} more file(s))" if len(c.problems) > 1 else ""
            lines.append(f"distrusted {s.id}: {root / s.out}/{c.problems[0]}{more}; it runs again")
    dependent = [s.id for s in plan.steps if checks[s.id].status == DEPENDENT]
    if dependent:
        lines.append(f"{len(dependent)} finished step(s) run again because a step they depend on runs again: "
                     + ", ".join(dependent[:3]) + (", ..." if len(dependent) > 3 else ""))
    older = [s.id for s in plan.steps if checks[s.id].status == OLDER]
    if older:
        lines.append(f"{len(older)} step(s) marked finished by an older qtalign (no file list): read complete by "
                     "their readers, reused, and their files recorded now")
    lines += rekey_lines(plan, checks, "reused where they are, their markers now hold the content keys")
    return lines


def rekey_lines(plan: Plan, checks: dict[str, StepCheck], what: str) -> list[str]:
    """A line counting the reusable steps found under the keys of a qtalign that keyed steps by where their data was."""
    rekeyed = [s.id for s in plan.steps if checks[s.id].rekey and checks[s.id].reused]
    if not rekeyed:
        return []
    line = (f"{len(rekeyed)} finished step(s) found under the keys of an earlier qtalign (keyed by where the data "
            f"was; the same computation, outputs verified): {what}")
    return [line]


def prepare_reuse(root: Path, plan: Plan, checks: dict[str, StepCheck]) -> None:
    """Before the run (the study folder held): empty the folders of the steps that are not trusted (marker first, so
    an interruption leaves no finished-looking folder), record the files of older markers found complete, and give
    the markers found under an earlier key the content key (their verified file list kept)."""
    for s in plan.steps:
        c = checks[s.id]
        if c.clear:
            clear_folder(root / s.out)
        elif c.status == OLDER and c.marker is not None:
            write_marker(root, s, float(c.marker.get("seconds") or 0.0))
        elif c.rekey and c.status == VERIFIED and c.marker is not None:
            write_marker(root, s, float(c.marker.get("seconds") or 0.0), files=c.marker["files"])


def clear_folder(folder: Path) -> None:
    """Remove a step folder's marker, then everything else in it but its lock file."""
    (folder / MARKER).unlink(missing_ok=True)
    for p in folder.iterdir() if folder.is_dir() else ():
        if p.name in NOT_OUTPUTS:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def verify_lines(root: Path, plan: Plan, checks: dict[str, StepCheck]) -> list[str]:
    """`qtalign run --verify`: a count per status, then every failed step (each bad file on its own line), every step
    that would run again because of one, and the older markers."""
    n = Counter(c.status for c in checks.values())
    head = (f"verify {root}: {len(plan.steps)} steps: {n[VERIFIED]} verified, {n[OLDER]} older marker(s) read "
            f"complete, {n[FAILED]} failed, {n[DEPENDENT]} finished but depending on a step that runs again, "
            f"{n[NOT_RUN]} not run yet")
    lines = [head]
    for s in plan.steps:
        c = checks[s.id]
        if c.status == FAILED:
            lines += [f"FAILED {s.id}: {root / s.out}/{p}" for p in c.problems]
        elif c.status == DEPENDENT:
            lines.append(f"RERUN  {s.id}: depends on {c.cause}")
        elif c.status == OLDER:
            lines.append(f"OLDER  {s.id}: no file list in its marker (older qtalign); read complete")
    return lines + rekey_lines(plan, checks, "reused where they are; the next run gives their markers the content "
                                              "keys")


def verify_failed(checks: dict[str, StepCheck]) -> bool:
    """Whether a finished step would not be reused (a failed output, or one it depends on)."""
    return any(c.status in (FAILED, DEPENDENT) for c in checks.values())
