"""The study report: reads S/study.json and the run folders it names (never a model); writes HTML + Markdown."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qtalign.compare import RAW, Run, compare_runs, load_run, training_languages
from qtalign.errors import QtalignError
from qtalign.languages import LANGUAGES, PAPER_LANGS
from qtalign.report.render import Block, Cell, Figure, Heading, Items, Pre, Table, Text, render_html, render_md
from qtalign.store import atomic_write_json, atomic_write_text, manifest_path, read_json_object, read_jsonl_rows
from qtalign.uncertainty import Cell as DiffCell
from qtalign.uncertainty import SeedAwareInterval, VarianceBreakdown, seed_aware_interval, variance_breakdown

log = logging.getLogger(__name__)

STUDY = "study.json"
REPORT_DIR = "report"
MODE_ORDER = (RAW, "batch", "content-free")
SIG_LEGEND = ("* / ** / *** = exact McNemar p < 0.05 / 0.01 / 0.001 after Holm correction over the table's "
              "languages (green: up, red: down, grey: not significant)")


@dataclass(frozen=True)
class EvalEntry:
    id: str
    run: Path
    model: str
    mix: str | None
    control: str | None
    train_seed: int | None
    demo_seed: int
    task: str
    labels: str

    @property
    def group(self) -> tuple[str, str, str, int]:
        return (self.model, self.task, self.labels, self.demo_seed)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _signed(x: float) -> str:
    return f"{100 * x:+.1f}"


def _ci(ci: Sequence[float]) -> str:
    return f"[{_signed(ci[0])}, {_signed(ci[1])}]"


def _mode_title(mode: str) -> str:
    return "raw" if mode == RAW else f"calibrated ({mode})"


def _slug(*parts: object) -> str:
    text = "-".join(str(p) for p in parts if p is not None)
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def ordered_langs(langs: Sequence[str]) -> tuple[list[str], list[str]]:
    """(high-resource, low-resource) in the paper's order; codes outside the table count as low-resource."""
    rank = {code: k for k, code in enumerate(PAPER_LANGS)}
    ordered = sorted(langs, key=lambda x: rank.get(x, len(rank)))
    high = [x for x in ordered if x in LANGUAGES and LANGUAGES[x].high_resource]
    return high, [x for x in ordered if x not in high]


