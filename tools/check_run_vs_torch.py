#!/usr/bin/python3
"""Checks `clxent run` against PyTorch float64.

    /usr/bin/python3 tools/check_run_vs_torch.py [--clxent build/clxent]
        [--device SPEC] [--cases 30] [--seed 1] [--dtypes f32,f16,bf16]
        [--keep DIR] [--no-coverage]

Two sets of cases, each written as .npy files into a temporary folder, run
through the binary and compared with PyTorch in float64:

- coverage (fixed, unless --no-coverage): every op (cross_entropy,
  nll_loss, log_softmax, softmax) on the shapes (C), (N, C), (N, C, d1),
  (N, C, d1, d2), (N, C, d1, d2, d3) and an 8-d one; log_softmax and
  softmax over every dim of a 4-d tensor (negative dims too) and of a 0-d
  one; every option alone and all together (class weights, ignore_index
  -100 or inside [0, C), label smoothing, z-loss, softcap, logit_scale,
  grad scale, each reduction, probability targets, int32 / int64 indices),
  in every storage dtype; inputs saved as float64, float16, big-endian and
  Fortran-order files; the old spelling --logits;
- random (--cases of them): all of the above drawn at random.

The reference: F.cross_entropy / F.nll_loss / F.log_softmax / F.softmax
plus autograd on the gradient of loss.sum() times the grad scale. PyTorch
has no logit transforms or z-loss: the reference applies
x' = softcap * tanh(logit_scale * x / softcap) (softcap 0: x' =
logit_scale * x) before F.cross_entropy, and adds z * logsumexp(x')^2 per
valid row (divided like the mean). SEMANTICS.md's zero gradient for
ignored rows and for an all-ignored mean is applied to the reference.

Error measure per output element: |got - ref| / max(1, |ref|) (so absolute
for values below 1). A case fails above 2e-6 for f32 storage (with a
softcap or logit_scale, 2e-6 * max(1, max|x'| / 8): x' is itself an f32
value, off by a few 2^-24 * |x'|); for f16
and bf16 the gradient and the log_softmax/softmax output are stored in
that type first, so their bound adds one rounding (u * |ref| /
max(1, |ref|), u = 2^-11 or 2^-8). NaN must match NaN. Exit status: 0 when
every case passes, 1 otherwise, 2 on usage errors, 77 without PyTorch.

Needs Debian's python3 with python3-torch and python3-numpy.
"""

import argparse
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as missing:
    print("check_run_vs_torch: %s; install PyTorch and numpy with "
          "`apt-get install python3-torch python3-numpy` and run this with "
          "/usr/bin/python3" % missing)
    sys.exit(77)

TOL = 2e-6
UNIT = {"f32": 0.0, "f16": 2.0 ** -11, "bf16": 2.0 ** -8}
LOSSES = ("cross_entropy", "nll_loss")
SOFTMAXES = ("log_softmax", "softmax")
LOSS_SHAPES = [(7,), (5, 7), (3, 6, 5), (2, 5, 3, 4), (2, 4, 3, 2, 3),
               (2, 3, 2, 1, 2, 3, 1, 2)]


def f32(v):
    return float(np.float32(v))


def round_storage(a, dtype):
    a = np.asarray(a, dtype=np.float32)
    if dtype == "f32":
        return a.copy()
    t = torch.from_numpy(a.copy()).to(
        torch.float16 if dtype == "f16" else torch.bfloat16)
    return t.to(torch.float32).numpy()


def base_case(op="cross_entropy", shape=(5, 7), dtype="f32"):
    return dict(op=op, shape=tuple(shape), dim=-1, dtype=dtype,
                reduction="mean", probs=False, index_dtype="i64",
                weights=False, eps=0.0, z=0.0, G=1.0, ignore=None,
                softcap=0.0, logit_scale=1.0, scale=3.0, fmt="f32",
                outputs=("loss", "grad") if op == "nll_loss"
                else ("loss", "grad", "lse"), spelling="input")


