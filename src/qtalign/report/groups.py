"""The evals grouped as the report's tables show them: per (model, task, labels, demo seed), base first; row
names, each tuned run's paired comparison with base, the scoring modes present."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from qtalign.compare import RAW
from qtalign.report.format import MODE_ORDER, GroupKey
from qtalign.report.study import EvalEntry, Study

Groups = dict[GroupKey, list[EvalEntry]]


def group_evals(s: Study) -> Groups:
    """Evals by (model, task, labels, demo seed): base first, then mixes in study order (real before control,
    seeds ascending); evals whose runs cannot be read are left out (and noted)."""
    out: Groups = {}
    for e in s.evals:
        if s.run(e) is not None:
            out.setdefault(e.group, []).append(e)
    mix_rank = {m: k for k, m in enumerate(dict.fromkeys(e.mix for e in s.evals))}
    for es in out.values():
        es.sort(key=lambda e: (e.mix is not None, mix_rank[e.mix], e.control is not None, e.control or "",
                               e.train_seed if e.train_seed is not None else -1))
    return out


def row_name(e: EvalEntry, group: Sequence[EvalEntry]) -> str:
    """A run's row name in its group: base, or the mix with its control and, when the group holds several, its seed."""
    if e.mix is None:
        return "base" + (f" ({e.control})" if e.control else "")
    name = e.mix
    if e.control and e.control not in name:
        name += f" [{e.control}]"
    seeds = {x.train_seed for x in group if x.mix == e.mix and x.control == e.control}
    if len(seeds) > 1 and e.train_seed is not None:
        name += f" (seed {e.train_seed})"
    return name


def base_of(group: Sequence[EvalEntry]) -> EvalEntry | None:
    """The group's base run (no mix), if any."""
    return next((e for e in group if e.mix is None), None)


def comparisons(s: Study, group: Sequence[EvalEntry]) -> Iterator[tuple[EvalEntry, dict[str, Any]]]:
    """(tuned run, its paired comparison with the group's base run) for every run of the group that has one."""
    base = base_of(group)
    for e in group:
        if base is None or e is base:
            continue
        c = s.pair(base, e)
        if c is not None:
            yield e, c


def scoring_modes(s: Study, group: Sequence[EvalEntry]) -> list[str]:
    """Raw, then the calibration modes any run of the group has, in report order."""
    have: set[str] = set()
    for e in group:
        r = s.run(e)
        if r is not None:
            have |= set(r.modes)
    return [RAW] + [m for m in MODE_ORDER[1:] if m in have] + sorted(have - set(MODE_ORDER))


def scheme_note(s: Study, groups: Groups) -> str:
    """How the intervals of means resampled items, over every comparison shown (e.g. 'items resampled jointly
    across 6 languages')."""
    texts = dict.fromkeys((sc["mean"].get("resampling") or {}).get("text", "resampling not recorded")
                          for es in groups.values() for _, c in comparisons(s, es) for sc in c["scores"].values())
    return "; ".join(texts) or "no comparison"
