"""The paper's fixed demonstrations, read from its evaluation scripts' literal tables with `ast` (never executed)."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qtalign.errors import QtalignError
from qtalign.languages import PAPER_LANGS
from qtalign.store import sha256_json


@dataclass(frozen=True)
class ScriptSpec:
    """What qtalign knows about one of the paper's English-label ("enout") evaluation scripts."""

    task: str  # name used in the demos file (emotion, snli, paws), as in the paper's file names
    qtalign_task: str  # the same task in qtalign.tasks (emotion, nli, paraphrase)
    script: str  # path under DEST
    test_file: str  # path under DEST of a language's test file, {lang} filled in
    placeholders: tuple[tuple[str, str], ...] = ()  # field -> name used in prompt_assembly (else the field name)
    native_variant: bool = False  # the paper also ran this task with native-label demonstrations (same prefixes)


SCRIPTS: dict[str, ScriptSpec] = {
    s.task: s
    for s in (
        ScriptSpec("emotion", "emotion", "scripts/emotion_eval_2shot_enout.py", "emotion/emotion_{lang}500_test.json",
                   placeholders=(("input", "text"),), native_variant=True),
        ScriptSpec("snli", "nli", "scripts/snli_eval_6shot_enout.py", "snli/snli_{lang}600_test.json"),
        ScriptSpec("paws", "paraphrase", "scripts/paws_eval_4shot_enout.py", "paws/paws_{lang}500_test.json"),
    )
}

PREFIX_TABLE = "prompt_prefix"  # the scripts' dict of per-language demonstration blocks
LABEL_TABLE_SUFFIX = "_answers"  # positive_answers, neutral_answers, negative_answers
LANG_VARIABLE = "target_lang"
PROMPT_VARIABLE = "input"
_ANSWER_LINE = re.compile(r'^(?P<cue>.*?)"(?P<word>[^"]*)"(?P<trail>\s*)$')
_CUE = re.compile(r"^(?P<cue>.*?(?:: |：))")


def _fail(script: Path, line: int | None, message: str) -> QtalignError:
    where = f"{script}: line {line}" if line else str(script)
    return QtalignError(f"{where}: {message} (not in the shape of the paper's evaluation scripts)")


def _str_dict(node: ast.AST) -> dict[str, str] | None:
    """A dict literal of string constants to string constants, else None."""
    if not isinstance(node, ast.Dict):
        return None
    out: dict[str, str] = {}
    for k, v in zip(node.keys, node.values):
        if not (isinstance(k, ast.Constant) and isinstance(k.value, str)):
            return None
        if not (isinstance(v, ast.Constant) and isinstance(v.value, str)):
            return None
        out[k.value] = v.value
    return out


def _lines(node: ast.AST) -> str:
    return f"{node.lineno}-{node.end_lineno}"  # type: ignore[attr-defined]


@dataclass
class ScriptTables:
    """Everything the literals of one script determine."""

    prefixes: dict[str, str]
    prefix_lines: str
    label_tables: dict[str, dict[str, str]]  # table name -> {lang: word}, in file order
    label_table_lines: dict[str, str]
    fields: tuple[str, ...]  # test-file fields the prompt uses, in order
    cues: dict[str, dict[str, str]]  # lang -> {field: cue (may be ""), "answer": cue}
    building_lines: dict[str, int]  # lang -> line of its prompt assignment
    gold_table_key: str  # "target_lang" (gold compared with the test language's table) or a language code


