#!/usr/bin/env bash
# The GPU checks of the issues in one go, on a machine with a CUDA GPU and this project importable:
#   1. pytest -m gpu: each experiment on the GPU against the CPU;
#   2. the whole lab as a process with --accelerator gpu and with --accelerator cpu on the same machine: wall
#      times and numbers compared;
#   3. benchmark (b) at 100000x10000 on the GPU (SIZE=... for another size).
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
  $py scripts/train.py --accelerator $acc --out "$work/lab_$acc" --log_dir "$work/logs" > "$work/lab_$acc.log" 2>&1 \
    || tail -5 "$work/lab_$acc.log"
  echo "$acc $start $(date +%s.%N)" >> "$work/process_seconds"
done
cp "$work/lab_gpu/lab2.md" "$out/lab2_gpu.md"
$py - "$work" > "$out/lab_compare.txt" 2>&1 <<'PY'
import json, sys
gpu, cpu = (json.load(open(f"{sys.argv[1]}/lab_{a}/results.json")) for a in ("gpu", "cpu"))
process = {acc: float(end) - float(start) for acc, start, end in (line.split() for line in open(f"{sys.argv[1]}/process_seconds"))}
print("device:", gpu["environment"]["device"], "| cpu:", cpu["environment"]["device"], cpu["environment"]["cpu_threads"], "threads")
print("whole lab as a process, s: gpu", round(process["gpu"], 1), "cpu", round(process["cpu"], 1))
print("trainings and report, s: gpu", round(gpu["wall_time_s"], 2), "cpu", round(cpu["wall_time_s"], 2))
gd = max(abs(a["gd_loss"] - b["gd_loss"]) for a, b in zip(gpu["factorisation"]["runs"], cpu["factorisation"]["runs"]))
print("max |gd_loss gpu - cpu| over seeds:", gd)
sweep = max(abs(a["gd_loss"] - b["gd_loss"]) for a, b in zip(gpu["rank_sweep"], cpu["rank_sweep"]))
print("max |gd_loss gpu - cpu| over the rank sweep:", sweep)
for split in ("train", "val"):
    same = [a[split]["acc_per_class"] == b[split]["acc_per_class"] for a, b in zip(gpu["mlp"]["runs"], cpu["mlp"]["runs"])]
    loss = max(abs(a[split]["loss"] - b[split]["loss"]) / b[split]["loss"] for a, b in zip(gpu["mlp"]["runs"], cpu["mlp"]["runs"]))
    print(f"{split}: per-class accuracies identical in {sum(same)}/{len(same)} seeds; max relative loss difference {loss:.2e}")
    print(f"  gpu acc {gpu['mlp']['summary'][split]['acc']}  cpu acc {cpu['mlp']['summary'][split]['acc']}")
PY
cat "$out/lab_compare.txt"

$py scripts/benchmark.py --skip a,c,d --device cuda --size "${SIZE:-100000x10000}" --repeats 5 \
  --json "$out/benchmark_gpu.json" > "$out/benchmark_gpu.md" 2> "$work/benchmark.err" || tail -5 "$work/benchmark.err"
cat "$out/benchmark_gpu.md"