def coverage(dtypes):
    """The fixed cases: every op, shape, dim, option, dtype and file
    format at least once."""
    cases = []
    for k, op in enumerate(LOSSES):
        for j, shape in enumerate(LOSS_SHAPES):
            c = base_case(op, shape, dtypes[(j + k) % len(dtypes)])
            c["reduction"] = ("none", "sum", "mean")[j % 3]
            c["weights"] = j % 2 == 1
            c["ignore"] = (None, -100, 0)[j % 3]
            c["index_dtype"] = ("i32", "i64")[j % 2]
            cases.append(c)
        for dtype in dtypes:
            c = base_case(op, (4, 9, 3), dtype)
            c.update(weights=True, ignore=2, reduction="mean", G=-2.0)
            cases.append(c)
    for op in SOFTMAXES:
        for dim in range(-4, 4):
            cases.append(dict(base_case(op, (2, 3, 4, 5),
                                        dtypes[dim % len(dtypes)]), dim=dim))
        for shape, dim in (((), 0), ((), -1), ((6,), 0), (LOSS_SHAPES[-1], 3),
                           ((3, 0, 2), 1), ((4, 33), -1)):
            cases.append(dict(base_case(op, shape), dim=dim))
        cases.append(dict(base_case(op, (3, 8, 2)), dim=1, softcap=f32(2.5),
                          logit_scale=f32(1.7)))
    # Each option alone, then all at once, in every dtype.
    alone = [dict(weights=True), dict(ignore=-100), dict(ignore=3),
             dict(ignore=-1), dict(eps=f32(0.1)), dict(eps=1.0),
             dict(z=f32(1e-2)), dict(softcap=f32(4.0)),
             dict(softcap=f32(30.0), scale=30.0),
             dict(logit_scale=f32(0.37)), dict(logit_scale=f32(2.5)),
             dict(G=f32(3.25)), dict(reduction="none"), dict(reduction="sum"),
             dict(probs=True), dict(probs=True, eps=f32(0.2), weights=True),
             dict(index_dtype="i32")]
    everything = dict(weights=True, ignore=1, eps=f32(0.15), z=f32(1e-3),
                      softcap=f32(5.0), logit_scale=f32(1.5), G=f32(-0.5))
    for dtype in dtypes:
        for shape in ((6, 9), (3, 9, 4)):
            for opts in alone + [everything]:
                cases.append(dict(base_case("cross_entropy", shape, dtype),
                                  **opts))
            for red in ("none", "sum", "mean"):
                cases.append(dict(base_case("cross_entropy", shape, dtype),
                                  reduction=red, **everything))
                p = dict(everything, probs=True, ignore=None)
                cases.append(dict(base_case("cross_entropy", shape, dtype),
                                  reduction=red, **p))
    # Outputs one at a time (forward only, grad only), file formats, the
    # old spelling, wide rows, no rows, all rows ignored.
    for outs in (("loss",), ("grad",), ("lse",), ("loss", "lse")):
        cases.append(dict(base_case("cross_entropy", (3, 40, 2)),
                          outputs=outs))
    cases.append(dict(base_case("nll_loss", (3, 40, 2)), outputs=("loss",)))
    for fmt in ("f64", "big", "fortran", "f16", "big_targets"):
        for op in ("cross_entropy", "nll_loss", "softmax"):
            dtype = "f16" if fmt == "f16" else "f32"
            cases.append(dict(base_case(op, (3, 5, 4), dtype), fmt=fmt,
                              dim=1))
    cases.append(dict(base_case("cross_entropy", (6, 11)), spelling="logits"))
    cases.append(dict(base_case("cross_entropy", (3, 4100)), weights=True,
                      eps=f32(0.1), softcap=f32(8.0)))
    cases.append(dict(base_case("cross_entropy", (0, 5, 3)),
                      reduction="sum"))
    for op in LOSSES:
        cases.append(dict(base_case(op, (4, 6, 2)), ignore=-100,
                          fmt="all_ignored"))
    return cases


