"""``python -m lab2_lightning``: the same as ``lab2`` and ``python scripts/train.py``."""

from lab2_lightning.cli import main

main()
