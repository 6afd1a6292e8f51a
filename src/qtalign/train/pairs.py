"""Training pairs read from a file, and the guard that refuses test items or task answers as training data."""

from __future__ import annotations

from pathlib import Path

from qtalign.errors import QtalignError


def read_pairs(path: str | Path, max_pairs: int | None = None) -> list[tuple[str, str]]:
    """(input, output) pairs from our JSONL, an alpaca JSON list, or a paper *_train_question.json file."""
    from qtalign.data.readers import load_records

    path = Path(path)
    if not path.is_file():
        raise QtalignError(f"{path}: training data file not found")
    records = load_records(path)
    if not records:
        raise QtalignError(f"{path}: no training pairs")
    pairs: list[tuple[str, str]] = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise QtalignError(f"{path}: item {i}: expected a JSON object, found {type(rec).__name__}")
        if "instruction" in rec:
            inp = rec["instruction"] + ("\n" + rec["input"] if rec.get("input") else "")
            out = rec.get("output")
        else:
            inp, out = rec.get("input"), rec.get("output", rec.get("answer"))
        if not isinstance(inp, str) or not isinstance(out, str):
            raise QtalignError(f"{path}: item {i}: expected text fields 'input' and 'output' (or 'answer')")
        if not inp.strip() or not out.strip():
            raise QtalignError(f"{path}: item {i}: empty {'input' if not inp.strip() else 'output'}")
        pairs.append((inp, out))
        if max_pairs is not None and len(pairs) >= max_pairs:
            break
    return pairs


def _answer_words() -> set[str]:
    """Every gold answer word of every task in every language (normalized)."""
    from qtalign.tasks import TASKS

    return {w for task in TASKS.values() for lang in task.table for w in task.answer_map(lang)}


def refuse_test_data(path: str | Path, pairs: list[tuple[str, str]]) -> None:
    """Question-translation tuning never sees task answers: a file named like a test split (*_test*, as `data build`
    refuses) or whose outputs are mostly label words is a QtalignError unless --allow-test-data."""
    from qtalign.tasks import normalize_answer

    path = Path(path)
    if "_test" in path.name:
        raise QtalignError(f"--data {path}: named like a task's test split; training on evaluation items contaminates "
                           "every later score (build pairs with `qtalign data build`, or pass --allow-test-data)")
    words = _answer_words()
    hits = [o for _, o in pairs if normalize_answer(o) in words]
    if pairs and len(hits) * 2 >= len(pairs):
        raise QtalignError(f"--data {path}: {len(hits)} of {len(pairs)} outputs are task answers (label words such as "
                           f"{hits[0]!r}), not translated questions; pass --allow-test-data to train on them anyway")