def draw(rng, dtypes):
    op = str(rng.choice(LOSSES + SOFTMAXES, p=[0.5, 0.2, 0.15, 0.15]))
    c = base_case(op, dtype=str(rng.choice(dtypes)))
    C = int(rng.choice([1, 2, 3, 7, 8, 31, 33, 64, 65, 100, 130, 257, 1000,
                        1025, 4097]))
    n = int(rng.choice([0, 1, 2, 3, 5, 8, 17, 64]))
    k = int(rng.choice([0, 0, 1, 2, 3]))
    rest = [int(rng.integers(1, 4)) for _ in range(k)]
    while n * C * int(np.prod(rest)) > 70000:
        if n > 3:
            n //= 2
        else:
            C = max(1, C // 4)
    c["shape"] = (C,) if rng.random() < 0.1 else tuple([n, C] + rest)
    if op in SOFTMAXES:
        c["dim"] = int(rng.integers(-len(c["shape"]), len(c["shape"])))
    c["reduction"] = str(rng.choice(["none", "sum", "mean"]))
    c["probs"] = op == "cross_entropy" and bool(rng.random() < 0.3)
    c["index_dtype"] = str(rng.choice(["i32", "i64"]))
    c["weights"] = bool(rng.random() < 0.5)
    if op == "cross_entropy":
        c["eps"] = f32(rng.choice([0.0, 0.0, 0.1, 0.37, 1.0]))
        c["z"] = f32(rng.choice([0.0, 0.0, 1e-4, 1e-2, 0.3]))
    if op != "nll_loss":
        c["softcap"] = f32(rng.choice([0.0, 0.0, 1.0, 5.0, 30.0]))
        c["logit_scale"] = f32(rng.choice([1.0, 1.0, 0.5, 2.0]))
    c["G"] = f32(rng.choice([1.0, 1.0, 0.5, -2.0, 3.25]))
    if op in LOSSES and not c["probs"] and rng.random() < 0.6:
        c["ignore"] = int(rng.choice([-100, -1, 0, C - 1, 100000]))
    c["scale"] = float(rng.choice([1.0, 3.0, 10.0, 100.0]))
    c["fmt"] = str(rng.choice(["f32", "f32", "f64", "big", "fortran"]))
    return c


def class_axis(c):
    if c["op"] in LOSSES:
        return 0 if len(c["shape"]) == 1 else 1
    nd = len(c["shape"])
    return 0 if nd == 0 else c["dim"] % nd


def make_inputs(rng, c):
    shape, axis = c["shape"], class_axis(c)
    raw = rng.standard_normal(shape) * c["scale"]
    if c["op"] == "nll_loss":  # log-probabilities
        raw = F.log_softmax(torch.from_numpy(np.asarray(raw)), axis).numpy()
    x = round_storage(raw, c["dtype"])
    y = probs = w = None
    C = shape[axis] if shape else 1
    rows = shape[:axis] + shape[axis + 1:]
    if c["op"] in LOSSES and c["probs"]:
        p = F.softmax(torch.from_numpy(rng.standard_normal(shape)), axis)
        probs = round_storage(p.numpy(), c["dtype"])
    elif c["op"] in LOSSES:
        y = np.asarray(rng.integers(0, C, size=rows), dtype=np.int64)
        if c["ignore"] is not None:
            y[np.asarray(rng.random(rows) < 0.3)] = c["ignore"]
            if c["fmt"] == "all_ignored":
                y[...] = c["ignore"]
    if c["weights"] and c["op"] in LOSSES:
        w = (rng.random(C) * 1.5 + 0.25).astype(np.float32)
    return x, y, probs, w


def transform(xt, c):
    if c["logit_scale"] != 1:
        xt = xt * c["logit_scale"]
    if c["softcap"] > 0:
        xt = c["softcap"] * torch.tanh(xt / c["softcap"])
    return xt


def reference(c, x, y, probs, w):
    """{output name: float64 array} as PyTorch computes them."""
    axis = class_axis(c)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    xp = transform(xt, c)
    if c["op"] in SOFTMAXES:
        fn = F.softmax if c["op"] == "softmax" else F.log_softmax
        return {"out": fn(xp, c["dim"]).detach().numpy()}
    ii = c["ignore"] if c["ignore"] is not None else -100
    wt = torch.tensor(w, dtype=torch.float64) if w is not None else None
    lse = torch.logsumexp(xp, axis)
    if y is not None:
        yt = torch.tensor(y)
        valid = yt != ii
    else:
        valid = torch.ones(lse.shape, dtype=torch.bool)
    if c["op"] == "nll_loss":
        loss = F.nll_loss(xp, yt, weight=wt, ignore_index=ii,
                          reduction=c["reduction"])
    else:
        target = yt if y is not None else torch.tensor(
            probs, dtype=torch.float64)
        extra = dict(ignore_index=ii) if y is not None else {}
        loss = F.cross_entropy(xp, target, weight=wt,
                               reduction=c["reduction"],
                               label_smoothing=c["eps"], **extra)
    if c["z"] != 0:
        zt = torch.where(valid, c["z"] * lse * lse, torch.zeros_like(lse))
        if c["reduction"] == "none":
            loss = loss + zt
        elif c["reduction"] == "sum":
            loss = loss + zt.sum()
        else:
            if y is None:
                den = float(valid.numel())
            elif wt is None:
                den = float(valid.sum())
            else:
                den = float(wt[yt[valid]].sum())
            loss = loss + zt.sum() / den
    loss.backward(torch.full(loss.shape, c["G"], dtype=torch.float64))
    grad = xt.grad.numpy().copy()
    v = np.expand_dims(valid.numpy(), axis)
    grad = np.where(v, grad, 0.0)
    if c["reduction"] == "mean" and y is not None and not valid.any():
        grad[...] = 0.0
    return {"loss": loss.detach().numpy(), "grad": grad,
            "lse": lse.detach().numpy()}


def transform_tol(c, x):
    """TOL, or more when a logit transform is on: each transformed logit
    x' is an f32 value (a rounded product, an f32 tanh), off by a few
    2^-24 * |x'|, which every output inherits as an absolute error; TOL
    (about 32 * 2^-24) covers |x'| up to 8."""
    if c["softcap"] == 0 and c["logit_scale"] == 1:
        return TOL
    xp = transform(torch.tensor(np.asarray(x, dtype=np.float64)), c)
    big = float(xp.abs().max()) if xp.numel() else 0.0
    return TOL * max(1.0, big / 8.0)


def max_error(got, ref, u, tol=TOL):
    """Largest |got - ref| / max(1, |ref|), whether all are within the
    bound (tol, plus u*|ref|/max(1,|ref|) for 16-bit stored values), and
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
    bound = tol * (1 + u) + u * np.abs(ref[fin]) / den
    worst = float(err.max()) if err.size else 0.0
    ratio = float((err / bound).max()) if err.size else 0.0
    return worst, ratio <= 1.0, ratio


def describe(c):
    parts = [c["op"], "x".join(map(str, c["shape"])) or "0-d", c["dtype"]]
    if c["op"] in SOFTMAXES:
        parts.append("dim=%d" % c["dim"])
    else:
        parts += [c["reduction"],
                  "probs" if c["probs"] else c["index_dtype"]]
    if c["op"] in LOSSES:
        if c["weights"]:
            parts.append("weights")
        if c["ignore"] is not None:
            parts.append("ignore=%d" % c["ignore"])
    for key, fmt, off in (("eps", "eps=%g", 0), ("z", "z=%g", 0),
                          ("softcap", "cap=%g", 0), ("logit_scale", "a=%g", 1),
                          ("G", "G=%g", 1)):
        if c[key] != off and (c["op"] in LOSSES or key in ("softcap",
                                                           "logit_scale")):
            parts.append(fmt % c[key])
    if c["fmt"] != "f32":
        parts.append(c["fmt"])
    if c["op"] in LOSSES and len(c["outputs"]) < 3:
        parts.append("+".join(c["outputs"]))
    parts.append("scale=%g" % c["scale"])
    return " ".join(parts)


def save_input(path, x, c):
    fmt = c["fmt"]
    if fmt == "f64":
        np.save(path, x.astype(np.float64))
    elif fmt == "big":
        np.save(path, x.astype(">f4"))
    elif fmt == "fortran" and x.ndim >= 2:
        np.save(path, np.asfortranarray(x))
    elif fmt == "f16":
        np.save(path, x.astype(np.float16))
    else:
        np.save(path, x)


def command(args, c, path, y, probs, w):
    op = c["op"]
    flag = "--logits" if c["spelling"] == "logits" else "--input"
    cmd = [args.clxent, "run", flag, path("x.npy")]
    if args.device:
        cmd += ["--device", args.device]
    if c["spelling"] != "logits":
        cmd += ["--op", op]
    if c["fmt"] != "f16":
        cmd += ["--dtype", c["dtype"]]
    if c["softcap"]:
        cmd += ["--softcap", repr(c["softcap"])]
    if c["logit_scale"] != 1:
        cmd += ["--logit-scale", repr(c["logit_scale"])]
    if op in SOFTMAXES:
        return cmd + ["--dim", str(c["dim"]), "--out", path("out.npy")]
    cmd += ["--reduction", c["reduction"], "--grad-scale", repr(c["G"])]
    if op == "cross_entropy":
        cmd += ["--label-smoothing", repr(c["eps"]), "--z-loss", repr(c["z"])]
    for name in c["outputs"]:
        cmd += ["--%s-out" % name, path("%s.npy" % name)]
    if probs is not None:
        np.save(path("probs.npy"), probs)
        cmd += ["--probs", path("probs.npy")]
    else:
        t = np.int32 if c["index_dtype"] == "i32" else np.int64
        y = y.astype(t)
        if c["fmt"] in ("big", "big_targets"):
            y = y.astype(y.dtype.newbyteorder(">"))
        np.save(path("y.npy"), y)
        cmd += ["--targets", path("y.npy")]
    if c["ignore"] is not None:
        cmd += ["--ignore-index", str(c["ignore"])]
    if w is not None:
        np.save(path("w.npy"), w.astype(np.float64) if c["fmt"] == "f64"
                else w)
        cmd += ["--weights", path("w.npy")]
    return cmd


def run_case(args, k, c, rng, folder):
    """(worst error, worst error/bound, ok, why)."""
    x, y, probs, w = make_inputs(rng, c)
    d = os.path.join(folder, "case%03d" % k)
    os.makedirs(d, exist_ok=True)
    path = lambda n: os.path.join(d, n)  # noqa: E731
    save_input(path("x.npy"), x, c)
    cmd = command(args, c, path, y, probs, w)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        return float("inf"), float("inf"), False, "exit %d: %s" % (
            p.returncode, (p.stderr or p.stdout).strip()[:300])
    if c["fmt"] == "f64" and "float64" not in p.stderr:
        return float("inf"), float("inf"), False, "no float64 note"
    ref = reference(c, x, y, probs, w)
    names = ["out"] if c["op"] in SOFTMAXES else list(c["outputs"])
    worst, ratio, ok, why = 0.0, 0.0, True, []
    for name in names:
        try:
            g = np.load(path("%s.npy" % name))
        except (OSError, ValueError) as e:
            return float("inf"), float("inf"), False, "reading %s: %s" % (
                name, e)
        r = ref[name]
        if g.dtype != np.float32 or g.shape != np.asarray(r).shape:
            return float("inf"), float("inf"), False, \
                "%s %s %s, want float32 %s" % (name, g.dtype, g.shape,
                                                np.asarray(r).shape)
        u = UNIT[c["dtype"]] if name in ("grad", "out") else 0.0
        e, good, q = max_error(g, r, u, transform_tol(c, x))
        worst = max(worst, e)
        ratio = float("inf") if isinstance(q, str) else max(ratio, q)
        if not good:
            ok = False
            why.append("%s: max rel %.3g %s" % (
                name, e, q if isinstance(q, str) else "(%.3g x bound)" % q))
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
    ap.add_argument("--cases", type=int, default=30,
                    help="random cases after the coverage ones")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dtypes", default="f32,f16,bf16")
    ap.add_argument("--no-coverage", action="store_true",
                    help="only the random cases")
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
    cases = [] if args.no_coverage else coverage(dtypes)
    cases += [draw(rng, dtypes) for _ in range(args.cases)]
    failures = 0
    worst_f32, worst_ratio = 0.0, 0.0
    with tempfile.TemporaryDirectory(prefix="clxent_check_") as tmp:
        folder = args.keep or tmp
        for k, c in enumerate(cases):
            worst, ratio, ok, why = run_case(args, k, c, rng, folder)
            if c["dtype"] == "f32":
                worst_f32 = max(worst_f32, worst)
            worst_ratio = max(worst_ratio, ratio)
            failures += not ok
            print("%3d %-4s max rel err %.3g (%.2f x bound)  %s%s" % (
                k, "ok" if ok else "FAIL", worst, ratio, describe(c),
                ("  <- " + why) if why else ""), flush=True)
    print("%d/%d cases agree with PyTorch float64 on device %s: worst f32 "
          "relative error %.3g (bound %.0e), worst error/bound %.3g over "
          "all dtypes" % (len(cases) - failures, len(cases),
                          args.device or os.environ.get("CLXENT_DEVICE",
                                                        "default"),
                          worst_f32, TOL, worst_ratio))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
