#!/usr/bin/env bash
# The CUDA checks in one run, for a machine with an NVIDIA GPU and a CUDA build of torch.
#
#   bash benchmarks/gpu_check.sh [OUTDIR]
#
# Needs numpy, torch, scikit-image, scipy, tifffile and pytest (no napari: only the core runs), and
# ../shared/data for the DSB cases. Writes one log per step to OUTDIR (default benchmarks/out/gpu):
# the device, the GPU tests, per-step times, end-to-end runs on the GPU, and the same runs on this
# machine's CPU as the baseline of the same session.
set -u
out=${1:-benchmarks/out/gpu}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
step() { # step NAME COMMAND...: run, log to OUTDIR/NAME.txt, never stop the script
    local name=$1; shift
    echo "== $name: $*"
    local t0=$SECONDS
    "$@" >"$out/$name.txt" 2>&1
    echo "   exit $? after $((SECONDS - t0)) s"; tail -n 25 "$out/$name.txt"
}
step device bash -c "nvidia-smi -L; nproc; $py -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(), torch.get_num_threads())'"
step tests $py -m pytest -q -p no:cacheprovider -p no:warnings -o addopts= -m gpu tests/core/test_cuda.py
step step_time_cuda $py benchmarks/step_time.py --device cuda
step step_time_cpu $py benchmarks/step_time.py --device cpu
step speed_cuda $py benchmarks/speed.py --device cuda --case textures dsb --size 256 512 1024 --preset fast
step classes_cuda $py benchmarks/classes_channels.py --device cuda --repeats 1
step paper_cuda $py benchmarks/speed.py --device cuda --case textures --size 256 --preset paper --max-outer 1
step speed_cpu $py benchmarks/speed.py --device cpu --case textures dsb --size 256 512 --preset fast