def read_script(path: Path) -> ScriptTables:
    """Parse one evaluation script (literal constants only; nothing is imported or run)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, UnicodeDecodeError) as e:
        raise QtalignError(f"{path}: cannot read ({e})") from None
    except SyntaxError as e:
        raise QtalignError(f"{path}: line {e.lineno}: not valid Python ({e.msg})") from None
    prefixes: dict[str, str] | None = None
    prefix_lines = ""
    tables: dict[str, dict[str, str]] = {}
    table_lines: dict[str, str] = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            continue
        name = node.targets[0].id
        if name == PREFIX_TABLE:
            prefixes = _str_dict(node.value)
            if prefixes is None:
                raise _fail(path, node.lineno, f"{PREFIX_TABLE} is not a dict of string literals")
            prefix_lines = _lines(node)
        elif name.endswith(LABEL_TABLE_SUFFIX):
            table = _str_dict(node.value)
            if table is not None:
                tables[name], table_lines[name] = table, _lines(node)
    if not prefixes:
        raise _fail(path, None, f"no {PREFIX_TABLE} table")
    if not tables:
        raise _fail(path, None, f"no *{LABEL_TABLE_SUFFIX} label tables")
    for name, table in tables.items():
        if not table.get("en"):
            raise _fail(path, None, f"label table {name} has no English word")
    fields, cues, lines = _prompt_building(path, tree, prefixes)
    return ScriptTables(prefixes, prefix_lines, tables, table_lines, fields, cues, lines, _gold_key(tree))


def _lang_of_test(test: ast.AST) -> str | None:
    """'xx' for a test `target_lang == 'xx'`."""
    if (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == LANG_VARIABLE
            and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)
            and isinstance(test.comparators[0], ast.Constant) and isinstance(test.comparators[0].value, str)):
        return test.comparators[0].value
    return None


def _flatten_add(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _flatten_add(node.left) + _flatten_add(node.right)
    return [node]


def _input_field(path: Path, node: ast.AST) -> str:
    """'premise' for `inputs['premise']`."""
    if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)):
        return node.slice.value
    raise _fail(path, getattr(node, "lineno", None), "expected inputs['<field>'] in the prompt comprehension")


def _comprehension_fields(path: Path, comp: ast.ListComp) -> dict[str, str]:
    """Loop variable -> test-file field, from `for i in inputs['input']` or `for p, h in zip(inputs[..], ...)`."""
    if len(comp.generators) != 1:
        raise _fail(path, comp.lineno, "expected one `for` in the prompt comprehension")
    gen = comp.generators[0]
    if isinstance(gen.target, ast.Name):
        return {gen.target.id: _input_field(path, gen.iter)}
    if (isinstance(gen.target, ast.Tuple) and isinstance(gen.iter, ast.Call) and isinstance(gen.iter.func, ast.Name)
            and gen.iter.func.id == "zip" and len(gen.iter.args) == len(gen.target.elts)
            and all(isinstance(e, ast.Name) for e in gen.target.elts)):
        return {e.id: _input_field(path, a) for e, a in zip(gen.target.elts, gen.iter.args)}  # type: ignore[attr-defined]
    raise _fail(path, comp.lineno, "unexpected loop in the prompt comprehension")


def _prompt_building(path: Path, tree: ast.Module, prefixes: dict[str, str]
                     ) -> tuple[tuple[str, ...], dict[str, dict[str, str]], dict[str, int]]:
    """Per language, the cue before each field and the answer cue, from
    `input = [prompt_prefix['xx'] + '\\n' + "Cue: " + p + "\\nCue2: " + h + '\\nAnswer: "' for p, h in zip(...)]`."""
    cues: dict[str, dict[str, str]] = {}
    lines: dict[str, int] = {}
    fields: tuple[str, ...] | None = None
    for node in ast.walk(tree):
        if not isinstance(node, ast.If) or (lang := _lang_of_test(node.test)) is None:
            continue
        for stmt in node.body:
            if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                    and stmt.targets[0].id == PROMPT_VARIABLE and isinstance(stmt.value, ast.ListComp)):
                continue
            variables = _comprehension_fields(path, stmt.value)
            parts: list[Any] = []  # str (literal text) or ("var", field) or ("prefix", lang)
            for leaf in _flatten_add(stmt.value.elt):
                if isinstance(leaf, ast.Constant) and isinstance(leaf.value, str):
                    if parts and isinstance(parts[-1], str):
                        parts[-1] += leaf.value
                    else:
                        parts.append(leaf.value)
                elif isinstance(leaf, ast.Name) and leaf.id in variables:
                    parts.append(("var", variables[leaf.id]))
                elif (isinstance(leaf, ast.Subscript) and isinstance(leaf.value, ast.Name)
                      and leaf.value.id == PREFIX_TABLE and isinstance(leaf.slice, ast.Constant)):
                    parts.append(("prefix", leaf.slice.value))
                else:
                    raise _fail(path, stmt.lineno, "prompt expression holds something other than literals, the "
                                                   f"{PREFIX_TABLE} entry and the loop variables")
            if not parts or parts[0] != ("prefix", lang):
                raise _fail(path, stmt.lineno, f"the prompt for {lang!r} does not start with {PREFIX_TABLE}[{lang!r}]")
            body = parts[1:]
            if len(body) % 2 != 1 or not all(isinstance(p, str) for p in body[0::2]):
                raise _fail(path, stmt.lineno, "expected literal text between the prompt's fields")
            lang_cues: dict[str, str] = {}
            for text, var in zip(body[0:-1:2], body[1::2]):
                if not text.startswith("\n"):
                    raise _fail(path, stmt.lineno, "expected each field on its own line ('\\n' + cue + field)")
                lang_cues[var[1]] = text[1:]
            if not body[-1].startswith("\n"):
                raise _fail(path, stmt.lineno, "expected the answer cue on its own line")
            lang_cues["answer"] = body[-1][1:]
            these = tuple(v[1] for v in body[1::2])
            if fields is not None and these != fields:
                raise _fail(path, stmt.lineno, f"the prompt for {lang!r} uses fields {these}, others use {fields}")
            fields = these
            cues[lang], lines[lang] = lang_cues, stmt.lineno
    if fields is None:
        raise _fail(path, None, f"no `{PROMPT_VARIABLE} = [...]` prompt building under `if {LANG_VARIABLE} == ...`")
    missing = sorted(set(prefixes) - set(cues))
    if missing:
        raise _fail(path, None, f"no prompt building for language(s) {', '.join(missing)}")
    return fields, cues, lines


def _gold_key(tree: ast.Module) -> str:
    """Which label table the script compares gold answers with: `... == positive_answers[target_lang]` gives
    "target_lang"; `... == positive_answers['en']` gives "en"."""
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Compare) and len(node.comparators) == 1):
            continue
        left, right = node.left, node.comparators[0]
        is_gold = (isinstance(left, ast.Subscript) and isinstance(left.value, ast.Subscript)
                   and isinstance(left.value.slice, ast.Constant) and left.value.slice.value == "answer")
        if is_gold and isinstance(right, ast.Subscript) and isinstance(right.value, ast.Name) \
                and right.value.id.endswith(LABEL_TABLE_SUFFIX):
            if isinstance(right.slice, ast.Name):
                return right.slice.id
            if isinstance(right.slice, ast.Constant):
                return str(right.slice.value)
    return LANG_VARIABLE


# ---- demos file ----------------------------------------------------------------------------------------------
def tables_digest(demos: dict[str, Any]) -> str:
    """sha256 of what the script literals determine (prefix, cues, label words per language): pinned per task."""
    return sha256_json({lang: {k: d[k] for k in ("prefix", "query_cues", "label_words")}
                        for lang, d in demos["demos"].items()})


def _read_test(path: Path) -> list[dict[str, Any]] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise QtalignError(f"{path}: not a JSON list of test items") from None
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise QtalignError(f"{path}: not a JSON list of test items")
    return data


def build_demos(spec: ScriptSpec, dest: Path, repository: str, commit: str) -> dict[str, Any]:
    """The demos file of one task (layout of ../shared/data/paper/demos), from DEST/scripts and DEST's test files."""
    script = dest / spec.script
    t = read_script(script)
    tables = list(t.label_tables.values())
    canonical = [table["en"] for table in tables]
    en_to_label = dict(zip(canonical, canonical))
    langs = [c for c in PAPER_LANGS if c in t.prefixes] + [c for c in t.prefixes if c not in PAPER_LANGS]
    placeholders = dict(spec.placeholders)
    per = len(t.fields) + 1
    shots: int | None = None
    demos: dict[str, Any] = {}
    for lang in langs:
        prefix = t.prefixes[lang]
        cues = t.cues[lang]
        lines = prefix.split("\n")
        if len(lines) % per:
            raise _fail(script, None, f"{PREFIX_TABLE}[{lang!r}] has {len(lines)} lines, not a multiple of {per}")
        if shots is not None and len(lines) // per != shots:
            raise _fail(script, None, f"{PREFIX_TABLE}[{lang!r}] has {len(lines) // per} demonstrations, others {shots}")
        shots = len(lines) // per
        native = {c: (table.get(lang) or None) for c, table in zip(canonical, tables)}
        records = _read_test(dest / spec.test_file.format(lang=lang))
        test_labels = sorted({str(r.get("answer")) for r in records}) if records is not None else None
        quirks: list[str] = []
        items = []
        for k in range(shots):
            block = lines[k * per : (k + 1) * per]
            item: dict[str, Any] = {}
            for field, line in zip(t.fields, block[:-1]):
                cue = cues.get(field, "")
                if line.startswith(cue):
                    item[field] = line[len(cue):]
                    continue
                m = _CUE.match(line)
                if m is None:
                    raise _fail(script, None, f"{lang} demo {k}: line {line[:40]!r} has no cue for {field}")
                item[field] = line[m.end():]
                item[f"{field}_cue_in_prefix"] = m.group("cue")
                quirks.append(f"demo {k}: {field} line starts with {m.group('cue')!r}, not the query cue {cue!r}")
            m = _ANSWER_LINE.match(block[-1])
            if m is None or m.group("word") not in en_to_label:
                raise _fail(script, None, f"{lang} demo {k}: answer line {block[-1][:60]!r} does not end in a quoted "
                                          f"English label ({', '.join(canonical)})")
            item["answer"] = en_to_label[m.group("word")]
            if m.group("cue") + '"' != cues["answer"]:
                item["answer_cue_in_prefix"] = m.group("cue") + '"'
                quirks.append(f"demo {k}: answer line starts with {m.group('cue')!r}, not the query cue "
                              f"{cues['answer'][:-1]!r}")
            if m.group("trail"):
                item["answer_line_trailing"] = m.group("trail")
                quirks.append(f"demo {k}: answer line has trailing whitespace {m.group('trail')!r}")
            item["lines"] = block
            if len(t.fields) > 1 and len({item[f] for f in t.fields}) == 1:
                quirks.append(f"demo {k} {' and '.join(t.fields)} are the same string")
            if records is not None:
                _test_links(item, k, t.fields, records, quirks)
            items.append(item)
        entry: dict[str, Any] = {"prefix": prefix, "items": items,
                                 "query_cues": {k: v for k, v in cues.items() if v},
                                 "prompt_building_line": t.building_lines[lang],
                                 "label_words": {"enout": dict(zip(canonical, canonical)), "native": native},
                                 "test_file_labels": test_labels, "quirks": quirks}
        if test_labels is not None and t.gold_table_key == LANG_VARIABLE:
            absent = [(c, w) for c, w in native.items() if w is not None and w not in test_labels]
            if absent:
                which = ", ".join(f"{c} (table {w!r})" for c, w in absent)
                quirks.insert(0, f"native label-table word(s) absent from the test file's labels for {which}; test "
                                 f"file uses {test_labels}; the enout script scores gold by comparing the test item's "
                                 "answer with the table word, so these items can never count as correct")
        if spec.native_variant and all(native.values()):
            block_lines = list(lines)
            for k, item in enumerate(items):
                i = (k + 1) * per - 1
                m = _ANSWER_LINE.match(block_lines[i])
                assert m is not None
                block_lines[i] = f'{m.group("cue")}"{native[item["answer"]]}"{m.group("trail")}'
            entry["variants"] = {"native": {"prefix": "\n".join(block_lines), "demo_label_words": native}}
        demos[lang] = entry
    first = t.cues[langs[0]]
    assembly = "prefix + '\\n' + " + " + '\\n' + ".join(
        (f"query_cues.{f} + " if first.get(f) else "") + placeholders.get(f, f) for f in t.fields
    ) + " + '\\n' + query_cues.answer"
    building = sorted(t.building_lines.values())
    notes = [(f"Extracted by `qtalign data fetch paper` from the literal tables of {Path(spec.script).name} (parsed "
              "with ast, never executed); quirks are the ones qtalign detects mechanically.")]
    if t.gold_table_key == LANG_VARIABLE:
        notes.append("The script credits a prediction when the English label it picks maps, through its label tables, "
                     "to the test item's answer string in the test language's table.")
    else:
        notes.append(f"The script compares the test item's answer with the {t.gold_table_key!r} label table.")
    out: dict[str, Any] = {
        "task": spec.task,
        "source": {"repository": repository, "commit": commit, "script": Path(spec.script).name,
                   "prompt_prefix_lines": t.prefix_lines, "label_table_lines": t.label_table_lines,
                   "prompt_building_lines": f"{building[0]}-{building[-1]}"},
        "shots": shots,
        "item_fields": [*t.fields, "answer"],
        "canonical_labels": canonical,
        "languages": langs,
        "gold_compared_with": "test language's label table" if t.gold_table_key == LANG_VARIABLE
        else f"{t.gold_table_key} label table",
        "notes": notes,
        "prompt_assembly": assembly,
        "demos": demos,
    }
    if spec.native_variant:
        out["variants"] = {"native": {"derived": "the enout prefix with each demonstration's quoted label word "
                                                 "replaced by the script's native label-table word"}}
    return out


def _test_links(item: dict[str, Any], k: int, fields: tuple[str, ...], records: list[dict[str, Any]],
                quirks: list[str]) -> None:
    """Where a demonstration is (or shares a sentence with) a test item of its language."""
    texts = {str(item[f]).strip() for f in fields}
    hits = [i for i, r in enumerate(records) if {str(r.get(f, "")).strip() for f in fields} & texts]
    if len(fields) == 1:
        if hits:
            item["test_index"] = hits[0]
            item["test_item_answer"] = records[hits[0]].get("answer")
        else:
            item["in_test_file"] = False
        return
    item["in_test_file"] = bool(hits)
    if hits:
        item["test_indices_sharing_a_sentence"] = hits
        quirks.append(f"demo {k}: a sentence of this demo is identical to a sentence of test items {hits} of this "
                      "language")
