"""`python -m qtalign`: the qtalign command (also what `torchrun -m qtalign` and `accelerate launch -m qtalign` run)."""

from __future__ import annotations

from qtalign.cli.main import entry

if __name__ == "__main__":
    entry()
