"""Refusals before a comparison: the runs must have scored the same prompts on the same items with the same gold."""

from __future__ import annotations

from qtalign.compare.runs import Run
from qtalign.errors import QtalignError

# settings that fix the prompts; compared when rows carry no prompt_sha
PROMPT_SETTINGS: tuple[str, ...] = ("task", "shots", "labels", "seed", "demos", "limit", "scoring")


def check_same_items(a: Run, b: Run) -> list[str]:
    """Refuse (QtalignError naming the first difference) unless a and b scored the same prompts with the same gold.
    Returns notes (e.g. prompts checked by settings because rows carry no prompt_sha)."""
    head = f"cannot compare {a.path} and {b.path}:"
    if a.task != b.task:
        raise QtalignError(f"{head} task {a.task!r} vs {b.task!r}")
    for x, y in ((a, b), (b, a)):
        for lang in x.langs:
            if lang not in y.items:
                raise QtalignError(f"{head} language {lang!r} is in {x.name} but not in {y.name}")
    if sorted(a.labels) != sorted(b.labels):
        raise QtalignError(f"{head} labels {a.labels} vs {b.labels}")
    unchecked = False
    for lang in a.langs:
        ia, ib = a.items[lang], b.items[lang]
        if ia != ib:
            only_a, only_b = sorted(set(ia) - set(ib)), sorted(set(ib) - set(ia))
            if only_a:
                raise QtalignError(f"{head} {lang} item {a.item_name(lang, only_a[0])} is in {a.name} but not in "
                                   f"{b.name} ({len(only_a)} such item(s))")
            raise QtalignError(f"{head} {lang} item {b.item_name(lang, only_b[0])} is in {b.name} but not in {a.name}"
                               f" ({len(only_b)} such item(s))")
        for i in ia:
            ra, rb = a.rows[lang, i], b.rows[lang, i]
            item = a.item_name(lang, i)
            if ra.get("item_sha") and rb.get("item_sha") and ra["item_sha"] != rb["item_sha"]:
                raise QtalignError(f"{head} {lang} item {item}: the items differ (item hash {ra['item_sha']} in "
                                   f"{a.name}, {rb['item_sha']} in {b.name})")
            if ra["gold"] != rb["gold"]:
                raise QtalignError(f"{head} {lang} item {item} has gold {ra['gold']!r} in {a.name}, {rb['gold']!r} in "
                                   f"{b.name}")
            sa, sb = ra.get("prompt_sha"), rb.get("prompt_sha")
            if sa and sb:
                if sa != sb:
                    raise QtalignError(f"{head} {lang} item {item}: the prompts differ (prompt hash {sa} in {a.name}, "
                                       f"{sb} in {b.name})")
            else:
                unchecked = True
    notes: list[str] = []
    if unchecked:
        _check_prompt_settings(a, b, head)
        notes.append(f"{a.name} / {b.name}: some rows carry no prompt_sha; prompts checked by settings and data "
                     f"hashes only")
    return notes


def _check_prompt_settings(a: Run, b: Run, head: str) -> None:
    sa, sb = (a.results or {}).get("settings") or {}, (b.results or {}).get("settings") or {}
    for key in PROMPT_SETTINGS:
        if key in sa and key in sb and sa[key] != sb[key]:
            raise QtalignError(f"{head} setting {key} is {sa[key]!r} in {a.name}, {sb[key]!r} in {b.name}")
    ha, hb = (a.results or {}).get("data_sha256"), (b.results or {}).get("data_sha256")
    if ha and hb and sorted(ha.values()) != sorted(hb.values()):
        raise QtalignError(f"{head} the data files differ (data_sha256)")
