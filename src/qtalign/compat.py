"""What differs between the transformers 5.x releases qtalign supports: the name of the KV-cache argument and output."""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def cache_name() -> str:
    """`cache` from transformers 5.24 on, `past_key_values` before (5.24 still accepts the old name with a
    deprecation warning, announced for removal in 5.40). Read from the installed release, not from its version string."""
    from transformers.modeling_outputs import BaseModelOutputWithPast

    fields = getattr(BaseModelOutputWithPast, "__dataclass_fields__", {})
    return "cache" if "cache" in fields else "past_key_values"


def cache_kwargs(cache: Any) -> dict[str, Any]:
    """The forward keyword that passes a KV cache to a decoder, for the installed transformers."""
    return {cache_name(): cache}


def output_cache(out: Any) -> Any:
    """The KV cache a decoder's forward returned (use_cache=True), for the installed transformers."""
    return getattr(out, cache_name())


def enable_checkpointing(model: Any) -> None:
    """Recompute activations in the backward pass (non-reentrant, so inputs need no grad): transformers 5.24 renamed
    gradient_checkpointing_enable to activation_checkpointing_enable (the old name warns)."""
    new = getattr(model, "activation_checkpointing_enable", None)
    if callable(new):
        new(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
