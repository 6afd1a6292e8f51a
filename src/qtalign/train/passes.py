"""Forward and backward passes: one optimizer step's gradients over micro-batches and processes, validation loss."""

from __future__ import annotations

from typing import Any

import torch

from qtalign.batchsize import BatchSizer, free_device_memory, is_oom
from qtalign.distributed import Dist
from qtalign.errors import QtalignError
from qtalign.train.encode import Example, collate, output_tokens, pieces
from qtalign.train.loss import output_loss


@torch.no_grad()
def validation_loss(peft_model: Any, examples: list[Example], batches: list[list[int]], pad_id: int,
                    device: torch.device, micro: int | None = None, progress: bool = False,
                    dist: Dist | None = None) -> float:
    """Mean loss per output token over the validation batches, each run in pieces of at most `micro` pairs; in a
    multi-process run each process reads every world-th batch and the sums are added over the processes."""
    from tqdm import tqdm

    peft_model.eval()
    total = 0.0
    n = sum(output_tokens(examples[i]) for b in batches for i in b)
    world, rank = (dist.world, dist.rank) if dist is not None else (1, 0)
    for b in tqdm(batches[rank::world], desc="validation", unit="batch", leave=False, disable=not progress):
        for piece in pieces(b, micro):
            ids, mask, labels = collate([examples[i] for i in piece], pad_id)
            total += float(output_loss(peft_model, ids.to(device), mask.to(device), labels.to(device)))
    if dist is not None and dist.enabled:
        total = float(dist.all_reduce_sum(torch.tensor([total], dtype=torch.float64, device=device))[0])
    peft_model.train()
    return total / max(n, 1)


def accumulate_step(peft_model: Any, examples: list[Example], group: list[list[int]], pad_id: int,
                    device: torch.device, sizer: BatchSizer, dist: Dist | None = None) -> tuple[float, int, int]:
    """Forward and backward of one optimizer step's batches, in micro-batches of sizer.size pairs; gradients of
    the summed loss / output tokens accumulate in .grad, identical (up to rounding) for any micro-batch size.

    In a multi-process run (dist) this process runs every world-th batch of the step, and the processes' gradients,
    losses and token counts are summed (all_reduce_step): the global batch stays batch_size x grad_accum.

    Returns (summed loss, output tokens, tokens seen) of the whole step. An out-of-memory error (adaptive sizer) clears
    the gradients, halves the micro-batch and redoes this process's share of the step; a fixed sizer makes it one error
    line (raised on every process).
    """
    n_tok = sum(output_tokens(examples[i]) for b in group for i in b)  # the step's, over all processes
    if dist is None or not dist.enabled:
        loss_sum, seen = _forward_backward(peft_model, examples, group, n_tok, pad_id, device, sizer)
        return loss_sum, n_tok, seen
    error: QtalignError | None = None
    try:
        loss_sum, seen = _forward_backward(peft_model, examples, group[dist.rank :: dist.world], n_tok, pad_id,
                                           device, sizer)
    except QtalignError as e:  # the others still join the all-reduce, then all raise it
        loss_sum, seen, error = 0.0, 0, e
    params = [p for p in peft_model.parameters() if p.requires_grad]
    loss_sum, seen, failed = all_reduce_step(params, dist, loss_sum, seen, error is not None)
    if failed:

        def report() -> None:
            if error is not None:
                raise error

        dist.agree(report)
    return loss_sum, n_tok, seen


def _forward_backward(peft_model: Any, examples: list[Example], batches: list[list[int]], n_tok: int, pad_id: int,
                      device: torch.device, sizer: BatchSizer) -> tuple[float, int]:
    """accumulate_step's forward and backward passes over batches, with its out-of-memory rule; returns (summed loss,
    tokens seen)."""
    while True:
        failed: str | None = None
        try:
            loss_sum, seen = 0.0, 0
            for b in batches:
                for piece in pieces(b, sizer.size):
                    ids, mask, labels = collate([examples[i] for i in piece], pad_id)
                    loss = output_loss(peft_model, ids.to(device), mask.to(device), labels.to(device))
                    (loss / n_tok).backward()
                    loss_sum += float(loss.detach())
                    seen += int(mask.sum())
            sizer.ran()
            return loss_sum, seen
        except (RuntimeError, torch.cuda.OutOfMemoryError) as e:
            if not is_oom(e):
                raise
            failed = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        peft_model.zero_grad(set_to_none=True)
        free_device_memory()
        try:
            sizer.shrink(failed)
        except QtalignError as e:
            raise QtalignError(str(e).replace("--batch-size", "--micro-batch")) from None


def all_reduce_step(params: list[torch.Tensor], dist: Dist, loss_sum: float, seen: int,
                    failed: bool = False) -> tuple[float, int, bool]:
    """Sum the processes' accumulated gradients of one optimizer step (in place, one flat float32 buffer), their
    summed loss and token count, and whether any process failed. Each process's gradients are already divided by the
    step's global token count, so the sum is the one-process gradient up to the order of float additions."""
    device = params[0].device
    # every trainable weight's gradient in one buffer: [P], P = the trainable parameter count
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float() for p in params])
    dist.all_reduce_sum(flat)
    offset = 0
    for p in params:
        g = flat[offset : offset + p.numel()].view_as(p).to(p.dtype)
        p.grad = g.clone() if p.grad is None else p.grad.copy_(g)
        offset += p.numel()
    totals = dist.all_reduce_sum(torch.tensor([loss_sum, float(seen), float(failed)], dtype=torch.float64,
                                              device=device))  # [3]
    return float(totals[0]), int(totals[1]), bool(totals[2] > 0)
