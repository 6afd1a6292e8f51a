"""Seed- and demonstration-aware changes: each tuned arm vs base and each real mix minus its control, over every
(training seed, demonstration seed) run, with the variance breakdown."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qtalign.compare import RAW
from qtalign.metrics import RunDiff, SeedAwareInterval, VarianceBreakdown, seed_aware_interval, variance_breakdown
from qtalign.report.format import Arm, arm_name
from qtalign.report.groups import Groups, base_of, scoring_modes
from qtalign.report.study import EvalEntry, Study


@dataclass(frozen=True)
class ArmUncertainty:
    """The seed- and demonstration-aware change of one arm in one scoring mode, with its variance breakdown."""

    interval: SeedAwareInterval
    breakdown: VarianceBreakdown



def run_diff(s: Study, ref: EvalEntry, other: EvalEntry, mode: str) -> RunDiff:
    """other minus ref, item by item, in every language of ref (both runs readable and scoring the same items, as
    Study.pair checks; mode raw or a calibration mode both runs carry)."""
    rr, ro = s.run(ref), s.run(other)
    assert rr is not None and ro is not None
    per = {lang: ro.correct(lang, mode).astype(np.float64) - rr.correct(lang, mode).astype(np.float64)
           for lang in rr.langs}  # each [n_lang]
    return RunDiff.of(per, rr.items, rr.resampling().joint)


class SeedAware:
    """The study's seed-aware changes, each computed once: per arm and scoring mode, and per real-control contrast."""

    def __init__(self, study: Study) -> None:
        self.s = study
        self._arms: dict[tuple[Arm, str], ArmUncertainty] | None = None
        self._contrasts: dict[tuple[Arm, Arm, str], ArmUncertainty] | None = None
        # the (ref, other) run pairs behind each arm / contrast, kept for the per-demonstration-set changes
        self._pairs: dict[tuple[Arm, Arm | None], list[tuple[EvalEntry, EvalEntry]]] = {}
        self._by_demo: list[tuple[Arm, Arm | None, int, str, ArmUncertainty]] | None = None

    def paired(self, pairs: Sequence[tuple[EvalEntry, EvalEntry]], mode: str) -> ArmUncertainty | None:
        """Seed-aware change of `other` minus `ref` over (ref, other) runs paired on the same items, keyed by the
        other run's (training seed, demonstration seed); None when no pair has the mode. Each cell holds the run's
        per-item differences with their item indices, so runs are matched by item index: one draw of item indices
        serves every run, each averaging the drawn items it scored (two demonstration sets that leave different
        demonstrations out of their scored items still share one draw)."""
        cells: dict[tuple[Any, Any], RunDiff] = {}
        for ref, other in pairs:
            rr, ro = self.s.run(ref), self.s.run(other)
            assert rr is not None and ro is not None
            if mode != RAW and not (mode in rr.modes and mode in ro.modes):
                continue
            key = (other.train_seed, other.demo_seed)
            if key in cells:
                self.s.notes.append(f"eval {other.id}: a second run of training seed {key[0]}, demonstration seed "
                                    f"{key[1]}; left out of the seed-aware interval")
                continue
            cells[key] = run_diff(self.s, ref, other, mode)
        if not cells:
            return None
        return ArmUncertainty(seed_aware_interval(cells, self.s.n_boot, 0), variance_breakdown(cells))

    def arms(self, groups: Groups) -> dict[tuple[Arm, str], ArmUncertainty]:
        """Per arm (model, task, labels, mix, control) and scoring mode: the seed- and demonstration-aware change
        (metrics.seed_aware_interval) and its variance breakdown; computed once."""
        if self._arms is None:
            arms: dict[Arm, list[EvalEntry]] = {}
            for e in self.s.evals:
                if e.mix is not None and self.s.run(e) is not None:
                    arms.setdefault((e.model, e.task, e.labels, e.mix, e.control), []).append(e)
            self._arms = {}
            for arm, es in arms.items():
                pairs = [(base, e) for e in es if (base := base_of(groups.get(e.group, []))) is not None
                         and self.s.pair(base, e) is not None]
                self._pairs[arm, None] = pairs
                for mode in scoring_modes(self.s, es):
                    if (u := self.paired(pairs, mode)) is not None:
                        self._arms[arm, mode] = u
        return self._arms

    def contrasts(self) -> dict[tuple[Arm, Arm, str], ArmUncertainty]:
        """Per (real arm, control arm) and scoring mode: real minus control over the seeds both ran, each pair of runs
        with the same training and demonstration seed paired on the same items (the runner's vs-control
        comparisons), resampled as the arms are; computed once."""
        if self._contrasts is None:
            pairs: dict[tuple[Arm, Arm], list[tuple[EvalEntry, EvalEntry]]] = {}
            for c in self.s.compares:
                a, b = self.s.by_id.get(str(c.get("base"))), self.s.by_id.get(str(c.get("other")))
                if c.get("kind") != "vs-control" or a is None or b is None or (a.control is None) == (b.control is None):
                    continue
                real, ctl = (a, b) if a.control is None else (b, a)
                if self.s.run(real) is None or self.s.run(ctl) is None or self.s.pair(real, ctl) is None:
                    continue  # unreadable, or not the same items (e.g. an unfinished run): noted by pair()
                arm = lambda e: (e.model, e.task, e.labels, str(e.mix), e.control)
                pairs.setdefault((arm(real), arm(ctl)), []).append((ctl, real))  # real minus control
            self._contrasts = {}
            for (ra, ca), es in pairs.items():
                self._pairs[ra, ca] = es
                for mode in scoring_modes(self.s, [e for pair in es for e in pair]):
                    if (u := self.paired(es, mode)) is not None:
                        self._contrasts[ra, ca, mode] = u
        return self._contrasts

    def by_demo(self, groups: Groups) -> list[tuple[Arm, Arm | None, int, str, ArmUncertainty]]:
        """Each arm (control arm None) and each contrast run with several demonstration sets, over the runs of one
        demonstration set at a time (training seeds and items resampled): (arm, control arm, demo seed, scoring
        mode, result). Two demonstration sets are two levels, not a sample: where they disagree, these say how."""
        if self._by_demo is None:
            self.arms(groups)
            self.contrasts()
            self._by_demo = []
            for (arm, ctl), pairs in self._pairs.items():
                demos = sorted({other.demo_seed for _, other in pairs})
                if len(demos) < 2:
                    continue
                modes = scoring_modes(self.s, [e for pair in pairs for e in pair])
                for demo in demos:
                    for mode in modes:
                        u = self.paired([p for p in pairs if p[1].demo_seed == demo], mode)
                        if u is not None:
                            self._by_demo.append((arm, ctl, demo, mode, u))
        return self._by_demo

    def every(self, groups: Groups) -> list[tuple[Arm, str, str, str, str, ArmUncertainty]]:
        """Every seed-aware change the report shows: (arm, name in the table, headline lead, headline word, scoring
        mode, result) for each tuned arm vs base, then each real arm minus its control."""
        out = [(arm, arm_name(arm), f"{arm_name(arm)} vs base", "mean change", mode, u)
               for (arm, mode), u in self.arms(groups).items()]
        out += [(ra, f"{arm_name(ra)} − {arm_name(ca)}",
                 f"{arm_name(ra)} minus its control {arm_name(ca)}, paired seed by seed", "difference", mode, u)
                for (ra, ca, mode), u in self.contrasts().items()]
        return out
