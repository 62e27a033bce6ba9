#!/usr/bin/python3
"""clxent's fused cross-entropy next to PyTorch's F.cross_entropy forward +
backward on the same shapes, in one command:

    /usr/bin/python3 tools/bench_vs_torch.py [--clxent build/clxent]
        [--device SPEC] [--shapes 65536x10,16x21x128x128,...] [--repeat K]
        [--dtype f32]

A shape is RxC (logits (R, C), targets (R,)) or PyTorch's NxCxD1[xD2..]
(logits (N, C, D1, ..), classes on axis 1, targets (N, D1, ..)), as
`clxent bench --shapes` takes them. clxent's numbers come from `clxent bench
--json --ops fused` (device time from profiling events); PyTorch's from wall
clock on the CPU (all its threads) and, when torch.cuda.is_available(), from
CUDA events. ratio is PyTorch time / clxent time, both medians (above 1:
clxent is faster).

Needs PyTorch and numpy (Debian: apt-get install python3-torch
python3-numpy; run with /usr/bin/python3).
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import time

DEFAULT_SHAPES = "65536x10,4096x1000,1024x32000,256x128256,8x1048576"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def find_clxent(given):
    if given:
        return given
    for pattern in ("build/clxent", "build*/clxent"):
        for path in sorted(glob.glob(os.path.join(ROOT, pattern))):
            if os.access(path, os.X_OK):
                return path
    sys.exit("bench_vs_torch: no clxent binary found; build it or pass --clxent")


def run_clxent(binary, args):
    cmd = [binary, "bench", "--json", "--ops", "fused", "--shapes", args.shapes,
           "--repeat", str(args.repeat), "--dtype", args.dtype]
    if args.device:
        cmd += ["--device", args.device]
    print("running:", " ".join(cmd), file=sys.stderr)
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(out.stdout)


def parse_shape(text):
    """(N, C, D1, ..) or (R, C) from "NxCxD1.." / "RxC"."""
    return tuple(int(d) for d in text.lower().split("x"))


def torch_time(torch, F, shape, dtype, device, repeat):
    """Median ms of F.cross_entropy forward + backward on logits of
    `shape` (classes on axis 1), or None."""
    cols = shape[1]
    gen = torch.Generator().manual_seed(hash(shape) & 0x7fffffff)
    x = (torch.rand(*shape, generator=gen) * 8 - 4).to(dtype).to(device)
    y = torch.randint(0, cols, shape[:1] + shape[2:],
                      generator=gen).to(device)
    x.requires_grad_(True)
    cuda = device == "cuda"
    times = []
    try:
        for i in range(repeat + 1):  # the first run is the warm-up
            x.grad = None
            if cuda:
                start, end = (torch.cuda.Event(enable_timing=True),
                              torch.cuda.Event(enable_timing=True))
                start.record()
            t0 = time.perf_counter()
            F.cross_entropy(x, y).backward()
            if cuda:
                end.record()
                torch.cuda.synchronize()
                ms = start.elapsed_time(end)
            else:
                ms = (time.perf_counter() - t0) * 1e3
            if i:
                times.append(ms)
    except RuntimeError as error:  # e.g. a dtype the CPU kernels lack
        print(f"torch {device} {dtype} {shape}: {error}", file=sys.stderr)
        return None
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clxent", help="path of the clxent binary")
    parser.add_argument("--device", help="clxent device spec")
    parser.add_argument("--shapes", default=DEFAULT_SHAPES)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--dtype", default="f32", choices=["f32", "f16", "bf16"])
    args = parser.parse_args()

    try:
        import numpy  # noqa: F401 (torch's tensors need it here)
        import torch
        import torch.nn.functional as F
    except ImportError:
        sys.exit("bench_vs_torch: PyTorch or numpy is missing; run with "
                 "/usr/bin/python3 after\n"
                 "    apt-get install python3-torch python3-numpy")
    report = run_clxent(find_clxent(args.clxent), args)
    # Give PyTorch every core this process may use (its OpenMP default can
    # be 1 here), so the comparison is against its best CPU time.
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    tdtype = {"f32": torch.float32, "f16": torch.float16,
              "bf16": torch.bfloat16}[args.dtype]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

    dev = report["device"]
    print(f"clxent fused on {dev['spec']} ({dev['name']}), {args.dtype}, "
          f"copy roofline {report['copy_gbps']:.2f} GB/s; PyTorch "
          f"{torch.__version__} F.cross_entropy forward+backward on "
          f"{', '.join(devices)} ({torch.get_num_threads()} CPU threads)")
    header = (f"{'shape':>18} {'clxent ms':>10} {'Gelem/s':>8} {'roof':>5} "
              + "".join(f"{'torch ' + d + ' ms':>16} {'ratio':>8}"
                        for d in devices))
    print(header)
    for r in report["results"]:
        text = r.get("shape", f"{r['rows']}x{r['cols']}")
        shape, ms = parse_shape(text), r["median_ms"]
        line = (f"{text:>18} {ms:10.3f} {r['gelem_per_s']:8.3f} "
                f"{100 * r['roofline_fraction']:4.0f}%")
        for d in devices:
            t = torch_time(torch, F, shape, tdtype, d, args.repeat)
            line += (f"{t:16.3f} {t / ms:7.1f}x" if t is not None
                     else f"{'n/a':>16} {'':>8}")
        print(line, flush=True)


if __name__ == "__main__":
    main()
