#!/usr/bin/python3
"""Checks `clxent run` against PyTorch float64 on randomly drawn cases.

    /usr/bin/python3 tools/check_run_vs_torch.py [--clxent build/clxent]
        [--device SPEC] [--cases 30] [--seed 1] [--dtypes f32,f16,bf16]
        [--keep DIR]

Each case draws a shape and every option `clxent run` has (reduction,
class weights, ignore_index -100 or inside [0, C), label smoothing, z-loss,
grad scale, int32 / int64 class indices or probability targets, storage
dtype), writes the .npy inputs to a temporary folder, runs the binary, and
compares loss, gradient and lse with PyTorch in float64 (F.cross_entropy
plus autograd; z-loss as z * logsumexp^2 per valid row, divided like the
mean; SEMANTICS.md's zero gradient for ignored rows and for an all-ignored
mean).

Error measure per output element: |got - ref| / max(1, |ref|) (so absolute
for gradients below 1). A case fails above 2e-6 for f32 storage; for f16
and bf16 the gradient is stored in that type first, so its bound adds one
rounding (u * |ref| / max(1, |ref|), u = 2^-11 or 2^-8). NaN must match
NaN. Exit status: 0 when every case passes, 1 otherwise (2: usage).

Needs Debian's python3 (python3-torch, numpy).
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

TOL = 2e-6
UNIT = {"f32": 0.0, "f16": 2.0 ** -11, "bf16": 2.0 ** -8}


def f32(v):
    return float(np.float32(v))


def round_storage(a, dtype):
    a = np.asarray(a, dtype=np.float32)
    if dtype == "f32":
        return a.copy()
    t = torch.from_numpy(a.copy()).to(
        torch.float16 if dtype == "f16" else torch.bfloat16)
    return t.to(torch.float32).numpy()


def draw(rng, dtypes):
    c = {}
    c["rows"] = int(rng.choice([0, 1, 2, 3, 5, 8, 17, 64]))
    c["cols"] = int(rng.choice([1, 2, 3, 7, 8, 31, 33, 64, 65, 100, 130, 257,
                                   1000, 1025, 4097]))
    if c["rows"] * c["cols"] > 70000:
        c["rows"] = 3
    c["dtype"] = str(rng.choice(dtypes))
    c["reduction"] = str(rng.choice(["none", "sum", "mean"]))
    c["probs"] = bool(rng.random() < 0.3)
    c["index_dtype"] = str(rng.choice(["i32", "i64"]))
    c["weights"] = bool(rng.random() < 0.5)
    c["eps"] = f32(rng.choice([0.0, 0.0, 0.1, 0.37, 1.0]))
    c["z"] = f32(rng.choice([0.0, 0.0, 1e-4, 1e-2, 0.3]))
    c["G"] = f32(rng.choice([1.0, 1.0, 0.5, -2.0, 3.25]))
    c["ignore"] = None
    if not c["probs"] and rng.random() < 0.6:
        c["ignore"] = int(rng.choice([-100, -1, 0, c["cols"] - 1, 100000]))
    c["scale"] = float(rng.choice([1.0, 3.0, 10.0, 100.0]))
    return c


def make_inputs(rng, c):
    R, C = c["rows"], c["cols"]
    x = round_storage(rng.standard_normal((R, C)) * c["scale"], c["dtype"])
    y = probs = w = None
    if c["probs"]:
        probs = F.softmax(torch.from_numpy(rng.standard_normal((R, C))),
                          1).numpy()
        probs = round_storage(probs, c["dtype"])
    else:
        y = rng.integers(0, C, size=R).astype(np.int64)
        if c["ignore"] is not None:
            y[rng.random(R) < 0.3] = c["ignore"]
    if c["weights"]:
        w = (rng.random(C) * 1.5 + 0.25).astype(np.float32)
    return x, y, probs, w


def reference(c, x, y, probs, w):
    R = c["rows"]
    ii = c["ignore"] if c["ignore"] is not None else -100
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64) if w is not None else None
    lse = torch.logsumexp(xt, 1)
    if y is not None:
        yt = torch.tensor(y)
        valid = yt != ii
        target, extra = yt, dict(ignore_index=ii)
    else:
        valid = torch.ones(R, dtype=torch.bool)
        target, extra = torch.tensor(probs, dtype=torch.float64), {}
    loss = F.cross_entropy(xt, target, weight=wt, reduction=c["reduction"],
                           label_smoothing=c["eps"], **extra)
    if c["z"] != 0:
        zt = torch.where(valid, c["z"] * lse * lse, torch.zeros_like(lse))
        if c["reduction"] == "none":
            loss = loss + zt
        elif c["reduction"] == "sum":
            loss = loss + zt.sum()
        else:
            if y is None:
                den = float(R)
            elif wt is None:
                den = float(valid.sum())
            else:
                den = float(wt[yt[valid]].sum())
            loss = loss + zt.sum() / den
    loss.backward(torch.full(loss.shape, c["G"], dtype=torch.float64))
    grad = xt.grad.numpy().copy()
    valid = valid.numpy()
    grad[~valid] = 0.0
    if c["reduction"] == "mean" and y is not None and not valid.any():
        grad[:] = 0.0
    return loss.detach().numpy(), grad, lse.detach().numpy()


def max_error(got, ref, u):
    """Largest |got - ref| / max(1, |ref|), whether all are within the
    bound (TOL, plus u*|ref|/max(1,|ref|) for 16-bit stored values), and
    the largest error / bound ratio (or why the comparison failed)."""
    got = np.asarray(got, dtype=np.float64).reshape(-1)
    ref = np.asarray(ref, dtype=np.float64).reshape(-1)
    if got.shape != ref.shape:
        return float("inf"), False, "shape %s, want %s" % (got.shape,
                                                            ref.shape)
    nan_ok = np.array_equal(np.isnan(got), np.isnan(ref))
    inf = np.isinf(ref)
    inf_ok = np.array_equal(got[inf], ref[inf])
    fin = np.isfinite(ref)
    if not nan_ok or not inf_ok or not np.isfinite(got[fin]).all():
        return float("inf"), False, "NaN/inf pattern differs"
    den = np.maximum(1.0, np.abs(ref[fin]))
    err = np.abs(got[fin] - ref[fin]) / den
    bound = TOL * (1 + u) + u * np.abs(ref[fin]) / den
    worst = float(err.max()) if err.size else 0.0
    ratio = float((err / bound).max()) if err.size else 0.0
    return worst, ratio <= 1.0, ratio


def describe(c):
    parts = ["%dx%d" % (c["rows"], c["cols"]), c["dtype"], c["reduction"],
             "probs" if c["probs"] else c["index_dtype"]]
    if c["weights"]:
        parts.append("weights")
    if c["ignore"] is not None:
        parts.append("ignore=%d" % c["ignore"])
    if c["eps"]:
        parts.append("eps=%g" % c["eps"])
    if c["z"]:
        parts.append("z=%g" % c["z"])
    if c["G"] != 1:
        parts.append("G=%g" % c["G"])
    parts.append("scale=%g" % c["scale"])
    return " ".join(parts)


def run_case(args, k, c, rng, folder):
    x, y, probs, w = make_inputs(rng, c)
    d = os.path.join(folder, "case%03d" % k)
    os.makedirs(d, exist_ok=True)
    path = lambda n: os.path.join(d, n)  # noqa: E731
    np.save(path("x.npy"), x)
    cmd = [args.clxent, "run", "--logits", path("x.npy"),
           "--reduction", c["reduction"], "--dtype", c["dtype"],
           "--label-smoothing", repr(c["eps"]), "--z-loss", repr(c["z"]),
           "--grad-scale", repr(c["G"]), "--loss-out", path("loss.npy"),
           "--grad-out", path("grad.npy"), "--lse-out", path("lse.npy")]
    if args.device:
        cmd[2:2] = ["--device", args.device]
    if probs is not None:
        np.save(path("probs.npy"), probs)
        cmd += ["--probs", path("probs.npy")]
    else:
        np.save(path("y.npy"),
                y.astype(np.int32 if c["index_dtype"] == "i32" else
                         np.int64))
        cmd += ["--targets", path("y.npy")]
    if c["ignore"] is not None:
        cmd += ["--ignore-index", str(c["ignore"])]
    if w is not None:
        np.save(path("w.npy"), w)
        cmd += ["--weights", path("w.npy")]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        return float("inf"), float("inf"), False, "exit %d: %s" % (
            p.returncode, (p.stderr or p.stdout).strip()[:300])
    loss, grad, lse = reference(c, x, y, probs, w)
    try:
        got = [np.load(path(n)) for n in ("loss.npy", "grad.npy", "lse.npy")]
    except (OSError, ValueError) as e:
        return float("inf"), float("inf"), False, "reading outputs: %s" % e
    worst, ratio, ok, why = 0.0, 0.0, True, []
    for name, g, r, u in (("loss", got[0], loss, 0.0),
                          ("grad", got[1], grad, UNIT[c["dtype"]]),
                          ("lse", got[2], lse, 0.0)):
        if np.asarray(g).shape != np.asarray(r).shape:
            return float("inf"), float("inf"), False, \
                "%s shape %s, want %s" % (name, np.asarray(g).shape,
                                          np.asarray(r).shape)
        e, good, q = max_error(g, r, u)
        worst = max(worst, e)
        if isinstance(q, str):
            ratio = float("inf")
        else:
            ratio = max(ratio, q)
        if not good:
            ok = False
            why.append("%s: max rel %.3g %s" % (
                name, e, q if isinstance(q, str) else
                "(%.3g x bound)" % q))
    return worst, ratio, ok, "; ".join(why)


def main():
    ap = argparse.ArgumentParser(
        description="Compare `clxent run` with PyTorch float64.")
    ap.add_argument("clxent_pos", nargs="?", metavar="CLXENT",
                    help="path of the clxent binary (same as --clxent)")
    ap.add_argument("--clxent", default=None,
                    help="path of the clxent binary (default build/clxent)")
    ap.add_argument("--device", default=None,
                    help="device spec passed to clxent run")
    ap.add_argument("--cases", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dtypes", default="f32,f16,bf16")
    ap.add_argument("--keep", default=None,
                    help="write the cases into this folder and keep them")
    args = ap.parse_args()
    args.clxent = args.clxent or args.clxent_pos or "build/clxent"
    dtypes = args.dtypes.split(",")
    if any(d not in UNIT for d in dtypes):
        ap.error("--dtypes: f32, f16, bf16")
    if not os.access(args.clxent, os.X_OK):
        ap.error("%s: not an executable (build it, or pass its path)"
                 % args.clxent)
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    failures = 0
    worst_f32, worst_ratio = 0.0, 0.0
    with tempfile.TemporaryDirectory(prefix="clxent_check_") as tmp:
        folder = args.keep or tmp
        for k in range(args.cases):
            c = draw(rng, dtypes)
            worst, ratio, ok, why = run_case(args, k, c, rng, folder)
            if c["dtype"] == "f32":
                worst_f32 = max(worst_f32, worst)
            worst_ratio = max(worst_ratio, ratio)
            failures += not ok
            print("%3d %-4s max rel err %.3g (%.2f x bound)  %s%s" % (
                k, "ok" if ok else "FAIL", worst, ratio, describe(c),
                ("  <- " + why) if why else ""))
    print("%d/%d cases agree with PyTorch float64 on device %s: worst f32 "
          "relative error %.3g (bound %.0e), worst error/bound %.3g over "
          "all dtypes" % (args.cases - failures, args.cases,
                          args.device or "default", worst_f32, TOL,
                          worst_ratio))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
