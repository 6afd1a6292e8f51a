"""Paired comparison of evaluation runs scored on the same items: bootstrap intervals, exact McNemar, Holm, power."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qtalign.errors import QtalignError
from qtalign.metrics import (
    Resampling,
    bootstrap_accuracy,
    bootstrap_language_mean,
    bootstrap_mean,
    bootstrap_mean_accuracy,
    detectable_change,
    resampling_scheme,
)
from qtalign.store import atomic_write_json, atomic_write_text, manifest_path, read_json_object, read_jsonl_rows

RAW = "raw"
ALPHA = 0.05
POWER = 0.8  # the power at which compare reports the smallest detectable mean change
# Holm-corrected p below each threshold earns one more star
MARKS: tuple[tuple[float, str], ...] = ((0.001, "***"), (0.01, "**"), (0.05, "*"))
# settings that fix the prompts; compared when rows carry no prompt_sha
PROMPT_SETTINGS: tuple[str, ...] = ("task", "shots", "labels", "seed", "demos", "limit", "scoring")


def mark(p_holm: float | None) -> str:
    """Significance mark of a Holm-corrected p-value ('' when not significant at 0.05)."""
    if p_holm is None or not np.isfinite(p_holm):
        return ""
    for threshold, stars in MARKS:
        if p_holm < threshold:
            return stars
    return ""


@dataclass
class Run:
    """One evaluation run folder, read back: its rows by (lang, item index) and where it came from."""

    name: str
    path: Path
    task: str
    langs: list[str]
    labels: list[str]
    rows: dict[tuple[str, int], dict[str, Any]]
    items: dict[str, list[int]]  # lang -> item indices, sorted
    results: dict[str, Any] | None
    modes: list[str]  # calibration modes present on every row
    train_langs: list[str] | None = None  # languages of the adapter's training mix (None: no adapter / unknown)
    train_note: str = ""
    adapter: str | None = None
    notes: list[str] = field(default_factory=list)

    def correct(self, lang: str, mode: str) -> np.ndarray:
        """[n] bool, items in index order."""
        rows = [self.rows[lang, i] for i in self.items[lang]]
        if mode == RAW:
            return np.array([bool(r["correct"]) for r in rows])
        return np.array([bool(r["correct_cal"][mode]) for r in rows])

    def resampling(self, langs: Sequence[str] | None = None) -> Resampling:
        """How a mean over langs (default: all) resamples items: joint when the languages share the same item
        indices and the eval's record of the parallel audit (results.json) does not say otherwise."""
        recorded = (((self.results or {}).get("mean") or {}).get("resampling") or {}).get("parallel_audit")
        return resampling_scheme({lang: self.items[lang] for lang in (self.langs if langs is None else langs)},
                                 recorded)

    def preds(self, lang: str, mode: str) -> list[str]:
        rows = [self.rows[lang, i] for i in self.items[lang]]
        return [r["pred"] if mode == RAW else r["pred_cal"][mode] for r in rows]


# ---- reading runs ---------------------------------------------------------------------------------------------
def _find(path_text: str, anchors: Sequence[Path]) -> Path | None:
    """path_text as given (absolute or from the working directory), else relative to each anchor folder."""
    p = Path(path_text)
    if p.exists():
        return p
    if not p.is_absolute():
        for a in anchors:
            if (a / p).exists():
                return a / p
    return None


def _anchors(folder: Path, up: int = 4) -> list[Path]:
    folder = folder.resolve()
    return [folder, *list(folder.parents)[:up]]


def training_languages(adapter: str, anchors: Sequence[Path] = ()) -> tuple[list[str] | None, str]:
    """Languages of an adapter's training mix (manifest sources + target) and where they were read.

    adapter: a `qtalign train` output folder T or T/adapter. Follows T/train_settings.json -> data -> that pairs
    file's manifest (store.manifest_path). Returns (None, reason) when the record cannot be followed.
    """
    found = _find(adapter, anchors)
    if found is None:
        return None, f"adapter {adapter} not found"
    train_dir = next((d for d in (found, found.parent) if (d / "train_settings.json").is_file()), None)
    if train_dir is None:
        return None, f"{found}: no train_settings.json here or one folder up"
    ts = read_json_object(train_dir / "train_settings.json", strict=True) or {}
    data = ts.get("data")
    if not data:
        return None, f"{train_dir / 'train_settings.json'}: no `data` entry"
    pairs = _find(str(data), [train_dir, *_anchors(train_dir)])
    if pairs is None:
        return None, f"{train_dir / 'train_settings.json'}: pairs file {data} not found"
    where = manifest_path(pairs)
    manifest = read_json_object(where, strict=True)
    if manifest is None:
        return None, f"{where}: not found"
    s = manifest.get("settings", {})
    sources, target = s.get("sources"), s.get("target")
    if not sources or not target:
        return None, f"{where}: no settings.sources/target"
    langs = list(dict.fromkeys([*sources, target]))
    control = s.get("control")
    return langs, f"{where}" + (f" (control {control})" if control else "")