class Study:
    """study.json and lazy access to the runs it names, with a list of notes on anything missing."""

    def __init__(self, root: Path, n_boot: int = 2000) -> None:
        self.root = root
        path = root / STUDY
        if not path.is_file():
            raise QtalignError(f"{path}: not found (is {root} a `qtalign run` output folder?)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            raise QtalignError(f"{path}: not valid JSON") from None
        if not isinstance(data, dict):
            raise QtalignError(f"{path}: expected a JSON object")
        self.data = data
        self.n_boot = n_boot
        self.notes: list[str] = []
        self.evals = []
        for k, e in enumerate(data.get("evals") or []):
            try:
                self.evals.append(EvalEntry(
                    id=str(e["id"]), run=root / e["run"], model=str(e.get("model", "")), mix=e.get("mix"),
                    control=e.get("control"), train_seed=e.get("train_seed"), demo_seed=int(e.get("demo_seed") or 0),
                    task=str(e.get("task", "")), labels=str(e.get("labels", "en"))))
            except KeyError as err:
                raise QtalignError(f"{path}: evals[{k}] has no {err.args[0]!r}") from None
        self.by_id = {e.id: e for e in self.evals}
        self.trains: list[dict[str, Any]] = list(data.get("trains") or [])
        self.compares: list[dict[str, Any]] = list(data.get("compares") or [])
        self.analyses: list[dict[str, Any]] = list(data.get("analyses") or [])
        self._runs: dict[str, Run | None] = {}
        self._pairs: dict[tuple[str, str], dict[str, Any] | None] = {}

    def run(self, e: EvalEntry) -> Run | None:
        if e.id not in self._runs:
            try:
                self._runs[e.id] = load_run(e.run, e.id)
            except QtalignError as err:
                self.notes.append(f"eval {e.id}: left out ({err})")
                self._runs[e.id] = None
        return self._runs[e.id]

    def pair(self, base: EvalEntry, other: EvalEntry) -> dict[str, Any] | None:
        """The comparison of other vs base: the runner's compare.json when there is one, else computed here."""
        key = (base.id, other.id)
        if key in self._pairs:
            return self._pairs[key]
        result = None
        for c in self.compares:
            if c.get("base") == base.id and c.get("other") == other.id and c.get("out"):
                path = self.root / c["out"] / "compare.json"
                if path.is_file():
                    try:
                        result = _pick_comparison(json.loads(path.read_text(encoding="utf-8")), other.run)
                    except (ValueError, KeyError, IndexError, TypeError):
                        self.notes.append(f"{path}: unreadable; recomputed from the predictions")
                    if result is not None and "resampling" not in result["scores"][RAW]["mean"]:
                        self.notes.append(f"{path}: written before intervals recorded their resampling scheme; "
                                          f"recomputed from the predictions")
                        result = None
                break
        if result is None and self.run(base) is not None and self.run(other) is not None:
            try:
                result = compare_runs([base.run, other.run], names=[base.id, other.id], n_boot=self.n_boot)
                result = result["comparisons"][0]
            except QtalignError as err:
                self.notes.append(f"{other.id} vs {base.id}: not compared ({err})")
        self._pairs[key] = result
        return result


def _pick_comparison(data: dict[str, Any], other: Path) -> dict[str, Any]:
    """The comparison in a compare.json whose other run is the folder `other` (the only one if there is one)."""
    comparisons = data["comparisons"]
    if len(comparisons) == 1:
        return comparisons[0]
    paths = {r["name"]: Path(r["path"]) for r in data["runs"]}
    for same in (lambda p: p.resolve() == other.resolve(), lambda p: p.name == other.name):
        found = [c for c in comparisons if c["other"] in paths and same(paths[c["other"]])]
        if len(found) == 1:
            return found[0]
    raise KeyError(str(other))


def _accuracy(run: Run | None, mode: str, lang: str) -> float | None:
    if run is None or (mode != RAW and mode not in run.modes) or lang not in run.items:
        return None
    return float(run.correct(lang, mode).mean())


Arm = tuple[str, str, str, str, str | None]  # (model, task, labels, mix, control): one tuned setting over its seeds


@dataclass(frozen=True)
class ArmUncertainty:
    """The seed- and demonstration-aware change of one arm in one scoring mode, with its variance breakdown."""

    interval: SeedAwareInterval
    breakdown: VarianceBreakdown


class Builder:
    """Assembles the report's blocks; figures are written under out/figures."""

    def __init__(self, study: Study, out: Path) -> None:
        self.s = study
        self.out = out
        self.fig_dir = out / "figures"
        self.blocks: list[Block] = []
        self.figures: dict[str, Path] = {}
        self._arms: dict[tuple[Arm, str], ArmUncertainty] | None = None
        self._contrasts: dict[tuple[Arm, Arm, str], ArmUncertainty] | None = None
        self._alignment: list[dict[str, Any]] = []  # alignment_vs_gain's correlations, for summary.json

    # ---- helpers ----------------------------------------------------------------------------------------------
    def figure(self, name: str, draw: Any, caption: str) -> None:
        """Call draw(stem) -> [png, svg]; on a missing input, note it instead of failing the whole report."""
        try:
            paths = draw(self.fig_dir / name)
        except QtalignError as err:
            self.s.notes.append(f"figure {name}: not drawn ({err})")
            return
        png = next(p for p in paths if p.suffix == ".png")
        self.figures[name] = png
        self.blocks.append(Figure(f"fig-{name}", png, caption))

    def groups(self) -> dict[tuple[str, str, str, int], list[EvalEntry]]:
        """Evals by (model, task, labels, demo seed): base first, then mixes in study order (real before control,
        seeds ascending); evals whose runs cannot be read are left out (and noted)."""
        out: dict[tuple[str, str, str, int], list[EvalEntry]] = {}
        for e in self.s.evals:
            if self.s.run(e) is not None:
                out.setdefault(e.group, []).append(e)
        mix_rank = {m: k for k, m in enumerate(dict.fromkeys(e.mix for e in self.s.evals))}
        for es in out.values():
            es.sort(key=lambda e: (e.mix is not None, mix_rank[e.mix], e.control is not None, e.control or "",
                                   e.train_seed if e.train_seed is not None else -1))
        return out

    def row_name(self, e: EvalEntry, group: Sequence[EvalEntry]) -> str:
        if e.mix is None:
            return "base" + (f" ({e.control})" if e.control else "")
        name = e.mix
        if e.control and e.control not in name:
            name += f" [{e.control}]"
        seeds = {x.train_seed for x in group if x.mix == e.mix and x.control == e.control}
        if len(seeds) > 1 and e.train_seed is not None:
            name += f" (seed {e.train_seed})"
        return name

    @staticmethod
    def base_of(group: Sequence[EvalEntry]) -> EvalEntry | None:
        return next((e for e in group if e.mix is None), None)

    def comparisons(self, group: Sequence[EvalEntry]) -> Iterator[tuple[EvalEntry, dict[str, Any]]]:
        """(tuned run, its paired comparison with the group's base run) for every run of the group that has one."""
        base = self.base_of(group)
        for e in group:
            if base is None or e is base:
                continue
            c = self.s.pair(base, e)
            if c is not None:
                yield e, c

    def modes(self, group: Sequence[EvalEntry]) -> list[str]:
        have: set[str] = set()
        for e in group:
            r = self.s.run(e)
            if r is not None:
                have |= set(r.modes)
        return [RAW] + [m for m in MODE_ORDER[1:] if m in have] + sorted(have - set(MODE_ORDER))

    def scheme_note(self, groups: dict[tuple[str, str, str, int], list[EvalEntry]]) -> str:
        """How the intervals of means resampled items, over every comparison shown (e.g. 'items resampled jointly
        across 6 languages')."""
        texts = dict.fromkeys((sc["mean"].get("resampling") or {}).get("text", "resampling not recorded")
                              for es in groups.values() for _, c in self.comparisons(es) for sc in c["scores"].values())
        return "; ".join(texts) or "no comparison"

    @staticmethod
    def arm_name(arm: Arm) -> str:
        mix, control = arm[3], arm[4]
        return mix + (f" [{control}]" if control and control not in mix else "")

    def paired_uncertainty(self, pairs: Sequence[tuple[EvalEntry, EvalEntry]], mode: str) -> ArmUncertainty | None:
        """Seed-aware change of `other` minus `ref` over (ref, other) runs paired on the same items, keyed by the
        other run's (training seed, demonstration seed); None when no pair has the mode. Cells are [L, n] when the
        items are parallel, else one [n_lang] array per language; one item draw serves every cell when all scored
        the same items."""
        cells: dict[tuple[Any, Any], DiffCell] = {}
        items: set[tuple[tuple[int, ...], ...]] = set()
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
            per = [ro.correct(lang, mode).astype(np.float64) - rr.correct(lang, mode).astype(np.float64)
                   for lang in rr.langs]  # each [n_lang]
            joint = rr.resampling().joint
            cells[key] = np.stack(per) if joint else per  # [L, n] or L x [n_lang]
            items.add(tuple(tuple(rr.items[lang]) for lang in rr.langs) if joint else ((),))
        if not cells:
            return None
        shared = len(items) == 1 and all(isinstance(c, np.ndarray) for c in cells.values())
        return ArmUncertainty(seed_aware_interval(cells, self.s.n_boot, 0, shared_items=shared),
                              variance_breakdown(cells, shared_items=shared))

    def arm_uncertainty(self, groups: dict[tuple[str, str, str, int], list[EvalEntry]]
                        ) -> dict[tuple[Arm, str], ArmUncertainty]:
        """Per arm (model, task, labels, mix, control) and scoring mode: the seed- and demonstration-aware change
        (uncertainty.seed_aware_interval) and its variance breakdown; computed once."""
        if self._arms is None:
            arms: dict[Arm, list[EvalEntry]] = {}
            for e in self.s.evals:
                if e.mix is not None and self.s.run(e) is not None:
                    arms.setdefault((e.model, e.task, e.labels, e.mix, e.control), []).append(e)
            self._arms = {}
            for arm, es in arms.items():
                pairs = [(base, e) for e in es if (base := self.base_of(groups.get(e.group, []))) is not None
                         and self.s.pair(base, e) is not None]
                for mode in self.modes(es):
                    if (u := self.paired_uncertainty(pairs, mode)) is not None:
                        self._arms[arm, mode] = u
        return self._arms

    def contrast_uncertainty(self) -> dict[tuple[Arm, Arm, str], ArmUncertainty]:
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
                for mode in self.modes([e for pair in es for e in pair]):
                    if (u := self.paired_uncertainty(es, mode)) is not None:
                        self._contrasts[ra, ca, mode] = u
        return self._contrasts

    def seed_aware(self, groups: dict[tuple[str, str, str, int], list[EvalEntry]]
                   ) -> list[tuple[Arm, str, str, str, str, ArmUncertainty]]:
        """Every seed-aware change the report shows: (arm, name in the table, headline lead, headline word, scoring
        mode, result) for each tuned arm vs base, then each real arm minus its control."""
        out = [(arm, self.arm_name(arm), f"{self.arm_name(arm)} vs base", "mean change", mode, u)
               for (arm, mode), u in self.arm_uncertainty(groups).items()]
        out += [(ra, f"{self.arm_name(ra)} − {self.arm_name(ca)}",
                 f"{self.arm_name(ra)} minus its control {self.arm_name(ca)}, paired seed by seed", "difference", mode, u)
                for (ra, ca, mode), u in self.contrast_uncertainty().items()]
        return out

    def summary(self, groups: dict[tuple[str, str, str, int], list[EvalEntry]]) -> dict[str, Any]:
        """The report's numbers as data (report/summary.json): every paired comparison's mean change, each tuned
        setting's and each real-minus-control contrast's seed-aware change with its breakdown; fractions, not %."""
        def interval(iv: SeedAwareInterval) -> dict[str, Any]:
            return {"value": iv.value, "ci95": [iv.lo, iv.hi], "scope": iv.text, "left_out": list(iv.left_out)}

        pairs = []
        for es in groups.values():
            for e, c in self.comparisons(es):
                base = self.base_of(es)
                for mode, sc in c["scores"].items():
                    m = sc["mean"]
                    pairs.append({"base": base.id if base else None, "other": e.id, "mode": mode, "base_acc": m["base"],
                                  "other_acc": m["other"], "diff": m["diff"], "ci95": m["ci95"],
                                  "mde80": m.get("mde80"), "resampling": (m.get("resampling") or {}).get("text")})
        arms = [{"model": a[0], "task": a[1], "labels": a[2], "mix": a[3], "control": a[4], "mode": mode,
                 **interval(u.interval), "sd": u.breakdown.record()}
                for (a, mode), u in self.arm_uncertainty(groups).items()]
        contrasts = [{"real": ra[3], "control": ca[3], "control_kind": ca[4], "model": ra[0], "task": ra[1], "labels": ra[2], "mode": mode,
                      **interval(u.interval), "sd": u.breakdown.record()}
                     for (ra, ca, mode), u in self.contrast_uncertainty().items()]
        return {"study": self.s.data.get("name"), "pairs": pairs, "arms": arms, "contrasts": contrasts,
                "alignment": self._alignment}

    @staticmethod
    def group_title(g: tuple[str, str, str, int]) -> str:
        model, task, labels, demo_seed = g
        return f"{task} · {model} · labels {labels} · demo seed {demo_seed}"

    # ---- sections ---------------------------------------------------------------------------------------------
    def headline(self, groups: dict[tuple[str, str, str, int], list[EvalEntry]]) -> None:
        self.blocks.append(Heading(2, "Headline", "headline"))
        lines = []
        for g, es in groups.items():
            base = self.base_of(es)
            if base is None:
                continue
            for e in es:
                if e is base:
                    continue
                c = self.s.pair(base, e)
                if c is None:
                    continue
                parts = []
                for mode, sc in c["scores"].items():
                    m = sc["mean"]
                    parts.append(f"{_mode_title(mode)} {_pct(m['base'])} → {_pct(m['other'])} "
                                 f"({_signed(m['diff'])} {_ci(m['ci95'])})")
                lines.append(f"{self.group_title(g)}: {self.row_name(e, es)} vs base — mean accuracy " + "; ".join(parts))
        by_lead: dict[tuple[Arm, str, str], tuple[SeedAwareInterval, list[str]]] = {}
        for arm, _, lead, word, mode, u in self.seed_aware(groups):
            iv = u.interval
            by_lead.setdefault((arm, lead, word), (iv, []))[1].append(f"{_mode_title(mode)} {_signed(iv.value)} "
                                                                     f"{_ci([iv.lo, iv.hi])}")
        for (arm, lead, word), (iv, parts) in by_lead.items():
            left = f" ({'; '.join(iv.left_out)})" if iv.left_out else ""
            lines.append(f"{arm[1]} · {arm[0]} · labels {arm[2]}: {lead}, {iv.text}{left} — {word} " + "; ".join(parts))
        if not lines:
            lines.append("no tuned run compared with a base run yet")
        self.blocks.append(Items(lines))
        self.blocks.append(Text("Means are unweighted over languages; brackets are paired 95% bootstrap intervals "
                                f"of the change (points), {self.scheme_note(groups)}. The lines 'over N training "
                                "seeds x M demonstration sets' resample training seeds, demonstration seeds and "
                                "items (see Uncertainty); with one of each they leave that variance out."))

    def paper_tables(self, groups: dict[tuple[str, str, str, int], list[EvalEntry]]) -> None:
        self.blocks.append(Heading(2, "Accuracy by language (paper-style table)", "accuracy"))
        self.blocks.append(Text("Rows: the base model and each training mix (controls beside the real mixes); "
                                "columns: languages grouped high-/low-resource as in the paper, then the mean. Each "
                                "cell: accuracy (%) and, below it, the change from base in points. " + SIG_LEGEND +
                                ". Mean column: change with its paired 95% bootstrap interval (coloured when the "
                                f"interval excludes 0; {self.scheme_note(groups)}). Shaded cells: languages in that "
                                "row's training mix (seen)."))
        for gi, (g, es) in enumerate(groups.items()):
            base = self.base_of(es)
            langs_all = self.s.run(base).langs if base is not None and self.s.run(base) else \
                list(dict.fromkeys(x for e in es for x in (self.s.run(e).langs if self.s.run(e) else [])))
            high, low = ordered_langs(langs_all)
            langs = high + low
            for mode in self.modes(es):
                self.blocks.append(Heading(3, f"{self.group_title(g)} — {_mode_title(mode)}"))
                rows: list[list[Cell | str]] = []
                for e in es:
                    run = self.s.run(e)
                    c = self.s.pair(base, e) if base is not None and e is not base else None
                    sc = c["scores"].get(mode) if c else None
                    seen = set((c or {}).get("seen_langs") or [])
                    row: list[Cell | str] = [Cell(self.row_name(e, es), cls="label", title=e.id)]
                    for lang in langs:
                        a = _accuracy(run, mode, lang)
                        if a is None:
                            row.append(Cell("–"))
                            continue
                        cell = Cell(_pct(a), cls="seen" if lang in seen else "")
                        if sc is not None and lang in sc["languages"]:
                            v = sc["languages"][lang]
                            direction = ("up" if v["diff"] > 0 else "down") if v["significant"] else "ns"
                            cell.sub = _signed(v["diff"]) + v["mark"]
                            cell.cls = f"{cell.cls} {direction}".strip()
                            cell.title = f"p = {v['p']:.3g}, Holm {v['p_holm']:.3g}, 95% CI {_ci(v['ci95'])}"
                        row.append(cell)
                    accs = [_accuracy(run, mode, lang) for lang in langs]
                    if all(a is not None for a in accs) and accs:
                        cell = Cell(_pct(float(np.mean(accs))))
                        if sc is not None:
                            m = sc["mean"]
                            cell.sub = f"{_signed(m['diff'])} {_ci(m['ci95'])}"
                            cell.cls = ("up" if m["diff"] > 0 else "down") if m["excludes_zero"] else "ns"
                        row.append(cell)
                    else:
                        row.append(Cell("–"))
                    rows.append(row)
                groups_row = [("", 1)] + ([("high-resource", len(high))] if high else []) + \
                             ([("low-resource", len(low))] if low else []) + [("", 1)]
                head = [Cell("model / mix", cls="label")] + \
                       [Cell(x, title=LANGUAGES[x].name if x in LANGUAGES else x) for x in langs] + [Cell("mean")]
                caption = (f"{_mode_title(mode)} accuracy (%); high-resource: {' '.join(high) or '—'}; "
                           f"low-resource: {' '.join(low) or '—'}")
                self.blocks.append(Table(f"acc-{gi}-{_slug(mode)}", head, rows, groups_row, caption, "paper"))
            # the gains figure of this group, all modes
            series = [(self.row_name(e, es), c["scores"]) for e, c in self.comparisons(es)]
            if series:
                from qtalign.figures.results import gains_figure

                modes = self.modes(es)
                self.figure(f"gains-{gi}", lambda stem, series=series, langs=langs, modes=modes:
                            gains_figure(series, langs, modes, stem),
                            f"Change from base per language and on the mean, with paired 95% bootstrap intervals "
                            f"({self.group_title(g)}); filled: significant after Holm correction (mean: interval "
                            f"excludes 0).")

    def seen_unseen(self, groups: dict[tuple[str, str, str, int], list[EvalEntry]]) -> None:
        self.blocks.append(Heading(2, "Seen vs unseen languages", "seen-unseen"))
        self.blocks.append(Text("Seen: languages of the adapter's training mix (its manifest's sources and target); "
                                "unseen: every other evaluated language. Mean change from base (points) with a paired "
                                f"95% bootstrap interval ({self.scheme_note(groups)})."))
        rows: list[list[Cell | str]] = []
        for g, es in groups.items():
            for e, c in self.comparisons(es):
                for mode, sc in c["scores"].items():
                    row: list[Cell | str] = [Cell(self.group_title(g), cls="label"),
                                             Cell(self.row_name(e, es), cls="label"), _mode_title(mode),
                                             Cell(", ".join(c.get("seen_langs") or []) or "unknown", cls="label",
                                                  title=c.get("seen_from", ""))]
                    for key in ("seen", "unseen"):
                        grp = sc.get(key)
                        row.append(self._gain_cell(grp) if grp else Cell("–"))
                    row.append(self._gain_cell(sc["mean"]))
                    rows.append(row)
        if rows:
            head = [Cell("task · model", cls="label"), Cell("mix", cls="label"), "scoring",
                    Cell("seen languages", cls="label"), "Δ seen", "Δ unseen", "Δ all"]
            self.blocks.append(Table("seen-unseen-table", head, rows, caption="mean change from base (points)"))
        else:
            self.blocks.append(Text("no tuned run compared with a base run", "note"))

    @staticmethod
    def _gain_cell(grp: dict[str, Any]) -> Cell:
        cls = ("up" if grp["diff"] > 0 else "down") if grp.get("excludes_zero") else "ns"
        return Cell(_signed(grp["diff"]), sub=_ci(grp["ci95"]), cls=cls)

    def prior_shift(self, groups: dict[tuple[str, str, str, int], list[EvalEntry]]) -> None:
        self.blocks.append(Heading(2, "Prior shift: predicted-label shares", "prior-shift"))
        self.blocks.append(Text("How often each label is predicted (% of items, mean over languages), base → mix, "
                                "and the change. A raw gain that comes with a large shift toward one label and no "
                                "calibrated gain is a moved prior, not better understanding."))
        for gi, (g, es) in enumerate(groups.items()):
            series: list[tuple[str, dict[str, dict[str, float]]]] = []
            rows: list[list[Cell | str]] = []
            labels: list[str] = []
            langs: list[str] = []
            for e, c in self.comparisons(es):
                for mode, sc in c["scores"].items():
                    labels = list(sc["predicted_share"])
                    langs = list(sc["languages"])
                    row: list[Cell | str] = [Cell(self.row_name(e, es), cls="label"), _mode_title(mode)]
                    for label in labels:
                        v = sc["predicted_share"][label]
                        row.append(Cell(f"{_pct(v['base'])} → {_pct(v['other'])}", sub=_signed(v["change"])))
                    first = labels[0]
                    ups = sum(v["predicted_share"][first]["change"] > 0 for v in sc["languages"].values())
                    downs = sum(v["predicted_share"][first]["change"] < 0 for v in sc["languages"].values())
                    row.append(f"{ups} / {downs} of {len(sc['languages'])}")
                    rows.append(row)
                    if mode == RAW:
                        series.append((self.row_name(e, es), {lang: {lb: x["change"] for lb, x in
                                                                     v["predicted_share"].items()}
                                                              for lang, v in sc["languages"].items()}))
            if not rows:
                continue
            self.blocks.append(Heading(3, self.group_title(g)))
            head = [Cell("mix", cls="label"), "scoring", *[f"share '{lb}'" for lb in labels],
                    f"languages where '{labels[0]}' rose / fell"]
            self.blocks.append(Table(f"prior-{gi}", head, rows, caption="predicted share (%), mean over languages"))
            from qtalign.figures.results import prior_shift_figure

            self.figure(f"prior-shift-{gi}", lambda stem, series=series, langs=langs, labels=labels:
                        prior_shift_figure(series, langs, labels, stem),
                        f"Change of the predicted share per language, raw scores ({self.group_title(g)}).")

    def controls(self, groups: dict[tuple[str, str, str, int], list[EvalEntry]]) -> None:
        self.blocks.append(Heading(2, "Real mix vs its control", "controls"))
        pairs: list[tuple[EvalEntry, EvalEntry]] = []
        for c in self.s.compares:
            if c.get("kind") == "vs-control" and c.get("base") in self.s.by_id and c.get("other") in self.s.by_id:
                pairs.append((self.s.by_id[c["base"]], self.s.by_id[c["other"]]))
        if not pairs:  # pair each control with the real mix of the same name, seeds and settings
            for e in self.s.evals:
                if e.control and e.mix is not None:
                    real = next((r for r in self.s.evals if r.control is None and r.mix == e.mix
                                 and r.group == e.group and r.train_seed == e.train_seed), None)
                    if real is not None:
                        pairs.append((e, real))
        rows_by_group: dict[tuple[str, str, str, int], list[list[Cell | str]]] = {}
        langs_by_group: dict[tuple[str, str, str, int], list[str]] = {}
        for base, other in pairs:
            if self.s.run(base) is None or self.s.run(other) is None:
                continue
            c = self.s.pair(base, other)
            if c is None:
                continue
            es = [e for e in self.s.evals if e.group == other.group]
            high, low = ordered_langs(list(c["scores"][RAW]["languages"]))
            langs_by_group[other.group] = high + low
            for mode, sc in c["scores"].items():
                row: list[Cell | str] = [Cell(f"{self.row_name(other, es)} − {self.row_name(base, es)}", cls="label"),
                                         _mode_title(mode)]
                for lang in high + low:
                    v = sc["languages"].get(lang)
                    if v is None:
                        row.append(Cell("–"))
                        continue
                    cls = ("up" if v["diff"] > 0 else "down") if v["significant"] else "ns"
                    row.append(Cell(_signed(v["diff"]) + v["mark"], cls=cls,
                                    sub=f"{_pct(v['base'])}→{_pct(v['other'])}"))
                row.append(self._gain_cell(sc["mean"]))
                rows_by_group.setdefault(other.group, []).append(row)
        if not rows_by_group:
            self.blocks.append(Text("no control mix in this study", "note"))
            return
        self.blocks.append(Text("Paired on the same items: the difference in points between the two runs named in "
                                "the row (first minus second), with the accuracies below it. " + SIG_LEGEND + ". "
                                "A real mix that beats its control on calibrated scores is evidence for the "
                                "question-translation effect; one that only beats it raw is not."))
        for gi, (g, rows) in enumerate(rows_by_group.items()):
            self.blocks.append(Heading(3, self.group_title(g)))
            langs = langs_by_group[g]
            head = [Cell("comparison", cls="label"), "scoring", *langs, "mean"]
            self.blocks.append(Table(f"controls-{gi}", head, rows, caption="difference (points), Holm-marked"))

    def spread(self, groups: dict[tuple[str, str, str, int], list[EvalEntry]]) -> None:
        self.blocks.append(Heading(2, "Spread over seeds", "seeds"))
        found = False
        for seed_kind, field in (("training", "train_seed"), ("demonstration", "demo_seed")):
            by_key: dict[tuple[Any, ...], list[EvalEntry]] = {}
            for e in self.s.evals:
                if self.s.run(e) is None or (seed_kind == "training" and e.mix is None):
                    continue
                key = (e.model, e.task, e.labels, e.mix, e.control) + \
                      ((e.demo_seed,) if seed_kind == "training" else (e.train_seed,))
                by_key.setdefault(key, []).append(e)
            rows: list[list[Cell | str]] = []
            langs: list[str] = []
            for key, es in by_key.items():
                seeds = sorted({getattr(e, field) for e in es})
                if len(seeds) < 2:
                    continue
                runs = [self.s.run(e) for e in es]
                langs = langs or [x for part in ordered_langs(runs[0].langs) for x in part]  # type: ignore[union-attr]
                name = (key[3] or "base") + (f" [{key[4]}]" if key[4] and key[4] not in (key[3] or "") else "")
                for mode in self.modes(es):
                    row: list[Cell | str] = [Cell(f"{key[1]} · {key[0]}", cls="label"), Cell(name, cls="label"),
                                             _mode_title(mode), ", ".join(map(str, seeds))]
                    per_run_means = []
                    for lang in langs:
                        accs = [_accuracy(r, mode, lang) for r in runs]
                        accs_ok = [a for a in accs if a is not None]
                        row.append(self._spread_cell(accs_ok))
                    for r in runs:
                        accs = [_accuracy(r, mode, lang) for lang in langs]
                        if all(a is not None for a in accs):
                            per_run_means.append(float(np.mean(accs)))  # type: ignore[arg-type]
                    row.append(self._spread_cell(per_run_means))
                    rows.append(row)
            if rows:
                found = True
                self.blocks.append(Heading(3, f"over {seed_kind} seeds"))
                head = [Cell("task · model", cls="label"), Cell("mix", cls="label"), "scoring", "seeds", *langs, "mean"]
                self.blocks.append(Table(f"spread-{_slug(seed_kind)}", head, rows,
                                         caption=f"accuracy (%), mean ± sd over {seed_kind} seeds"))
        if not found:
            self.blocks.append(Text("Every configuration was run with one seed: no spread to show. Add seeds in the "
                                    "study config to see how much of a difference is seed noise.", "note"))

    def uncertainty(self, groups: dict[tuple[str, str, str, int], list[EvalEntry]]) -> None:
        self.blocks.append(Heading(2, "Uncertainty: items, demonstrations, training seeds", "uncertainty"))
        self.blocks.append(Text(
            "Per tuned setting: the mean change from base over all its runs (each run paired with the base run of "
            "the same demonstration seed) and a two-level bootstrap interval that resamples training seeds, "
            "demonstration seeds and then items (one item draw for every language). With 2–3 seeds the seed level is "
            "coarse and the interval approximate. SD columns: the standard deviation of the mean change that one "
            "run's items, one demonstration set and one training seed contribute (item noise removed from the seed "
            "levels, floored at 0; – where there is one seed); spend compute on the largest. docs/report.md says "
            "how each is computed."))
        rows: list[list[Cell | str]] = []
        sd = lambda x: "–" if x is None else _pct(x)
        for arm, name, _, _, mode, u in self.seed_aware(groups):
            iv, b = u.interval, u.breakdown
            cls = ("up" if iv.value > 0 else "down") if (iv.lo > 0 or iv.hi < 0) else "ns"
            rows.append([Cell(f"{arm[1]} · {arm[0]} · labels {arm[2]}", cls="label"), Cell(name, cls="label"),
                         _mode_title(mode), Cell(iv.text, cls="label", title="; ".join(iv.left_out)),
                         Cell(_signed(iv.value), sub=_ci([iv.lo, iv.hi]), cls=cls),
                         sd(b.items), sd(b.demos), sd(b.train), sd(b.grand_sd)])
        if rows:
            head = [Cell("task · model", cls="label"), Cell("mix", cls="label"), "scoring", Cell("runs", cls="label"),
                    "Δ mean", "SD items", "SD demo set", "SD training seed", "SD of Δ mean"]
            self.blocks.append(Table("uncertainty-table", head, rows,
                                     caption="mean change (points) over seeds and demonstrations; SDs in points"))
        else:
            self.blocks.append(Text("no tuned run compared with a base run", "note"))
        power: list[list[Cell | str]] = []
        for g, es in groups.items():
            for e, c in self.comparisons(es):
                for mode, sc in c["scores"].items():
                    m = sc["mean"]
                    power.append([Cell(self.group_title(g), cls="label"), Cell(self.row_name(e, es), cls="label"),
                                  _mode_title(mode), Cell(_signed(m["diff"]), sub=_ci(m["ci95"])),
                                  Cell((m.get("resampling") or {}).get("text", "–"), cls="label"),
                                  f"±{_pct(m['mde80'])}" if m.get("mde80") is not None else "–"])
        if power:
            self.blocks.append(Heading(3, "Power of each comparison"))
            self.blocks.append(Text("The smallest mean change each single comparison could detect at 80% power "
                                    "(two-sided α = 0.05): (1.96 + 0.84) times the bootstrap SD of its mean change. "
                                    "A 'not significant' change smaller than this is not evidence of no effect."))
            head = [Cell("task · model", cls="label"), Cell("mix", cls="label"), "scoring", "Δ mean",
                    Cell("items resampled", cls="label"), "detectable at 80% power"]
            self.blocks.append(Table("power-table", head, power, caption="points"))

    @staticmethod
    def _spread_cell(values: Sequence[float]) -> Cell:
        if not values:
            return Cell("–")
        sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        return Cell(f"{_pct(float(np.mean(values)))} ± {_pct(sd)}")

    def training(self) -> None:
        self.blocks.append(Heading(2, "Training", "training"))
        if not self.s.trains:
            self.blocks.append(Text("no training runs in this study", "note"))
            return
        rows: list[list[Cell | str]] = []
        curves = []
        for t in self.s.trains:
            folder = self.s.root / t.get("run", "")
            summary = read_json_object(folder / "train_summary.json") or {}
            langs, note = training_languages(str(folder), [self.s.root])
            name = str(t.get("mix") or t.get("id")) + (f" [{t['control']}]" if t.get("control") and
                                                       t["control"] not in str(t.get("mix")) else "") + \
                (f" (seed {t['train_seed']})" if t.get("train_seed") is not None else "")
            train_log, val_log = read_jsonl_rows(folder / "train_log.jsonl"), read_jsonl_rows(folder / "val_log.jsonl")
            if not train_log and not val_log:
                self.s.notes.append(f"train {t.get('id')}: no train_log.jsonl/val_log.jsonl in {folder}")
            else:
                curves.append((name, train_log, val_log))
            first, best = summary.get("first_val_loss"), summary.get("best_val_loss")
            rows.append([Cell(str(t.get("id")), cls="label"), Cell(name, cls="label"),
                         Cell(", ".join(langs) if langs else "unknown", cls="label", title=note),
                         str(summary.get("train_pairs", "–")), str(summary.get("steps", len(train_log) or "–")),
                         f"{first:.3f} → {best:.3f}" if isinstance(first, float) and isinstance(best, float) else
                         (f"{best:.3f}" if isinstance(best, float) else "–"),
                         f"{summary['seconds']:.0f}" if isinstance(summary.get("seconds"), (int, float)) else "–"])
        head = [Cell("id", cls="label"), Cell("mix", cls="label"), Cell("languages", cls="label"), "pairs", "steps",
                "val loss (first → best)", "seconds"]
        self.blocks.append(Table("training-table", head, rows))
        if curves:
            from qtalign.figures.results import loss_figure

            self.figure("loss", lambda stem: loss_figure(curves, stem),
                        "Training loss per optimizer step and validation loss of each training run.")

    def analyses(self) -> None:
        self.blocks.append(Heading(2, "Inside the model: logit lens and PCA", "analyses"))
        if not self.s.analyses:
            self.blocks.append(Text("no lens or PCA analysis in this study", "note"))
            return
        from qtalign.figures.analysis import lens_figure, pca_corr_figure, pca_scatter_figure
        from qtalign.figures.results import alignment_figure

        by: dict[tuple[str, str], list[tuple[str, Path]]] = {}
        for a in self.s.analyses:
            name = "base" if a.get("mix") is None else str(a["mix"])
            if a.get("train_seed") is not None and a.get("mix") is not None:
                name += f" (seed {a['train_seed']})"
            by.setdefault((str(a.get("kind")), str(a.get("model", ""))), []).append((name, self.s.root / a["run"]))
        for (kind, model), runs in by.items():
            slug = _slug(kind, model)
            if kind == "lens":
                self.blocks.append(Heading(3, f"Logit lens · {model}"))
                self.figure(f"{slug}", lambda stem, runs=runs: lens_figure(runs, stem),
                            "Logit lens at the last prompt position: probability of the correct label's English "
                            "tokens and its input-language tokens per layer (mean, 95% band), entropy below; "
                            + ", ".join(f"{n}: {'solid' if i % 3 == 0 else 'dashed' if i % 3 == 1 else 'dotted'}"
                                        for i, (n, _) in enumerate(runs)) + ".")
            elif kind == "pca":
                self.blocks.append(Heading(3, f"PCA of hidden states · {model}"))
                self.figure(f"{slug}-scatter", lambda stem, runs=runs: pca_scatter_figure(runs, stem),
                            "PC1 vs PC2 of the mean-pooled hidden states per layer, fitted jointly over languages.")
                self.figure(f"{slug}-corr", lambda stem, runs=runs: pca_corr_figure(runs, stem),
                            "Pearson r of PC1 between languages on parallel items, per layer.")
                have = [(n, p) for n, p in runs if (p / "alignment.csv").is_file() and
                        (p / "alignment.csv").stat().st_size > 0 and
                        len((p / "alignment.csv").read_text(encoding="utf-8").splitlines()) > 1]
                if have:
                    self.figure(f"{slug}-alignment", lambda stem, runs=have: alignment_figure(runs, stem),
                                "Cross-language alignment per layer: cosine of parallel items vs other items, and "
                                "how often an item's nearest neighbour in another language is its translation.")
            else:
                self.s.notes.append(f"analysis kind {kind!r} is not drawn")

    def alignment_vs_gain(self) -> None:
        """Per language, the change of the analyses' alignment measures beside the accuracy change of the same adapter
        (its evaluation with the first demonstration seed), and their correlation across languages."""
        from qtalign.report.alignment_gain import MEASURES, alignment_changes, gain_table, lens_alignment, pca_alignment

        runs: dict[tuple[str, str | None, int | None], dict[str, dict[str, dict[str, float]]]] = {}
        for a in self.s.analyses:
            read = pca_alignment if a.get("kind") == "pca" else lens_alignment if a.get("kind") == "lens" else None
            if read is None:
                continue
            key = (str(a.get("model", "")), a.get("mix"), a.get("train_seed"))
            merged = runs.setdefault(key, {})
            for lang, values in read(self.s.root / a["run"]).items():
                merged.setdefault(lang, {}).update(values)
        tuned = [k for k in runs if k[1] is not None and (k[0], None, None) in runs]
        if not tuned:
            return
        self.blocks.append(Heading(2, "Does alignment predict the gain?", "alignment-gain"))
        self.blocks.append(Text(
            "The paper explains its gains by tuning aligning other languages with English. Per language: the accuracy "
            "change of the analysed adapter (tuned − base, points, first demonstration seed) beside the change of "
            "each alignment measure, averaged over the last third of the layers: "
            + "; ".join(f"{k} = {v}" for k, v in MEASURES.items())
            + ". Below, Pearson r across languages with a 95% bootstrap interval (languages resampled); with about "
              "20 languages only a strong relation shows."))
        for ti, (model, mix, seed) in enumerate(tuned):
            base_e = [e for e in self.s.evals if e.model == model and e.mix is None]
            tuned_e = [e for e in self.s.evals if e.model == model and e.mix == mix and e.train_seed == seed]
            pair = None
            for t in sorted(tuned_e, key=lambda e: e.demo_seed):
                b = next((x for x in base_e if x.group == t.group), None)
                if b is not None and (pair := self.s.pair(b, t)) is not None:
                    break
            if pair is None:
                self.s.notes.append(f"alignment vs gain, {mix} (seed {seed}): no evaluation paired with base")
                continue
            modes = [m for m in (RAW, "batch") if m in pair["scores"]]
            acc = {m: {lang: v["diff"] for lang, v in pair["scores"][m]["languages"].items()} for m in modes}
            change = alignment_changes(runs[(model, None, None)], runs[(model, mix, seed)])
            langs = [lang for lang in ordered_langs(list(acc[RAW]))[0] + ordered_langs(list(acc[RAW]))[1]
                     if lang in change]
            name = f"{mix} (seed {seed})" if seed is not None else str(mix)
            self.blocks.append(Heading(3, f"{model} · {name}"))
            head = [Cell("lang", cls="label"), *[f"Δ accuracy {_mode_title(m)}" for m in modes],
                    *[f"Δ {k}" for k in MEASURES]]
            rows: list[list[Cell | str]] = []
            for lang in langs:
                rows.append([Cell(lang, cls="label"), *[_signed(acc[m][lang]) for m in modes],
                             *[f"{change[lang][k]:+.3f}" if k in change[lang] else "–" for k in MEASURES]])
            self.blocks.append(Table(f"alignment-gain-{ti}", head, rows,
                                     caption="accuracy change in points; alignment changes in their own units"))
            crow: list[list[Cell | str]] = []
            for m in modes:
                _, cors = gain_table(change, acc[m], n_boot=self.s.n_boot)
                for c in cors:
                    ok = c.n >= 3 and c.r == c.r
                    self._alignment.append({"model": model, "mix": mix, "train_seed": seed, "measure": c.measure,
                                            "mode": m, "n": c.n, "r": c.r if ok else None,
                                            "ci95": [c.lo, c.hi] if ok else None,
                                            "changes": {lang: {"accuracy": acc[m][lang], **change[lang]}
                                                        for lang in langs}})
                    crow.append([Cell(f"{c.measure} vs accuracy {_mode_title(m)}", cls="label"), str(c.n),
                                 Cell(f"{c.r:+.2f} [{c.lo:+.2f}, {c.hi:+.2f}]" if ok else "–",
                                      cls=("up" if c.lo > 0 else "down" if c.hi < 0 else "ns") if ok else "")])
            self.blocks.append(Table(f"alignment-corr-{ti}", [Cell("measure", cls="label"), "languages",
                                                              "Pearson r [95% CI]"], crow))

    def metadata(self) -> None:
        d = self.s.data
        self.blocks.append(Heading(2, "Metadata", "metadata"))
        steps = d.get("steps") or []
        total = sum(float(x.get("seconds") or 0) for x in steps)
        self.blocks.append(Items([f"study: {d.get('name', self.s.root.name)}",
                                  f"qtalign version: {d.get('qtalign_version', 'unknown')}",
                                  f"folder: {self.s.root}",
                                  f"wall time of the steps run: {total:.0f} s over {len(steps)} step(s)"]))
        if steps:
            self.blocks.append(Heading(3, "Steps"))
            rows: list[list[Cell | str]] = [
                [Cell(str(x.get("id")), cls="label"), str(x.get("kind", "")), str(x.get("status", "")),
                 f"{x['seconds']:.1f}" if isinstance(x.get("seconds"), (int, float)) else "–",
                 Cell(str(x.get("hash", ""))[:12], cls="label"), Cell(str(x.get("out", "")), cls="label")]
                for x in steps]
            head = [Cell("step", cls="label"), "kind", "status", "seconds", Cell("hash", cls="label"),
                    Cell("output", cls="label")]
            self.blocks.append(Table("steps-table", head, rows, caption="wall time per step (reused steps: 0 or –)"))
        rows = []
        data_rows: dict[str, str] = {}
        versions: dict[str, None] = {}
        for e in self.s.evals:
            r = self.s.run(e)
            res = (r.results if r else None) or {}
            model = res.get("model") or {}
            rows.append([Cell(e.id, cls="label"), Cell(str(model.get("model", e.model)), cls="label"),
                         Cell(str(model.get("adapter") or "—"), cls="label"),
                         Cell(str(model.get("adapter_sha256") or "—")[:16], cls="label"),
                         str(model.get("dtype", "–")), str(len(r.rows) if r else "–"),
                         "yes" if res.get("complete") else "no"])
            for f, h in (res.get("data_sha256") or {}).items():
                data_rows[f] = h
            if res.get("versions"):
                versions[", ".join(f"{k} {v}" for k, v in res["versions"].items())] = None
        if rows:
            self.blocks.append(Heading(3, "Evaluation runs"))
            head = [Cell("eval", cls="label"), Cell("model", cls="label"), Cell("adapter", cls="label"),
                    Cell("adapter sha256", cls="label"), "dtype", "items", "complete"]
            self.blocks.append(Table("models-table", head, rows))
        for t in self.s.trains:
            folder = self.s.root / t.get("run", "")
            ts = read_json_object(folder / "train_settings.json") or {}
            if ts.get("data"):
                manifest = read_json_object(manifest_path(ts["data"])) or \
                    read_json_object(manifest_path(folder / ts["data"])) or {}
                if manifest.get("pairs_sha256"):
                    data_rows[f"{ts['data']} (pairs of {t.get('id')})"] = manifest["pairs_sha256"]
        if data_rows:
            self.blocks.append(Heading(3, "Data"))
            self.blocks.append(Table("data-table", [Cell("file", cls="label"), Cell("sha256", cls="label")],
                                     [[Cell(f, cls="label"), Cell(h, cls="label")] for f, h in data_rows.items()]))
        if versions:
            self.blocks.append(Heading(3, "Versions"))
            self.blocks.append(Items(list(versions)))
        if d.get("config") is not None:
            self.blocks.append(Heading(3, "Settings (validated study config)"))
            self.blocks.append(Pre(json.dumps(d["config"], indent=2, ensure_ascii=False, default=str)))

    def notes(self) -> None:
        if self.s.notes:
            self.blocks.append(Heading(2, "Notes", "notes"))
            self.blocks.append(Items(list(dict.fromkeys(self.s.notes))))




def build_report(S: Path, n_boot: int = 2000) -> dict[str, Path]:
    """Write S/report/report.html (self-contained) and S/report/report.md (+ figures/ beside them).

    Reads S/study.json and the eval/train/compare/lens/pca folders it names; computes any missing paired comparison
    from the stored predictions; never loads a model. Returns {"html": ..., "md": ..., "figure:NAME": png, ...}.
    """
    S = Path(S)
    study = Study(S, n_boot=n_boot)
    out = S / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    b = Builder(study, out)
    groups = b.groups()
    b.headline(groups)
    b.paper_tables(groups)
    b.seen_unseen(groups)
    b.prior_shift(groups)
    b.controls(groups)
    b.spread(groups)
    b.uncertainty(groups)
    b.training()
    b.analyses()
    b.alignment_vs_gain()
    b.metadata()
    b.notes()
    title = f"qtalign study report: {study.data.get('name', S.name)}"
    paths = {"html": out / "report.html", "md": out / "report.md", "summary": out / "summary.json"}
    atomic_write_json(paths["summary"], b.summary(groups))
    atomic_write_text(paths["html"], render_html(title, b.blocks))
    atomic_write_text(paths["md"], render_md(title, b.blocks, out))
    for p in paths.values():
        p.chmod(0o644)  # a page to share, not a private temp file
    return {**paths, **{f"figure:{k}": v for k, v in b.figures.items()}}
