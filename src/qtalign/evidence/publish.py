"""The copy of a rebuilt report kept in the docs (docs/results/NAME/): written from the rebuild, and compared with
it on every check, so that no number in the copy can drift from the evidence."""

from __future__ import annotations

import difflib
import io
from pathlib import Path

from qtalign.store import atomic_write_bytes, atomic_write_text

MAX_WIDTH = 3000  # figures wider than this are scaled down in the copy (the rebuild keeps them whole)
COPY_BOOTSTRAP = 2000  # copies are made with the default number of resamples; other numbers give other intervals


def copy_text(md: str, rebuilt: Path, name: str) -> str:
    """The rebuilt report.md as the docs keep it: the rebuild's folder (a machine path) written as
    runs/evidence/NAME, the folder `qtalign evidence check` rebuilds in by default."""
    text = md.replace(str(rebuilt.resolve()), f"runs/evidence/{name}")
    return text if text.endswith("\n") else text + "\n"


def compare_copy(copy: Path, md: str, rebuilt: Path, name: str) -> list[str]:
    """Problems (none when the copy is the rebuilt report): the first lines that differ, with their line number."""
    if not copy.is_file():
        return [f"{copy}: no report copy (write it with `qtalign evidence check FILE --write-report`)"]
    want = copy_text(md, rebuilt, name).splitlines()
    have = copy.read_text(encoding="utf-8").splitlines()
    if want == have:
        return []
    problems = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, have, want, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        shown = have[i1] if i1 < i2 else "(nothing)"
        expected = want[j1] if j1 < j2 else "(nothing)"
        problems.append(f"{copy}:{i1 + 1}: the copy says {shown[:160]!r}; the rebuilt report says "
                        f"{expected[:160]!r}")
        if len(problems) == 5:
            problems.append(f"{copy}: more differences; rewrite it with `qtalign evidence check FILE --write-report`")
            break
    return problems


def write_copy(report_md: Path, figures: list[Path], rebuilt: Path, name: str, copy: Path) -> None:
    """Write the copy (report.md and its PNG figures, wide ones scaled down and palette-quantized to keep the
    repository small) beside `copy`; figures the report no longer draws are removed."""
    from PIL import Image

    atomic_write_text(copy, copy_text(report_md.read_text(encoding="utf-8"), rebuilt, name))
    fig_dir = copy.parent / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    keep = {p.name for p in figures}
    for old in fig_dir.glob("*.png"):
        if old.name not in keep:
            old.unlink()
    for png in figures:
        with Image.open(png) as im:
            im = im.convert("RGB")
            if im.width > MAX_WIDTH:
                im = im.resize((MAX_WIDTH, round(im.height * MAX_WIDTH / im.width)), Image.Resampling.LANCZOS)
            data = io.BytesIO()
            im.quantize(256).save(data, format="PNG", optimize=True)
        atomic_write_bytes(fig_dir / png.name, data.getvalue())
