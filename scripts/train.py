"""``python scripts/train.py [COMMAND] [OPTIONS]``: the same program as ``lab2`` (no command: the whole lab)."""

from lab2_lightning.main import main

if __name__ == "__main__":
    main()
