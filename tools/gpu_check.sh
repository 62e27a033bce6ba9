#!/usr/bin/env bash
# One prepared run on a machine with an NVIDIA GPU (CUDA toolkit, CMake and
# PyTorch present, no cmocka): build clxent without tests against the CUDA
# toolkit's OpenCL, then `clxent devices`, `clxent check` and
# `clxent bench` on the GPU, and PyTorch CUDA side by side.
# Usage: bash tools/gpu_check.sh [OUTDIR]   (logs and JSON land in OUTDIR)
set -u
out=${1:-${OUT:-/tmp/clxent-gpu}}
mkdir -p "$out"
cd "$(dirname "$0")/.."
log() { echo "== $* ($(date +%T))"; }

log "GPU"
nvidia-smi -L || true
search="/usr/local/cuda /usr/local/cuda-* /usr/local/nvidia /usr/lib /usr/lib64 /opt"
inc=$(find $search -path '*/CL/cl.h' 2>/dev/null | head -1)
lib=$(find $search -name 'libOpenCL.so*' 2>/dev/null | head -1)
icd=$(find $search -name 'libnvidia-opencl.so*' 2>/dev/null | head -1)
echo "cl.h: $inc"; echo "libOpenCL: $lib"; echo "NVIDIA ICD: $icd"
ls /etc/OpenCL/vendors 2>/dev/null
if ! grep -qs nvidia /etc/OpenCL/vendors/*.icd && [ -n "$icd" ]; then
  export OCL_ICD_FILENAMES=$icd
fi

log "build"
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCLXENT_BUILD_TESTS=OFF \
  -DOpenCL_INCLUDE_DIR="$(dirname "$(dirname "$inc")")" \
  -DOpenCL_LIBRARY="$lib" > "$out/cmake.log" 2>&1 || { cat "$out/cmake.log"; exit 1; }
cmake --build build-gpu -j"$(nproc)" --target clxent_cli > "$out/build.log" 2>&1 \
  || { tail -30 "$out/build.log"; exit 1; }
bin=build-gpu/clxent

log "devices"
$bin devices
log "check (gpu)"
timeout 240 $bin check --device gpu > "$out/check.txt" 2>&1; echo "check exit $?"
tail -25 "$out/check.txt"
log "bench (gpu, f32)"
timeout 180 $bin bench --device gpu --json --svg "$out/bench.svg" > "$out/bench.json" 2> "$out/bench.err"
echo "bench exit $?"
timeout 120 $bin bench --device gpu --ops fused --shapes 4096x4096,1024x32000,256x128256,64x1048576,8x1048576 --repeat 20
timeout 120 $bin bench --device gpu --ops fused,forward,backward --dtype bf16 --shapes 1024x32000,256x128256 --repeat 20
log "PyTorch CUDA side by side"
timeout 180 python3 tools/bench_vs_torch.py --clxent $bin --device gpu --repeat 20 2>&1 | tail -20
log "done"