def load_run(path: str | Path, name: str | None = None) -> Run:
    """An eval run folder (predictions.jsonl, results.json if finished) read back for comparison."""
    path = Path(path)
    pred_path = path / "predictions.jsonl"
    if not pred_path.is_file():
        raise QtalignError(f"{path}: no predictions.jsonl (not a `qtalign eval` run folder)")
    results = read_json_object(path / "results.json", strict=True)
    rows_all = read_jsonl_rows(pred_path)
    tasks = list(dict.fromkeys(r.get("task") for r in rows_all))
    task = results.get("task") if results else (tasks[0] if len(tasks) == 1 else None)
    if task is None:
        raise QtalignError(f"{pred_path}: rows of several tasks ({', '.join(map(str, tasks))}) and no results.json")
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for r in rows_all:
        if r.get("task") == task:
            rows.setdefault((r["lang"], int(r["index"])), r)
    if not rows:
        raise QtalignError(f"{pred_path}: no rows for task {task!r}")
    langs = list(dict.fromkeys(r["lang"] for r in rows.values()))
    if results and results.get("languages"):
        order = [lang for lang in results["languages"] if lang in langs]
        langs = order + [lang for lang in langs if lang not in order]
    first = next(iter(rows.values()))
    scores = first.get("probs") or first.get("loglik") or {}
    labels = list(scores) or sorted({r["gold"] for r in rows.values()})
    items = {lang: sorted(i for (lg, i) in rows if lg == lang) for lang in langs}
    modes = None
    for r in rows.values():
        have = set(r.get("correct_cal") or {}) & set(r.get("pred_cal") or {})
        modes = have if modes is None else modes & have
    cal_order = [m for m in ("batch", "content-free") if m in (modes or set())]
    cal_order += sorted((modes or set()) - set(cal_order))
    model = (results or {}).get("model") or {}
    settings = (results or {}).get("settings") or {}
    run_record = read_json_object(path / "run.json", strict=True) or {}
    adapter = model.get("adapter") or settings.get("adapter") or run_record.get("adapter")
    run = Run(name or path.name, path, task, langs, labels, rows, items, results, cal_order, adapter=adapter)
    if results is not None and not results.get("complete", True):
        run.notes.append(f"{run.name}: results.json says the run is incomplete")
    if results is None:
        run.notes.append(f"{run.name}: no results.json (unfinished run?)")
    if adapter:
        run.train_langs, run.train_note = training_languages(str(adapter), _anchors(path))
    return run


