"""The loss curves of a training run: OUT/loss.png from its train and validation logs."""

from __future__ import annotations

from pathlib import Path

from qtalign.store import read_jsonl_rows


def plot_losses(out: Path) -> None:
    """OUT/loss.png: training loss per step and validation loss."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = read_jsonl_rows(out / "train_log.jsonl")
    va = read_jsonl_rows(out / "val_log.jsonl")
    fig, ax = plt.subplots(figsize=(6, 4))
    if tr:
        ax.plot([r["step"] for r in tr], [r["loss"] for r in tr], label="train", lw=1)
    if va:
        ax.plot([r["step"] for r in va], [r["val_loss"] for r in va], "o-", label="validation")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (output tokens)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=100)
    plt.close(fig)
