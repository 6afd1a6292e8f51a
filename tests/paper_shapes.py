"""Evaluation scripts in the shape of the paper's (literal tables + if/elif prompt building), written from a demos
file or from small made-up tables, for tests of `qtalign data fetch` (the real scripts are never copied here)."""

from __future__ import annotations

from collections.abc import Sequence

HEADER = '''import os
os.system("touch EXECUTED")  # a parser that runs this file would leave EXECUTED behind

target_lang = 'en'
'''


def _literal(text: str) -> str:
    if "'''" in text or text.endswith("'") or "\\" in text:
        return repr(text)
    return "'''" + text + "'''"


def script_text(prefixes: dict[str, str], tables: Sequence[tuple[str, dict[str, str]]], fields: Sequence[str],
                cues: dict[str, dict[str, str]], gold_key: str = "target_lang") -> str:
    """A script in the paper's shape: prompt_prefix = {...}, *_answers = {...}, and per language
    `input = [prompt_prefix['xx'] + '\\n' + "Cue: " + p + "\\nCue2: " + h + '\\nAnswer: \\"' for p, h in zip(...)]`."""
    out = [HEADER, "prompt_prefix = {" + ",\n                 ".join(
        f"{lang!r}: {_literal(p)}" for lang, p in prefixes.items()) + "}\n"]
    for name, table in tables:
        out.append(f"{name} = {{" + ", ".join(f"{k!r}:{v!r}" for k, v in table.items()) + "}\n")
    names = ["i"] if len(fields) == 1 else [f"v{k}" for k in range(len(fields))]
    if len(fields) == 1:
        loop = f"for i in inputs[{fields[0]!r}]"
    else:
        loop = f"for {', '.join(names)} in zip({', '.join(f'inputs[{f!r}]' for f in fields)})"
    out.append("for step, inputs in enumerate(sample_iterator):")
    for n, (lang, c) in enumerate(cues.items()):
        expr = f"prompt_prefix[{lang!r}]"
        for k, (field, var) in enumerate(zip(fields, names)):
            cue = c.get(field, "")
            if k == 0:
                expr += " + '\\n'" + (f" + {cue!r}" if cue else "") + f" + {var}"
            else:
                expr += f" + {chr(10) + cue!r} + {var}"
        expr += " + " + repr("\n" + c["answer"]).replace('"', '\\"')
        out.append(f"    {'if' if n == 0 else 'elif'} target_lang == {lang!r}:")
        out.append(f"        input = [{expr} {loop}]")
    first = tables[0][0]
    out.append("    for i in range(len(output)):")
    out.append(f"        if (output[i].startswith({first}['en'])):")
    key = "target_lang" if gold_key == "target_lang" else repr(gold_key)
    out.append(f"            if (inputs['answer'][i] == {first}[{key}]):")
    out.append("                correct_num += 1")
    return "\n".join(out) + "\n"


def script_from_demos(demos: dict, gold_key: str = "target_lang", drop_native: Sequence[str] = ()) -> str:
    """The script a demos file (layout of shared/data/paper/demos) was read from, up to layout and line numbers."""
    langs = list(demos["demos"])
    fields = demos["item_fields"][:-1]
    tables = []
    names = ["positive_answers", "neutral_answers", "negative_answers"]
    labels = demos["canonical_labels"]
    for name, label in zip(names if len(labels) == 3 else [names[0], names[2]], labels):
        table = {}
        for lang in langs:
            if lang in drop_native:
                continue
            word = demos["demos"][lang]["label_words"]["native"][label]
            table[lang] = "" if word is None else word
        tables.append((name, table))
    cues = {lang: demos["demos"][lang]["query_cues"] for lang in langs}
    return script_text({lang: demos["demos"][lang]["prefix"] for lang in langs}, tables, fields, cues, gold_key)
