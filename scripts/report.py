"""Rebuild the lab report from saved results, without training: ``python scripts/report.py reports/results.json``
(the same as ``lab2 report reports/results.json``)."""

import sys

from lab2_lightning.cli import main

if __name__ == "__main__":
    main(["report", *sys.argv[1:]])
