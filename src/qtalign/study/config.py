"""Study config files: presets, loading (validated, with one-line errors) and resolving relative paths."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from qtalign.errors import QtalignError
from qtalign.settings import load_config_file
from qtalign.study.schema import StudyConfig
from qtalign.study.validate import check_study

PKG_PREFIX = "pkg:"  # a path inside the installed qtalign package, e.g. pkg:demo/sentiment
PRESET_PREFIX = "preset:"


def preset_dir() -> Path:
    return Path(str(files("qtalign.study").joinpath("presets")))


def presets() -> list[str]:
    return sorted(p.stem for p in preset_dir().glob("*.yaml"))


def config_path(spec: str) -> tuple[Path, bool]:
    """(file, is_preset) for `preset:NAME` or a path."""
    if spec.startswith(PRESET_PREFIX):
        name = spec[len(PRESET_PREFIX):]
        path = preset_dir() / f"{name}.yaml"
        if not path.is_file():
            raise QtalignError(f"{spec}: no such preset (known: {', '.join(presets())})")
        return path, True
    return Path(spec), False


def load_study(spec: str, data_root: str | None = None, overrides: dict[str, Any] | None = None) -> StudyConfig:
    """Read, validate and check a study config (file path or preset:NAME); relative paths become absolute.

    Relative data paths resolve against data_root (the argument, else the config's `data_root`, itself relative to
    the config's folder), else the config's folder; for presets, against the current directory. overrides are
    top-level keys replacing the file's (for `qtalign demo`).
    """
    path, is_preset = config_path(spec)
    raw = load_config_file(path)
    raw.update(overrides or {})
    cfg = StudyConfig.parse(raw, str(path))
    home = Path.cwd() if is_preset else path.resolve().parent
    if data_root is not None:
        base = Path(data_root).resolve()
    elif cfg.data_root is not None:
        base = (home / cfg.data_root).resolve()
    else:
        base = home
    cfg = resolve_paths(cfg, base)
    check_study(cfg, str(path))
    return cfg


def resolve_path(value: str, base: Path) -> str:
    """pkg:REL -> inside the installed package; `demo` and hf:NAME unchanged; relative paths against base."""
    if value.startswith(PKG_PREFIX):
        return str(Path(str(files("qtalign"))) / value[len(PKG_PREFIX):])
    if value == "demo" or value.startswith("hf:"):
        return value
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def resolve_paths(cfg: StudyConfig, base: Path) -> StudyConfig:
    def opt(v: str | None) -> str | None:
        return None if v is None else resolve_path(v, base)

    def model_id(v: str) -> str:
        # a hub id stays as it is unless a folder/file of that name exists (or it is explicitly relative/pkg:)
        if v.startswith((PKG_PREFIX, "./", "../", "~")) or (base / v).exists() or Path(v).is_absolute():
            return resolve_path(v, base)
        return v

    models = tuple(m.model_copy(update={"id": model_id(m.id)}) for m in cfg.models)
    mixes = tuple(m.model_copy(update={"data": tuple(resolve_path(d, base) for d in m.data),
                                       "exclude": opt(m.exclude), "parallel": opt(m.parallel)}) for m in cfg.mixes)
    tasks = {k: t.model_copy(update={"data": resolve_path(t.data, base), "demos": opt(t.demos)})
             for k, t in cfg.eval.tasks.items()}
    ev = cfg.eval.model_copy(update={"tasks": tasks})
    return cfg.model_copy(update={"models": models, "mixes": mixes, "eval": ev, "data_root": str(base)})
