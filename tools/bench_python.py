#!/usr/bin/env python3
"""What the Python binding costs over the C call, and what clxent.torch
gains over F.cross_entropy in a training step, side by side in one run:

    python tools/bench_python.py [--device SPEC] [--shapes 4x10,4096x1000,1024x32000]
                                 [--repeat K] [--json]

Run it with a Python that has the package installed (README, "In
Python"); f32 logits, int64 class indices, reduction mean, on the device
the spec names (default: CLXENT_DEVICE, else a GPU, else ...). Per shape:

  c_ms       the C calls the binding makes, made directly (through
             cffi, about a microsecond each): on a CPU device logits and
             gradient wrapped where they lie, else copied in and out;
  c_copy_ms  the same with every array copied in and out of buffers
             allocated once (what wrapping saves);
  py_ms      Context.cross_entropy on numpy arrays: c_ms plus the
             binding's checks and descriptors (binding_us the difference);
  torch_ms   F.cross_entropy(x, y).backward() on a CPU tensor, all of
             PyTorch's threads;
  drop_ms    clxent.torch.cross_entropy(x, y).backward(), same tensors.

Wall-clock medians over --repeat runs after a warm-up, the four measured in
turn inside each repetition so that load on the machine hits them alike.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np


def median_ms(samples):
    return 1e3 * statistics.median(samples)


def c_sequence(ctx, x, y, loss, grad, in_place):
    """The C calls Context.cross_entropy makes, made straight through cffi:
    with in_place (what the binding does on a CPU device for arrays of
    64 KiB or more), logits and gradient wrapped where they lie
    (clxent_buffer_wrap_host) each call and the gradient made visible by a
    read into itself; else every array copied through buffers allocated
    once (clxent_buffer_write, clxent_buffer_read)."""
    from clxent._lib import check, ffi, lib
    from clxent._stage import IN_PLACE_MIN_BYTES
    rows, cols = x.shape
    c = ctx._ptr
    arrays = (x, y, loss, grad)
    wrap = [in_place and a.nbytes >= IN_PLACE_MIN_BYTES for a in arrays]
    bufs = []
    for a, w in zip(arrays, wrap):
        out = ffi.new("clxent_buffer **")
        check(lib.clxent_buffer_create(c, max(a.nbytes, 64), out), c)
        bufs.append(None if w else ffi.gc(out[0], lib.clxent_buffer_release))
    t = [ffi.new("clxent_tensor *") for _ in arrays]
    for d, n, classes, dtype in zip(t, (rows, rows, 1, rows), (cols, 1, 1, cols),
                                    (lib.CLXENT_F32, lib.CLXENT_I64, lib.CLXENT_F32,
                                     lib.CLXENT_F32)):
        d.outer, d.classes, d.inner, d.dtype = n, classes, 1, dtype
        d.outer_stride, d.class_stride, d.inner_stride = classes, 1, 1
    targets = ffi.new("clxent_tensor_targets *")
    w = ffi.new("clxent_vector *")
    opts = ffi.new("clxent_options *")
    lib.clxent_options_init(opts)
    mem = [ffi.from_buffer(a) for a in arrays]

    def call():
        held = []
        for i, a in enumerate(arrays):
            if wrap[i]:
                out = ffi.new("clxent_buffer **")
                check(lib.clxent_buffer_wrap_host(c, mem[i], a.nbytes, out), c)
                held.append(ffi.gc(out[0], lib.clxent_buffer_release))
                t[i].buffer = held[-1]
            else:
                t[i].buffer = bufs[i]
                if i < 2:
                    check(lib.clxent_buffer_write(c, bufs[i], 0, a.nbytes, mem[i]), c)
        targets.indices = t[1][0]
        check(lib.clxent_cross_entropy_nd(c, t[0], targets, w, opts, ffi.NULL, t[2],
                                          ffi.NULL, ffi.NULL, t[3], ffi.NULL), c)
        for i in (2, 3):
            check(lib.clxent_buffer_read(c, t[i].buffer, 0, arrays[i].nbytes, mem[i]), c)
    return call


def bench_shape(ctx, rows, cols, repeat, torch, F, ct, device):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, cols), dtype=np.float32)
    y = rng.integers(0, cols, rows).astype(np.int64)
    loss, grad = np.zeros((), np.float32), np.empty_like(x)
    runs = {"c_ms": c_sequence(ctx, x, y, loss, grad, ctx._host_memory),
            "c_copy_ms": c_sequence(ctx, x, y, loss, grad, False)}

    def py_call():
        ctx.cross_entropy(x, y)

    runs["py_ms"] = py_call
    if torch is not None:
        xt = torch.from_numpy(x.copy()).requires_grad_()
        yt = torch.from_numpy(y)

        def torch_step(fn):
            def step():
                xt.grad = None
                fn(xt, yt).backward()
            return step
        runs["torch_ms"] = torch_step(F.cross_entropy)
        runs["drop_ms"] = torch_step(lambda a, b: ct.cross_entropy(a, b, device=device))
    samples = {k: [] for k in runs}
    for fn in runs.values():  # warm-up: kernel builds, buffer pools
        fn()
    for _ in range(repeat):
        for k, fn in runs.items():
            start = time.perf_counter()
            fn()
            samples[k].append(time.perf_counter() - start)
    got = {k: round(median_ms(v), 4) for k, v in samples.items()}
    got["binding_us"] = round(1e3 * (got["py_ms"] - got["c_ms"]), 1)
    if torch is not None:
        got["drop_in_speedup"] = round(got["torch_ms"] / got["drop_ms"], 2)
    return {"shape": f"{rows}x{cols}", **got}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device")
    ap.add_argument("--shapes", default="4x10,64x1000,4096x1000,1024x32000")
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import clxent
    try:
        import clxent.torch as ct
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("bench_python: no torch (apt-get install python3-torch); "
              "binding overhead only", file=sys.stderr)
        torch = F = ct = None
    if torch is not None:  # every core, as bench_vs_torch.py (its default is 1 here)
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    ctx = clxent.Context(args.device)
    results = []
    for shape in args.shapes.split(","):
        rows, cols = (int(d) for d in shape.lower().split("x"))
        results.append(bench_shape(ctx, rows, cols, args.repeat, torch, F, ct, args.device))
    info = {"device": ctx.device["name"], "spec": ctx.device["spec"],
            "torch_threads": torch.get_num_threads() if torch else None,
            "repeat": args.repeat, "results": results}
    if args.json:
        print(json.dumps(info, indent=1))
        return
    print(f"device {info['spec']} {info['device']}, torch threads {info['torch_threads']}, "
          f"medians of {args.repeat}")
    keys = [k for k in ("c_copy_ms", "c_ms", "py_ms", "binding_us", "torch_ms", "drop_ms",
                        "drop_in_speedup") if k in results[0]]
    print(f"{'shape':>12} " + " ".join(f"{k:>15}" for k in keys))
    for r in results:
        print(f"{r['shape']:>12} " + " ".join(f"{r[k]:>15}" for k in keys))


if __name__ == "__main__":
    main()
