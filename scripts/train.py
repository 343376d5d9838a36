"""Run Lab 2: the whole lab with no command, or ``fit``, ``validate``, ``test``, ``predict``, ``lab``, ``report``
(``lab2 ...`` once installed). ``python scripts/train.py fit --config factorise``; ``--help`` for more."""

from lab2_lightning.cli import main

if __name__ == "__main__":
    main()
