"""Precision options of issue 26: whether a CPU has bfloat16 instructions (a bfloat16 run there is warned about),
and the benchmark's variant names."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from qtalign import models


def cpuinfo(tmp_path: Path, flags: str) -> str:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n", encoding="utf-8")
    return str(path)


def test_cpu_bf16_instructions(tmp_path: Path) -> None:
    assert models.cpu_bf16_instructions(cpuinfo(tmp_path, "fpu sse2 avx512f avx512_vnni")) is False
    assert models.cpu_bf16_instructions(cpuinfo(tmp_path, "fpu sse2 avx512f avx512_bf16")) is True
    assert models.cpu_bf16_instructions(cpuinfo(tmp_path, "fpu sse2 amx_bf16 amx_tile")) is True
    assert models.cpu_bf16_instructions(cpuinfo(tmp_path, "fp asimd bf16")) is None  # not x86: unknown
    assert models.cpu_bf16_instructions(str(tmp_path / "missing")) is None


def test_bfloat16_on_a_cpu_without_bf16_instructions_warns(tiny_llama: Path, monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(models, "cpu_bf16_instructions", lambda: False)
    with caplog.at_level(logging.WARNING, logger="qtalign.models"):
        models.load_model(str(tiny_llama), device="cpu", dtype="bfloat16")
    assert "slower than float32" in caplog.text
    caplog.clear()
    monkeypatch.setattr(models, "cpu_bf16_instructions", lambda: True)
    with caplog.at_level(logging.WARNING, logger="qtalign.models"):
        models.load_model(str(tiny_llama), device="cpu", dtype="bfloat16")
        models.load_model(str(tiny_llama), device="cpu", dtype="float32")
    assert "slower than float32" not in caplog.text
