"""In-task pairs from a range of parallel test files: the range, the field-by-field guard, and evaluation on the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qtalign.data.build import build_pairs
from qtalign.data.ranges import ItemRange, parse_item_range
from qtalign.errors import QtalignError
from qtalign.tasks import get_task


def _files(folder: Path, n: int = 10) -> Path:
    folder.mkdir(parents=True)
    for lang in ("en", "zh", "es"):
        items = [{"input": f"{lang} review {i}", "answer": "positive" if i % 2 else "negative"} for i in range(n)]
        items[7]["input"] = f"{lang} review 2"  # item 7 (training range) repeats item 2's text (evaluation range)
        (folder / f"emotion_{lang}{n}_test.json").write_text(json.dumps(items), encoding="utf-8")
    return folder


def test_pairs_come_from_the_range_and_share_no_text_with_the_rest(tmp_path: Path) -> None:
    data = _files(tmp_path / "emotion")
    report = build_pairs(get_task("emotion"), [data], ["zh", "es"], "en", None, 1, exclude=data,
                         test_items=ItemRange(5, 10))
    assert sorted({p.index for p in report.pairs}) == [5, 6, 8, 9]  # item 7 shares a text with item 2
    assert report.contaminated == {"zh": 1, "es": 1}
    assert report.item_ranges is not None and report.item_ranges["pairs_from"] == [5, 10]
    assert report.item_ranges["pairs_sharing_a_text_kept"] == 0


def test_range_needs_exclude_and_valid_bounds(tmp_path: Path) -> None:
    data = _files(tmp_path / "emotion")
    with pytest.raises(QtalignError, match="need --exclude"):
        build_pairs(get_task("emotion"), [data], ["zh"], "en", None, 1, test_items=ItemRange(5, 10))
    for bad in ("5", "7:3", "a:b"):
        with pytest.raises(QtalignError, match="--items"):
            parse_item_range(bad)
