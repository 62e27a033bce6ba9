#!/usr/bin/env bash
# One prepared run on a machine with an NVIDIA GPU (CUDA toolkit, CMake and
# PyTorch present, no cmocka): build clxent without tests against the CUDA
# toolkit's OpenCL, then `clxent devices`, `clxent check` and
# `clxent bench` on the GPU (register-cached fused path on and off), and
# PyTorch CUDA side by side. Usage: bash tools/gpu_check.sh [OUTDIR]
set -u
out=${1:-${OUT:-/tmp/clxent-gpu}}
mkdir -p "$out"
cd "$(dirname "$0")/.."
log() { echo "== $* ($(date +%T))"; }

log "GPU"
nvidia-smi -L || true
search="/usr/local/cuda /usr/local/nvidia /usr/lib/x86_64-linux-gnu /usr/lib64 /opt"
inc=$(find $search -path '*/CL/cl.h' 2>/dev/null | head -1)
lib=$(find $search -name 'libOpenCL.so*' 2>/dev/null | head -1)
icd=$(find $search -name 'libnvidia-opencl.so*' 2>/dev/null | head -1)
echo "cl.h: $inc; libOpenCL: $lib; NVIDIA ICD: $icd"
if ! grep -qs nvidia /etc/OpenCL/vendors/*.icd 2>/dev/null && [ -n "$icd" ]; then
  export OCL_ICD_FILENAMES=$icd
fi

log "build"
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCLXENT_BUILD_TESTS=OFF \
  -DOpenCL_INCLUDE_DIR="$(dirname "$(dirname "$inc")")" \
  -DOpenCL_LIBRARY="$lib" > "$out/cmake.log" 2>&1 || { cat "$out/cmake.log"; exit 1; }
cmake --build build-gpu -j"$(nproc)" --target clxent_cli > "$out/build.log" 2>&1 \
  || { tail -30 "$out/build.log"; exit 1; }
b=build-gpu/clxent

log "devices"
$b devices
log "demo"
$b demo --device gpu | tail -4
log "check (gpu, full grid)"
timeout 120 $b check --device gpu > "$out/check.txt" 2>&1; echo "check exit $?"
tail -4 "$out/check.txt"
shapes=65536x10,4096x1000,4096x4096,1024x32000,512x50257,256x128256,8x1048576
log "bench fused f32: register path default (on)"
timeout 60 $b bench --device gpu --ops fused --shapes $shapes --repeat 20 --no-host
log "bench fused f32: CLXENT_GPU_CACHE=0 (two reads)"
CLXENT_GPU_CACHE=0 timeout 60 $b bench --device gpu --ops fused --shapes $shapes --repeat 20 --no-host
for wg in 512 1024; do
  log "bench fused f32: rows path, CLXENT_WORK_GROUP_SIZE=$wg (more items per row, fewer rows in flight: the second read from L2)"
  CLXENT_GPU_CACHE=0 CLXENT_WORK_GROUP_SIZE=$wg timeout 60 $b bench --device gpu --ops fused,forward,backward --shapes 4096x4096,1024x32000,256x128256 --repeat 20 --no-host
done
for cfg in "CLXENT_KT=4" "CLXENT_KT=16" "CLXENT_VEC=4 CLXENT_KT=2" "CLXENT_VEC=4 CLXENT_KT=4"; do
  log "bench f32 rows path, $cfg (loads in flight per item; float4 loads)"
  env CLXENT_GPU_CACHE=0 $cfg timeout 60 $b bench --device gpu --ops fused,forward,backward --shapes 4096x4096,1024x32000,256x128256 --repeat 20 --no-host
done
log "bench fused f32: CK=64 (512 items x 64)"
CLXENT_GPU_CACHE_CK=64 timeout 60 $b bench --device gpu --ops fused --shapes 4096x4096,1024x32000 --repeat 20 --no-host
log "bench fused bf16"
timeout 60 $b bench --device gpu --ops fused --dtype bf16 --shapes 4096x4096,1024x32000,256x128256 --repeat 20 --no-host
log "bench N-d (classes on axis 1): fused, forward, backward, softmax f32, and their 2-D equivalents"
nd=16x21x128x128,8x150x64x64,4x32000x16,262144x21,32768x150,64x32000
timeout 60 $b bench --device gpu --ops fused,forward,backward,softmax --shapes $nd --repeat 20 --no-host
log "bench all ops, default shapes (json + svg)"
timeout 120 $b bench --device gpu --repeat 20 --json --svg "$out/bench_gpu.svg" > "$out/bench_gpu.json" 2> "$out/bench_gpu.err"
echo "exit $?"; python3 -c "
import json; d=json.load(open('$out/bench_gpu.json'))
print('copy_gbps', round(d['copy_gbps']))
for r in d['results']: print(f\"{r['op']:12s} {r['rows']}x{r['cols']:<8d} {r['median_ms']:.4f} ms {r['gbps']:.0f} GB/s roof {r['roofline_fraction']:.2f} extra {r['extra_bytes']}\")"
log "PyTorch CUDA side by side"
timeout 120 python3 tools/bench_vs_torch.py --clxent $b --device gpu --repeat 20 2>&1 | tail -12
timeout 120 python3 tools/bench_vs_torch.py --clxent $b --device gpu --repeat 20 \
  --shapes 16x21x128x128,8x150x64x64,4x32000x16 2>&1 | tail -6
log "done"
