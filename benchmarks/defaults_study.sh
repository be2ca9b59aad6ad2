#!/usr/bin/env bash
# Candidate defaults on the robustness suite, side by side: one process per variant, all at once
# (for a GPU machine; Self2Seg only, the baselines are in benchmarks/out/robustness.json).
#
#   bash benchmarks/defaults_study.sh OUTDIR DEVICE SECONDS
#
# Each variant's rows go to OUTDIR/NAME.json after every family (a run cut short keeps what it
# measured), its log to OUTDIR/NAME.log.
set -u
out=${1:-benchmarks/out/study}; device=${2:-cuda}; limit=${3:-420}
mkdir -p "$out"
export PYTHONPATH=src:benchmarks${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
declare -A variants=(
    [default]='{}'
    [bg_only]='{"experts": ["auto", "network"]}'
    [constants]='{"experts": ["constant"]}'
    [networks]='{"experts": ["network"]}'
    [mu]='{"mu": 0.02}'
)
for name in "${!variants[@]}"; do
    timeout "$limit" $py benchmarks/robustness.py --device "$device" --no-baselines \
        --family samples dsb nuclei shapes textures --variant "${variants[$name]}" \
        --out "$out/$name.json" >"$out/$name.log" 2>&1 &
done
wait
for name in "${!variants[@]}"; do echo "== $name"; grep -A8 "^$" "$out/$name.log" | head -8; done
