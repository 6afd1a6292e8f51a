"""`python -m qtalign`: the qtalign command (also what `torchrun -m qtalign` and `accelerate launch -m qtalign` run)."""

from __future__ import annotations

import sys

from qtalign.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
