"""``python scripts/report.py reports/results.json``: the lab report again, without training (= ``lab2 report``)."""

import sys

from lab2_lightning.main import main

if __name__ == "__main__":
    main(["report", *sys.argv[1:]])
