"""Train Lab 2's experiments: ``python scripts/train.py --config configs/factorise.yaml`` (``--help`` for more)."""

from lab2_lightning.cli import main

if __name__ == "__main__":
    main()