# ---- checks ---------------------------------------------------------------------------------------------------
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
                raise QtalignError(f"{head} {lang} item {only_a[0]} is in {a.name} but not in {b.name}"
                                   f" ({len(only_a)} such item(s))")
            raise QtalignError(f"{head} {lang} item {only_b[0]} is in {b.name} but not in {a.name}"
                               f" ({len(only_b)} such item(s))")
        for i in ia:
            ra, rb = a.rows[lang, i], b.rows[lang, i]
            if ra["gold"] != rb["gold"]:
                raise QtalignError(f"{head} {lang} item {i} has gold {ra['gold']!r} in {a.name}, {rb['gold']!r} in {b.name}")
            sa, sb = ra.get("prompt_sha"), rb.get("prompt_sha")
            if sa and sb:
                if sa != sb:
                    raise QtalignError(f"{head} {lang} item {i}: the prompts differ (prompt hash {sa} in {a.name}, "
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


# ---- statistics -----------------------------------------------------------------------------------------------
def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> tuple[dict[str, int], float]:
    """Paired 2x2 counts of correct answers and the exact (binomial) McNemar p-value (statsmodels)."""
    from statsmodels.stats.contingency_tables import mcnemar

    a, b = np.asarray(a, bool), np.asarray(b, bool)
    counts = {"both": int((a & b).sum()), "base_only": int((a & ~b).sum()), "other_only": int((~a & b).sum()),
              "neither": int((~a & ~b).sum())}
    table = [[counts["both"], counts["base_only"]], [counts["other_only"], counts["neither"]]]
    return counts, float(mcnemar(table, exact=True).pvalue)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (statsmodels multipletests)."""
    if not pvalues:
        return []
    from statsmodels.stats.multitest import multipletests

    return [float(p) for p in multipletests(list(pvalues), alpha=ALPHA, method="holm")[1]]


def _interval(lo: float, hi: float) -> list[float]:
    return [float(lo), float(hi)]


def _group(diffs: dict[str, np.ndarray], langs: Sequence[str], resampling: Resampling, n_boot: int, seed: int
           ) -> dict[str, Any] | None:
    """Mean over the languages of the paired per-item differences (other - base; the same items for both runs),
    items resampled as `resampling` says (jointly across languages when they are parallel); with the smallest mean
    change detectable at POWER (two-sided ALPHA) from the bootstrap SD of the mean difference."""
    langs = [lang for lang in langs if lang in diffs]
    if not langs:
        return None
    iv = bootstrap_mean_accuracy({lang: diffs[lang] for lang in langs}, n_boot, seed, resampling=resampling)
    return {"langs": list(langs), "diff": iv.value, "ci95": _interval(iv.lo, iv.hi),
            "excludes_zero": bool(iv.lo > 0 or iv.hi < 0), "sd": iv.sd,
            "mde80": detectable_change(iv.sd, ALPHA, POWER), "resampling": resampling.record()}


def _shares(preds: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    n = max(len(preds), 1)
    return {label: sum(p == label for p in preds) / n for label in labels}


def _share_change(base: Run, other: Run, lang: str, mode: str) -> np.ndarray:
    """[n, labels] per-item change of the one-hot predicted label (other - base)."""
    def one_hot(preds: list[str]) -> np.ndarray:
        return np.array([[p == label for label in base.labels] for p in preds], dtype=np.float64).reshape(
            len(preds), len(base.labels))

    return one_hot(other.preds(lang, mode)) - one_hot(base.preds(lang, mode))


def compare_pair(base: Run, other: Run, mode: str, seen: Sequence[str] | None, n_boot: int, seed: int
                 ) -> dict[str, Any]:
    """One scoring mode of base vs other: per language, mean, seen/unseen groups, prior shift. Means over languages
    resample items jointly when the languages are parallel (base.resampling)."""
    per_lang: dict[str, Any] = {}
    diffs: dict[str, np.ndarray] = {}
    share_diffs: dict[str, np.ndarray] = {}
    for lang in base.langs:
        ca, cb = base.correct(lang, mode), other.correct(lang, mode)
        d = cb.astype(np.float64) - ca.astype(np.float64)  # [n]
        diffs[lang] = d
        share_diffs[lang] = _share_change(base, other, lang, mode)  # [n, labels]
        mean, lo, hi = bootstrap_mean(d, n_boot, seed)
        counts, p = mcnemar_exact(ca, cb)
        sa, sb = _shares(base.preds(lang, mode), base.labels), _shares(other.preds(lang, mode), base.labels)
        per_lang[lang] = {
            "n": len(d), "base": float(ca.mean()), "other": float(cb.mean()), "diff": float(mean),
            "ci95": _interval(lo, hi), **counts, "p": p,
            "seen": None if seen is None else lang in seen,
            "predicted_share": {label: {"base": sa[label], "other": sb[label], "change": sb[label] - sa[label]}
                                for label in base.labels},
        }
    for lang, p_holm in zip(per_lang, holm([v["p"] for v in per_lang.values()])):
        per_lang[lang]["p_holm"] = p_holm
        per_lang[lang]["significant"] = p_holm < ALPHA
        per_lang[lang]["mark"] = mark(p_holm)
    resampling = base.resampling()
    mean = _group(diffs, base.langs, resampling, n_boot, seed)
    assert mean is not None
    mean["base"] = float(np.mean([v["base"] for v in per_lang.values()]))
    mean["other"] = float(np.mean([v["other"] for v in per_lang.values()]))
    out: dict[str, Any] = {"languages": per_lang, "mean": mean}
    if seen is not None:
        for key, langs in (("seen", [lang for lang in base.langs if lang in seen]),
                           ("unseen", [lang for lang in base.langs if lang not in seen])):
            out[key] = _group(diffs, langs, base.resampling(langs), n_boot, seed) if langs else None
    _, lo, hi, _ = bootstrap_language_mean(share_diffs, resampling, n_boot, seed)  # each [labels]
    out["predicted_share"] = {
        label: {**{k: float(np.mean([v["predicted_share"][label][k] for v in per_lang.values()]))
                   for k in ("base", "other", "change")}, "change_ci95": _interval(lo[i], hi[i])}
        for i, label in enumerate(base.labels)}
    return out


def _run_accuracy(run: Run, modes: Sequence[str], n_boot: int, seed: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in modes:
        per = {}
        for lang in run.langs:
            iv = bootstrap_accuracy(run.correct(lang, mode).tolist(), n_boot, seed)
            per[lang] = {"accuracy": iv.value, "ci95": _interval(iv.lo, iv.hi)}
        resampling = run.resampling()
        m = bootstrap_mean_accuracy({lang: run.correct(lang, mode) for lang in run.langs}, n_boot, seed,
                                    resampling=resampling)
        out[mode] = {"languages": per, "mean": {"accuracy": m.value, "ci95": _interval(m.lo, m.hi),
                                                "resampling": resampling.record()}}
    return out


def _names(runs: Sequence[Path], names: Sequence[str] | None) -> list[str]:
    if names is not None:
        if len(names) != len(runs):
            raise QtalignError(f"--names: {len(names)} name(s) for {len(runs)} runs")
        if len(set(names)) != len(names):
            raise QtalignError(f"--names: a name is given twice ({', '.join(names)})")
        return list(names)
    out = [Path(r).name or str(r) for r in runs]
    if len(set(out)) != len(out):
        out = [str(Path(r)) for r in runs]
    return out


def compare_runs(runs: Sequence[Path], names: Sequence[str] | None = None, n_boot: int = 2000, seed: int = 0,
                 seen: Sequence[str] | None = None) -> dict[str, Any]:
    """Paired comparison of eval runs on the same items; the first run is the reference (base).

    Per other run and scoring mode (raw, then each calibration mode every run carries): per language the accuracy
    of both, the difference (other - base) with a paired percentile bootstrap interval, the exact McNemar p-value
    and its Holm correction over languages; the mean over languages with a paired interval; seen/unseen groups
    (languages of the adapters' training mixes, or `seen` if given); each label's predicted-share change. Means over
    languages resample item indices jointly across languages when every language has the same items (they are
    translations of one item set) and independently otherwise; `resampling` records which, and each mean carries
    the smallest change detectable at 80% power (`mde80`).
    """
    if len(runs) < 2:
        raise QtalignError("give at least two eval run folders to compare")
    if n_boot < 10:
        raise QtalignError(f"n_boot must be at least 10, got {n_boot}")
    run_names = _names([Path(r) for r in runs], names)
    loaded = [load_run(Path(r), n) for r, n in zip(runs, run_names)]
    base = loaded[0]
    notes = [n for r in loaded for n in r.notes]
    for other in loaded[1:]:
        notes += check_same_items(base, other)
    modes = [RAW] + [m for m in base.modes if all(m in r.modes for r in loaded[1:])]
    comparisons = []
    for other in loaded[1:]:
        if seen is not None:
            seen_langs: list[str] | None = list(seen)
            seen_from = "given"
        else:
            with_adapter = [r for r in (base, other) if r.adapter]
            known = [r for r in with_adapter if r.train_langs is not None]
            if with_adapter and len(known) == len(with_adapter):
                seen_langs = list(dict.fromkeys(x for r in known for x in (r.train_langs or [])))
                seen_from = "; ".join(f"{r.name}: {r.train_note}" for r in known)
            else:
                seen_langs = None
                seen_from = ("no adapter in either run" if not with_adapter else
                             "; ".join(f"{r.name}: {r.train_note}" for r in with_adapter if r.train_langs is None))
        comparisons.append({
            "base": base.name, "other": other.name, "seen_langs": seen_langs, "seen_from": seen_from,
            "scores": {mode: compare_pair(base, other, mode, seen_langs, n_boot, seed) for mode in modes},
        })
    return {
        "task": base.task,
        "languages": list(base.langs),
        "labels": list(base.labels),
        "modes": modes,
        "n_boot": n_boot,
        "seed": seed,
        "alpha": ALPHA,
        "power": POWER,
        "resampling": base.resampling().record(),
        "runs": [{"name": r.name, "path": str(r.path), "adapter": r.adapter, "train_langs": r.train_langs,
                  "n_items": len(r.rows),
                  "model": ((r.results or {}).get("model") or {}).get("model"),
                  "accuracy": _run_accuracy(r, modes, n_boot, seed)} for r in loaded],
        "comparisons": comparisons,
        "notes": notes,
    }


# ---- output ---------------------------------------------------------------------------------------------------
def _pct(x: float | None, signed: bool = False) -> str:
    if x is None or not np.isfinite(x):
        return "–"
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"


def _p(p: float) -> str:
    return "1" if p >= 0.9995 else (f"{p:.3f}" if p >= 0.001 else f"{p:.1e}")


def _ci(ci: Sequence[float]) -> str:
    return f"[{_pct(ci[0], True)}, {_pct(ci[1], True)}]"


def _mode_title(mode: str) -> str:
    return "raw" if mode == RAW else f"calibrated ({mode})"


def _comparison_rows(c: dict[str, Any], mode: str) -> tuple[list[str], list[list[str]]]:
    s = c["scores"][mode]
    head = ["lang", "n", c["base"], c["other"], "diff", "95% CI", "b/c", "p", "p Holm", "", "seen"]
    rows = []
    for lang, v in s["languages"].items():
        seen = "" if v["seen"] is None else ("seen" if v["seen"] else "unseen")
        rows.append([lang, str(v["n"]), _pct(v["base"]), _pct(v["other"]), _pct(v["diff"], True), _ci(v["ci95"]),
                     f"{v['base_only']}/{v['other_only']}", _p(v["p"]), _p(v["p_holm"]), v["mark"], seen])
    m = s["mean"]
    rows.append(["mean", "", _pct(m["base"]), _pct(m["other"]), _pct(m["diff"], True), _ci(m["ci95"]),
                 "", "", "", "", ""])
    for group in ("seen", "unseen"):
        g = s.get(group)
        if g:
            rows.append([f"{group} ({len(g['langs'])})", "", "", "", _pct(g["diff"], True), _ci(g["ci95"]),
                         "", "", "", "", ""])
    return head, rows


def _shift_rows(c: dict[str, Any], mode: str, labels: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    s = c["scores"][mode]
    head = ["lang"] + [f"{label} share" for label in labels]
    rows = []
    for lang, v in list(s["languages"].items()) + [("mean", {"predicted_share": s["predicted_share"]})]:
        cells = [lang]
        for lb in labels:
            x = v["predicted_share"][lb]
            ci = f" {_ci(x['change_ci95'])}" if x.get("change_ci95") else ""
            cells.append(f"{_pct(x['base'])} → {_pct(x['other'])} ({_pct(x['change'], True)}{ci})")
        rows.append(cells)
    return head, rows


def _text_table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = lambda r: "  ".join(x.ljust(w) if i == 0 else x.rjust(w) for i, (x, w) in enumerate(zip(r, widths)))
    return "\n".join([fmt(head)] + [fmt(r) for r in rows])


def md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table (cells' '|' escaped)."""
    esc = lambda x: str(x).replace("|", "\\|")
    lines = ["| " + " | ".join(esc(h) for h in head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(esc(x) for x in r) + " |" for r in rows]
    return "\n".join(lines)


LEGEND = ("accuracy in %; diff = other - base (points) with a paired bootstrap 95% interval; b/c = items only the "
          "base / only the other got right; p = exact McNemar; p Holm = Holm-corrected over languages; "
          "* p Holm < 0.05, ** < 0.01, *** < 0.001")


def _summary_line(c: dict[str, Any], mode: str) -> str:
    s = c["scores"][mode]
    m = s["mean"]
    sig = sum(v["significant"] for v in s["languages"].values())
    up = sum(v["significant"] and v["diff"] > 0 for v in s["languages"].values())
    parts = [f"mean {_pct(m['base'])} → {_pct(m['other'])} ({_pct(m['diff'], True)} {_ci(m['ci95'])})",
             f"{sig} of {len(s['languages'])} languages significant ({up} up, {sig - up} down)"]
    for group in ("seen", "unseen"):
        g = s.get(group)
        if g:
            parts.append(f"{group} {_pct(g['diff'], True)} {_ci(g['ci95'])}")
    return "; ".join(parts)


def power_line(mean: dict[str, Any], alpha: float = ALPHA, power: float = POWER) -> str:
    """How small a mean change this design could detect: reads 'not significant' correctly."""
    if mean.get("mde80") is None or not np.isfinite(mean["mde80"]):
        return "power: not computed for this comparison"
    return (f"power: the smallest mean change this design detects at {100 * power:.0f}% power (two-sided α = {alpha}) "
            f"is ±{100 * mean['mde80']:.1f} points (from the bootstrap SD of the mean difference, "
            f"{100 * mean['sd']:.1f}); a true change smaller than that will often come out not significant")


def scheme_line(result: dict[str, Any]) -> str:
    """Which resampling the means' intervals used ('' for a compare.json written before it was recorded)."""
    r = result.get("resampling")
    return f"intervals of means over languages: {r['text']}" if r else ""


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def format_compare(result: dict[str, Any]) -> str:
    """The printed tables: per comparison and scoring mode, per language, then the prior shift."""
    out = [f"task {result['task']}; {LEGEND}"]
    if scheme_line(result):
        out.append(scheme_line(result))
    for c in result["comparisons"]:
        for mode in result["modes"]:
            out.append(f"\n{c['other']} vs {c['base']}, {_mode_title(mode)}: {_summary_line(c, mode)}")
            out.append(power_line(c["scores"][mode]["mean"], result.get("alpha", ALPHA), result.get("power", POWER)))
            out.append(_text_table(*_comparison_rows(c, mode)))
        out.append(f"seen languages: {', '.join(c['seen_langs']) if c['seen_langs'] else 'unknown'}"
                   f" ({c['seen_from']})")
        for mode in result["modes"]:
            out.append(f"\npredicted share, {c['base']} → {c['other']}, {_mode_title(mode)}:")
            out.append(_text_table(*_shift_rows(c, mode, result["labels"])))
    out += [f"note: {n}" for n in result["notes"]]
    return "\n".join(out)


def format_compare_md(result: dict[str, Any]) -> str:
    out = [f"# Paired comparison, task {result['task']}", "", LEGEND + ".", ""]
    if scheme_line(result):
        out += [_sentence(scheme_line(result)), ""]
    out += ["Runs:", ""] + [f"- **{r['name']}**: `{r['path']}`" + (f", adapter `{r['adapter']}`" if r["adapter"] else "")
                            for r in result["runs"]] + [""]
    for c in result["comparisons"]:
        out += [f"## {c['other']} vs {c['base']}", ""]
        out += [f"Seen languages: {', '.join(c['seen_langs']) if c['seen_langs'] else 'unknown'} ({c['seen_from']}).",
                ""]
        for mode in result["modes"]:
            out += [f"### {_mode_title(mode).capitalize()}", "", _summary_line(c, mode) + ".", "",
                    _sentence(power_line(c["scores"][mode]["mean"], result.get("alpha", ALPHA),
                                         result.get("power", POWER))), "", md_table(*_comparison_rows(c, mode)), ""]
        for mode in result["modes"]:
            out += [f"### Predicted share, {_mode_title(mode)}", "", md_table(*_shift_rows(c, mode, result["labels"])),
                    ""]
    if result["notes"]:
        out += ["## Notes", ""] + [f"- {n}" for n in result["notes"]] + [""]
    return "\n".join(out)


def write_compare(result: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """out_dir/compare.json and out_dir/compare.md, written atomically."""
    out_dir = Path(out_dir)
    paths = {"json": out_dir / "compare.json", "md": out_dir / "compare.md"}
    atomic_write_json(paths["json"], result)
    atomic_write_text(paths["md"], format_compare_md(result))
    return paths
