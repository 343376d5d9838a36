#!/usr/bin/env bash
# The GPU checks in one go, on a machine with a CUDA GPU and this project importable:
#   1. pytest -m gpu: each experiment on the GPU against the CPU;
#   2. the whole lab with --accelerator gpu and with --accelerator cpu: wall times and numbers side by side.
# Usage: scripts/gpu_check.sh OUTDIR    (writes a few small files into OUTDIR)
set -uo pipefail
out=${1:?usage: scripts/gpu_check.sh OUTDIR}
py=${PYTHON:-python3}
work=$(mktemp -d)
mkdir -p "$out"
export PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" 2>&1
$py -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)" >> "$out/gpu.txt"
cat "$out/gpu.txt"

$py -m pytest -m gpu -q -p no:cacheprovider > "$out/pytest_gpu.txt" 2>&1
tail -3 "$out/pytest_gpu.txt"

for acc in gpu cpu; do
  start=$(date +%s.%N)
  $py -m lab2_lightning --accelerator $acc --out "$work/lab_$acc" --log_dir "$work/logs_$acc" > "$work/lab_$acc.log" 2>&1 \
    || tail -5 "$work/lab_$acc.log"
  echo "$acc $(echo "$(date +%s.%N) - $start" | bc)" >> "$out/lab_seconds.txt"
done
cat "$out/lab_seconds.txt"
$py - "$work" <<'PY' | tee "$out/lab_compare.txt"
import json, sys
gpu, cpu = (json.load(open(f"{sys.argv[1]}/lab_{a}/results.json")) for a in ("gpu", "cpu"))
print("device:", gpu["environment"]["device"], "| cpu:", cpu["environment"]["device"])
gd = max(abs(a["gd_loss"] - b["gd_loss"]) for a, b in zip(gpu["factorisation"]["runs"], cpu["factorisation"]["runs"]))
print("max |gd_loss gpu - cpu| over seeds:", gd)
for split in ("train", "val"):
    print(split, "accuracy gpu", gpu["mlp"]["summary"][split]["acc"], "cpu", cpu["mlp"]["summary"][split]["acc"])
PY
