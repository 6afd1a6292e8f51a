"""The training loss: summed cross-entropy over output tokens, with a chunked autograd function for a frozen head."""

from __future__ import annotations

from typing import Any

import torch

from qtalign.train.encode import IGNORE

VOCAB_CHUNK = 8192  # vocabulary rows of the head unembedded at a time


class _FrozenHeadCrossEntropy(torch.autograd.Function):
    """Summed cross-entropy of (optionally soft-capped) h @ W.T against targets, for a frozen head W.

    One pass over the vocabulary in chunks with an online log-sum-exp (as in flash attention): each chunk of W is
    used for its logits and, at once, for its share of the gradient with respect to h, rescaled as the running
    maximum grows. Peak extra memory is [N, VOCAB_CHUNK] instead of [N, V], and W is read once per step.
    """

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,  # type: ignore[override]
                softcap: float | None, chunk: int) -> torch.Tensor:
        w = weight.detach()  # [V, H]
        hf = h.detach().float()  # [N, H]
        n = hf.shape[0]
        m = torch.full((n, 1), -torch.inf, device=h.device)  # running max of the logits
        s = torch.zeros((n, 1), device=h.device)  # running sum of exp(logit - m)
        acc = torch.zeros_like(hf)  # running sum of exp(logit - m) * dlogit/draw @ W_chunk  [N, H]
        for start in range(0, w.shape[0], chunk):
            wc = w[start : start + chunk].float()  # [C, H]
            z = hf @ wc.T  # [N, C]
            if softcap:
                t = torch.tanh(z / softcap)
                z = t * softcap
            m_new = torch.maximum(m, z.max(dim=1, keepdim=True).values)
            scale = torch.exp(m - m_new)  # [N, 1]
            e = torch.exp(z - m_new)  # [N, C]
            s = s * scale + e.sum(dim=1, keepdim=True)
            if softcap:
                e = e * (1 - t * t)  # d(softcap * tanh(x / softcap))/dx
            acc = acc * scale + e @ wc
            m = m_new
        wt = w[targets].float()  # [N, H] target rows
        zt = (hf * wt).sum(dim=1)  # [N] target logits before capping
        dt = torch.ones_like(zt)
        if softcap:
            tt = torch.tanh(zt / softcap)
            zt, dt = tt * softcap, 1 - tt * tt
        lse = m[:, 0] + torch.log(s[:, 0])  # [N]
        loss = (lse - zt).sum()
        grad_h = acc / s - dt[:, None] * wt  # dloss/dh = softmax-weighted rows - the target's row
        ctx.save_for_backward(grad_h.to(h.dtype))
        return loss

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        (grad_h,) = ctx.saved_tensors
        return grad_h * grad_out.to(grad_h.dtype), None, None, None, None


def output_loss(peft_model: Any, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy over output tokens only: hidden states from the decoder, lm_head at output positions.

    With a frozen bias-free head (LoRA elsewhere, the usual case) the unembedding runs over vocabulary chunks with
    its gradient taken at once (_FrozenHeadCrossEntropy); otherwise plain autograd through the head.
    ids, mask, labels: [B, T] (labels IGNORE outside the outputs); returns a scalar.
    """
    base = peft_model.get_base_model()
    body = base.base_model  # decoder stack incl. final norm
    head = base.get_output_embeddings()
    softcap = getattr(base.config, "final_logit_softcapping", None)
    hidden = body(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state  # [B, T, H]
    targets = labels[:, 1:]  # [B, T-1]: token t+1 is predicted at position t
    keep = targets != IGNORE  # [B, T-1]
    h = hidden[:, :-1][keep]  # [N, H]
    t = targets[keep]  # [N]
    frozen = type(head) is torch.nn.Linear and head.bias is None and not head.weight.requires_grad
    # the head and the log-softmax always in the head's own dtype, also under --autocast (bf16 logits over a 262k
    # vocabulary would round each logit by up to 0.125)
    with torch.autocast(device_type=h.device.type, enabled=False):
        if frozen and torch.is_grad_enabled():
            return _FrozenHeadCrossEntropy.apply(h, head.weight, t, softcap, VOCAB_CHUNK)
        logits = head(h.to(head.weight.dtype)).float()  # [N, V]
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        return torch.nn.functional.cross_entropy(logits, t, reduction="sum")
