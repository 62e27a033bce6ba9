#!/usr/bin/python3
"""PyTorch oracle fixtures for tests/test_oracle.c and test_oracle_nd.c.

Regenerate (Debian's python3 with python3-torch and numpy; not a pyenv or
venv python):

    /usr/bin/python3 tests/gen_oracle.py            # rewrites tests/oracle/
    /usr/bin/python3 tests/gen_oracle.py --check    # only self-checks

The output is deterministic (every case has its own seed), so regenerating
without changing this file gives byte-identical fixtures.

What it writes
--------------
tests/oracle/manifest.txt, one line per case, whitespace separated, in this
column order (lines starting with '#' are comments):

    name op dtype target rows cols reduction ignore_index label_smoothing
    z_loss grad_scale normalizer all_ignored_zero weights grad_rows

  op        ce (cross-entropy: fused and forward+backward), nll (NLL gather
            over given log-probabilities and its backward), softmax (the
            primitives row max, exp-sum, log-softmax, softmax)
  dtype     storage type of x / probabilities / gradient: f32 f16 bf16
  target    i32 | i64 (class indices), probs (probabilities), none
  floats    printed with 9 significant digits: they are float32 values
            and the reference was computed from exactly those values
  weights   1: weights.npy (float32, C) is given
  grad_rows 1: grad_rows.npy (float32, R), the per-row upstream gradient of
            reduction none (multiplies grad_scale)

The tensor cases (ops ce_nd, nll_nd, softmax_nd: the clxent_*_nd calls)
add key=value columns: shape=NxCxD1.. (PyTorch's shape of x), dim=K (the
class axis; 1 for (N, C, d..), 0 for an unbatched (C) input), and, when
set, softcap= and logit_scale=. rows is outer*inner (the product of the
dims before and after dim), cols the classes. Their arrays are stored as
PyTorch's contiguous tensor viewed as (outer, C, inner), per-position
arrays as (outer, inner), since the project's .npy reader stops at 4-d;
ce_nd also has expect_zloss (the z-loss part alone, zeta*lse^2 per valid
position, reduced like the loss: what z_loss_out returns). With the
transforms, PyTorch sees x' = softcap*tanh(logit_scale*x/softcap) (or
logit_scale*x without a cap), built from torch ops so autograd chains the
gradient back to x, and expect_lse is the lse of x'.

tests/oracle/<name>/ holds
  x.npy          float32 (R, C): logits (log-probabilities for nll). Values
                 are already rounded to `dtype`, so converting them to f16 or
                 bf16 is exact; the reference was computed from them.
  targets.npy    int32 / int64 (R,) or float32 (R, C) probabilities (rounded
                 to `dtype` like x)
  weights.npy, grad_rows.npy   float32, when the manifest says so
  expect_*.npy   float64 values stored as their int64 bit patterns (the
                 project's .npy reader has no float64; a bit copy is exact):
      ce:      expect_loss (() or (R,) for none), expect_lse (R,),
               expect_grad (R, C)
      nll:     expect_loss, expect_grad (gradient with respect to x)
      softmax: expect_max, expect_expsum (R,), expect_logsoftmax,
               expect_softmax (R, C)

Where the expectations come from
--------------------------------
PyTorch float64 on CPU: F.cross_entropy (weight, ignore_index,
label_smoothing, reduction, probability targets), F.nll_loss, F.log_softmax,
F.softmax, torch.logsumexp, and autograd for every gradient. The extensions
PyTorch lacks are built from torch ops so autograd still gives the gradient:
z-loss adds z*logsumexp(x)^2 per valid row (divided by the same denominator
as the mean), the normalizer D replaces the mean's denominator (reduction
sum divided by D). The documented deviations of SEMANTICS.md are then
written over PyTorch's result: ignored rows get an exact zero gradient
(PyTorch gives NaN for an ignored row holding NaN), an all-ignored mean
gives a zero gradient, and all_ignored_zero turns its NaN loss into 0.
Every case is also recomputed in numpy float64 straight from the formulas of
SEMANTICS.md and must agree with the torch result to 1e-12; a disagreement
stops the script.
"""

import argparse
import os
import shutil
import sys

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover
    sys.exit("gen_oracle.py needs PyTorch and numpy: run it with "
             "/usr/bin/python3 after\n"
             "    apt-get install python3-torch python3-numpy")

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "oracle")
COLUMNS = ("name op dtype target rows cols reduction ignore_index "
           "label_smoothing z_loss grad_scale normalizer all_ignored_zero "
           "weights grad_rows")


def f32(v):
    """The float32 value the C side will hold for an option."""
    return float(np.float32(v))


def fmt(v):
    return "%.9g" % v


def round_storage(a, dtype):
    """float32 array holding the values of `a` rounded (nearest even) to
    the storage type."""
    a = np.asarray(a, dtype=np.float32)
    if dtype == "f32":
        return a.copy()
    t = torch.from_numpy(a.copy())
    t = t.to(torch.float16 if dtype == "f16" else torch.bfloat16)
    return t.to(torch.float32).numpy()


def save(path, arr):
    np.save(path, np.ascontiguousarray(arr), allow_pickle=False)


def save_f64(path, arr):
    a = np.ascontiguousarray(np.asarray(arr, dtype=np.float64))
    save(path, a.view(np.int64))


class Case:
    def __init__(self, name, op="ce", dtype="f32", target="i64", rows=5,
                 cols=7, reduction="mean", ignore_index=-100, eps=0.0,
                 z=0.0, G=1.0, D=0.0, aiz=0, weights=False, grad_rows=False,
                 scale=3.0, ignore_frac=0.0, seed=0, edit=None, x=None,
                 y=None, probs=None, onehot=False):
        self.__dict__.update(locals())
        del self.__dict__["self"]
        self.eps, self.z, self.G, self.D = f32(eps), f32(z), f32(G), f32(D)

    def manifest_line(self):
        return " ".join([
            self.name, self.op, self.dtype,
            self.target if not self.op.startswith("softmax") else "none",
            str(self.rows), str(self.cols), self.reduction,
            str(self.ignore_index), fmt(self.eps), fmt(self.z), fmt(self.G),
            fmt(self.D), str(self.aiz), str(int(self.weights)),
            str(int(self.grad_rows))])


# ---------------------------------------------------------------------------
# Inputs.

def make_inputs(c):
    rng = np.random.default_rng(c.seed)
    R, C = c.rows, c.cols
    if c.x is not None:
        x = np.array(c.x, dtype=np.float32).reshape(R, C)
    else:
        x = (rng.standard_normal((R, C)) * c.scale).astype(np.float32)
    if c.op == "nll":  # NLL takes log-probabilities
        x = F.log_softmax(torch.from_numpy(x).double(), 1).float().numpy()
    y = probs = None
    if c.op in ("ce", "nll") and c.target in ("i32", "i64"):
        if c.y is not None:
            y = np.array(c.y, dtype=np.int64)
        else:
            y = rng.integers(0, C, size=R).astype(np.int64)
            if c.ignore_frac > 0:
                y[rng.random(R) < c.ignore_frac] = c.ignore_index
    elif c.op == "ce" and c.target == "probs":
        if c.probs is not None:
            probs = np.array(c.probs, dtype=np.float32).reshape(R, C)
        elif c.onehot:
            probs = np.eye(C, dtype=np.float32)[rng.integers(0, C, size=R)]
        else:
            probs = F.softmax(torch.from_numpy(
                rng.standard_normal((R, C))), 1).float().numpy()
    w = (rng.random(C) * 1.5 + 0.25).astype(np.float32) if c.weights else None
    g = (rng.standard_normal(R) * 2.0).astype(np.float32) if c.grad_rows \
        else None
    if c.edit is not None:
        x, y = c.edit(x, y)
    x = round_storage(x, c.dtype)
    if probs is not None:
        probs = round_storage(probs, c.dtype)
    return x, y, probs, w, g


# ---------------------------------------------------------------------------
# PyTorch reference.

def torch_ce(c, x, y, probs, w, g):
    R = c.rows
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64) if w is not None else None
    lse = torch.logsumexp(xt, 1)
    if y is not None:
        yt = torch.tensor(y, dtype=torch.int64)
        valid = yt != c.ignore_index
        args = dict(weight=wt, ignore_index=c.ignore_index,
                    label_smoothing=c.eps)
        target = yt
    else:
        valid = torch.ones(R, dtype=torch.bool)
        args = dict(weight=wt, label_smoothing=c.eps)
        target = torch.tensor(probs, dtype=torch.float64)
    zterm = None
    if c.z != 0:
        zterm = torch.where(valid, c.z * lse * lse,
                            torch.zeros_like(lse))
    if c.reduction == "mean" and c.D == 0:
        loss = F.cross_entropy(xt, target, reduction="mean", **args)
        if zterm is not None:
            if y is None:
                denom = float(R)
            elif wt is None:
                denom = float(valid.sum())
            else:
                denom = float(wt[yt[valid]].sum())
            loss = loss + zterm.sum() / denom
    else:
        red = "none" if c.reduction == "none" else "sum"
        loss = F.cross_entropy(xt, target, reduction=red, **args)
        if zterm is not None:
            loss = loss + (zterm if red == "none" else zterm.sum())
        if c.reduction == "mean":
            loss = loss / c.D
    upstream = torch.full(loss.shape, c.G, dtype=torch.float64)
    if g is not None:
        upstream = upstream * torch.tensor(g, dtype=torch.float64)
    loss.backward(upstream)
    loss = loss.detach().numpy().copy()
    grad = xt.grad.numpy().copy()
    lse = lse.detach().numpy().copy()
    return loss, lse, grad, valid.numpy()


def torch_nll(c, x, y, w, g):
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64) if w is not None else None
    yt = torch.tensor(y, dtype=torch.int64)
    if c.reduction == "mean" and c.D != 0:
        loss = F.nll_loss(xt, yt, weight=wt, ignore_index=c.ignore_index,
                          reduction="sum") / c.D
    else:
        loss = F.nll_loss(xt, yt, weight=wt, ignore_index=c.ignore_index,
                          reduction=c.reduction)
    upstream = torch.full(loss.shape, c.G, dtype=torch.float64)
    if g is not None:
        upstream = upstream * torch.tensor(g, dtype=torch.float64)
    loss.backward(upstream)
    return (loss.detach().numpy().copy(), xt.grad.numpy().copy(),
            (yt != c.ignore_index).numpy())


def apply_deviations(c, loss, grad, valid):
    """SEMANTICS.md's documented differences from PyTorch."""
    grad[~valid, :] = 0.0  # ignored rows: exact zero, NaN logits included
    if c.reduction == "mean" and c.D == 0 and c.target != "probs" \
            and not valid.any():
        grad[:] = 0.0  # all ignored: the loss is NaN, the gradient zero
        if c.aiz:
            loss = np.zeros_like(loss)
    return loss, grad


# ---------------------------------------------------------------------------
# Independent float64 recomputation from SEMANTICS.md's formulas.

def formula_ce(c, x, y, probs, w, g):
    R, C = x.shape
    x = x.astype(np.float64)
    wv = np.ones(C) if w is None else w.astype(np.float64)
    with np.errstate(all="ignore"):
        m = x.max(axis=1) if C else np.zeros(R)
        S = np.exp(x - m[:, None]).sum(axis=1)
        lse = m + np.log(S)
        logp = x - lse[:, None]
        p = np.exp(logp)
        eps, z = c.eps, c.z
        Gr = np.full(R, c.G) * (g.astype(np.float64) if g is not None else 1)
        if y is not None:
            valid = y != c.ignore_index
            yy = np.where(valid, y, 0)
            rows = np.arange(R)
            nll = -wv[yy] * logp[rows, yy]
            l = (1 - eps) * nll + z * lse * lse
            if eps > 0:
                l = l + (eps / C) * -(wv[None, :] * logp).sum(axis=1)
            l = np.where(valid, l, 0.0)
            W = wv[yy][valid].sum()
            onehot = np.zeros((R, C))
            onehot[rows, yy] = 1.0
            d = (p * ((1 - eps) * wv[yy] + (eps / C) * wv.sum())[:, None]
                 - (1 - eps) * wv[yy][:, None] * onehot
                 - (eps / C) * wv[None, :] + 2 * z * lse[:, None] * p)
        else:
            valid = np.ones(R, dtype=bool)
            tp = (1 - eps) * probs.astype(np.float64) + eps / C
            a = wv[None, :] * tp
            l = -(a * logp).sum(axis=1) + z * lse * lse
            W = float(R)
            d = p * a.sum(axis=1)[:, None] - a + 2 * z * lse[:, None] * p
        if c.reduction == "none":
            loss, s = l, 1.0
        elif c.reduction == "sum":
            loss, s = l.sum(), 1.0
        else:
            den = np.float64(c.D if c.D != 0 else W)
            loss, s = l.sum() / den, 1.0 / den
        grad = np.where(valid[:, None], (Gr * s)[:, None] * d, 0.0)
    return loss, lse, grad


def formula_nll(c, x, y, w, g):
    R, C = x.shape
    x = x.astype(np.float64)
    wv = np.ones(C) if w is None else w.astype(np.float64)
    valid = y != c.ignore_index
    yy = np.where(valid, y, 0)
    rows = np.arange(R)
    l = np.where(valid, -wv[yy] * x[rows, yy], 0.0)
    W = wv[yy][valid].sum()
    Gr = np.full(R, c.G) * (g.astype(np.float64) if g is not None else 1)
    with np.errstate(all="ignore"):
        if c.reduction == "none":
            loss, s = l, 1.0
        elif c.reduction == "sum":
            loss, s = l.sum(), 1.0
        else:
            den = np.float64(c.D if c.D != 0 else W)
            loss, s = l.sum() / den, 1.0 / den
        grad = np.zeros((R, C))
        grad[rows[valid], yy[valid]] = -(Gr * s)[valid] * wv[yy][valid]
    return loss, grad


def agree(name, what, a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        sys.exit("%s %s: shape %s vs %s" % (name, what, a.shape, b.shape))
    same_nan = np.isnan(a) == np.isnan(b)
    fin = np.isfinite(a) & np.isfinite(b)
    inf_ok = np.where(np.isinf(a) | np.isinf(b), a == b, True)
    err = np.abs(a[fin] - b[fin]) / np.maximum(1.0, np.abs(b[fin]))
    if not same_nan.all() or not inf_ok.all() or (err.size and
                                                   err.max() > 1e-12):
        sys.exit("%s %s: torch and the SEMANTICS formulas disagree:\n%s\n%s"
                 % (name, what, a, b))


# ---------------------------------------------------------------------------

def generate(c, write):
    if isinstance(c, NdCase):
        return generate_nd(c, write)
    x, y, probs, w, g = make_inputs(c)
    assert x.shape == (c.rows, c.cols)
    files = {}
    if c.op == "ce":
        loss, lse, grad, valid = torch_ce(c, x, y, probs, w, g)
        loss, grad = apply_deviations(c, loss, grad, valid)
        fl, flse, fgrad = formula_ce(c, x, y, probs, w, g)
        if c.aiz and c.reduction == "mean" and c.D == 0 and y is not None \
                and not valid.any():
            fl = np.zeros_like(fl)
        agree(c.name, "loss", loss, fl)
        agree(c.name, "lse", lse, flse)
        agree(c.name, "grad", grad, fgrad)
        files.update(expect_loss=loss, expect_lse=lse, expect_grad=grad)
    elif c.op == "nll":
        loss, grad, valid = torch_nll(c, x, y, w, g)
        loss, grad = apply_deviations(c, loss, grad, valid)
        fl, fgrad = formula_nll(c, x, y, w, g)
        if c.aiz and c.reduction == "mean" and c.D == 0 and not valid.any():
            fl = np.zeros_like(fl)
        agree(c.name, "loss", loss, fl)
        agree(c.name, "grad", grad, fgrad)
        files.update(expect_loss=loss, expect_grad=grad)
    else:
        xt = torch.tensor(x, dtype=torch.float64)
        mx = xt.max(1).values if c.cols else torch.zeros(c.rows)
        files.update(
            expect_max=mx.numpy(),
            expect_expsum=torch.exp(xt - mx[:, None]).sum(1).numpy(),
            expect_logsoftmax=F.log_softmax(xt, 1).numpy(),
            expect_softmax=F.softmax(xt, 1).numpy())
    if not write:
        return
    d = os.path.join(OUT, c.name)
    os.makedirs(d)
    save(os.path.join(d, "x.npy"), x)
    if y is not None:
        save(os.path.join(d, "targets.npy"),
             y.astype(np.int32 if c.target == "i32" else np.int64))
    if probs is not None:
        save(os.path.join(d, "targets.npy"), probs)
    if w is not None:
        save(os.path.join(d, "weights.npy"), w)
    if g is not None:
        save(os.path.join(d, "grad_rows.npy"), g)
    for k, v in files.items():
        save_f64(os.path.join(d, k + ".npy"), v)


# ---------------------------------------------------------------------------
# N-d tensors (SEMANTICS.md, "Layouts: the class axis anywhere") and the
# logit transforms ("Logit transforms"). PyTorch computes on the tensor in
# its own shape; the fixtures hold its (outer, C, inner) view, the memory
# order of the contiguous tensor (the project's .npy reader stops at 4-d).

class NdCase(Case):
    """A case on a tensor of torch shape `shape` with the classes on axis
    `dim`: rows = outer*inner rows of cols = shape[dim] classes. cap and
    ls are the softcap and logit_scale options."""

    def __init__(self, name, shape, dim=1, cap=0.0, ls=1.0, **kw):
        shape = tuple(shape)
        outer = int(np.prod(shape[:dim], dtype=np.int64))
        inner = int(np.prod(shape[dim + 1:], dtype=np.int64))
        Case.__init__(self, name, rows=outer * inner, cols=shape[dim], **kw)
        self.shape, self.dim, self.outer, self.inner = shape, dim, outer, inner
        self.cap, self.ls = f32(cap), f32(ls)

    def manifest_line(self):
        extra = ["shape=" + "x".join(str(n) for n in self.shape),
                 "dim=%d" % self.dim]
        if self.cap != 0:
            extra.append("softcap=" + fmt(self.cap))
        if self.ls != 1:
            extra.append("logit_scale=" + fmt(self.ls))
        return Case.manifest_line(self) + " " + " ".join(extra)

    def target_shape(self):
        return self.shape[:self.dim] + self.shape[self.dim + 1:]


def transform(c, x):
    """x' of SEMANTICS.md's logit transforms: scale first, then the cap
    (torch ops, so autograd gives the chain rule)."""
    if c.ls != 1:
        x = c.ls * x
    if c.cap != 0:
        x = c.cap * torch.tanh(x / c.cap)
    return x


def transform_slope(c, x):
    """dx'/dx in float64 numpy, for the formula check."""
    a = x.astype(np.float64) * c.ls
    if c.cap == 0:
        return np.full_like(a, c.ls)
    return c.ls * (1 - np.tanh(a / c.cap) ** 2)


def as_rows(c, a):
    """(R, C) row-major view of a tensor of c.shape (row = o*inner + i)."""
    return np.moveaxis(np.asarray(a), c.dim, -1).reshape(c.rows, c.cols)


def from_rows(c, a):
    """(outer, C, inner) from an (R, C) row-major array."""
    return np.asarray(a).reshape(c.outer, c.inner, c.cols).transpose(0, 2, 1)


def make_inputs_nd(c):
    rng = np.random.default_rng(c.seed)
    S, C, ts = c.shape, c.cols, c.target_shape()
    x = (rng.standard_normal(S) * c.scale).astype(np.float32)
    if c.op == "nll_nd":
        x = F.log_softmax(torch.from_numpy(x).double(), c.dim).float().numpy()
    y = probs = None
    if c.op in ("ce_nd", "nll_nd") and c.target in ("i32", "i64"):
        if c.y is not None:
            y = np.array(c.y, dtype=np.int64).reshape(ts)
        else:
            y = np.asarray(rng.integers(0, C, size=ts), dtype=np.int64)
            if c.ignore_frac > 0:
                y = np.where(rng.random(ts) < c.ignore_frac, c.ignore_index, y)
    elif c.op == "ce_nd" and c.target == "probs":
        if c.onehot:
            probs = np.moveaxis(np.eye(C, dtype=np.float32)[
                rng.integers(0, C, size=ts)], -1, c.dim)
        else:
            probs = F.softmax(torch.from_numpy(rng.standard_normal(S)),
                              c.dim).float().numpy()
    w = (rng.random(C) * 1.5 + 0.25).astype(np.float32) if c.weights else None
    g = (rng.standard_normal(ts) * 2.0).astype(np.float32) if c.grad_rows \
        else None
    x = round_storage(x, c.dtype)
    if probs is not None:
        probs = round_storage(probs, c.dtype)
    return x, y, probs, w, g


def torch_ce_nd(c, x, y, probs, w, g):
    """F.cross_entropy on the N-d tensor (after the transforms), z-loss and
    normalizer built from torch ops as in torch_ce; also the z-loss part
    alone, reduced like the loss (z_loss_out)."""
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    xp = transform(c, xt)
    wt = torch.tensor(w, dtype=torch.float64) if w is not None else None
    lse = torch.logsumexp(xp, c.dim)
    if y is not None:
        yt = torch.tensor(y, dtype=torch.int64)
        valid = yt != c.ignore_index
        args = dict(weight=wt, ignore_index=c.ignore_index,
                    label_smoothing=c.eps)
        target = yt
        yv = yt.reshape(-1)[valid.reshape(-1)]
        denom = float(valid.sum()) if wt is None else float(wt[yv].sum())
    else:
        valid = torch.ones(c.target_shape(), dtype=torch.bool)
        args = dict(weight=wt, label_smoothing=c.eps)
        target = torch.tensor(probs, dtype=torch.float64)
        denom = float(c.rows)
    zterm = torch.where(valid, c.z * lse * lse, torch.zeros_like(lse))
    if c.reduction == "mean" and c.D == 0:
        loss = F.cross_entropy(xp, target, reduction="mean", **args)
        if c.z != 0:
            loss = loss + zterm.sum() / denom
        with np.errstate(all="ignore"):
            zl = np.float64(zterm.sum().item()) / np.float64(denom)
    else:
        red = "none" if c.reduction == "none" else "sum"
        loss = F.cross_entropy(xp, target, reduction=red, **args)
        zl = zterm if red == "none" else zterm.sum()
        if c.z != 0:
            loss = loss + zl
        zl = zl.detach().numpy().copy()
        if c.reduction == "mean":
            loss, zl = loss / c.D, zl / c.D
    upstream = torch.full(loss.shape, c.G, dtype=torch.float64)
    if g is not None:
        upstream = upstream * torch.tensor(g, dtype=torch.float64)
    loss.backward(upstream)
    return (loss.detach().numpy().copy(), lse.detach().numpy().copy(),
            xt.grad.numpy().copy(), valid.numpy().reshape(-1),
            np.asarray(zl, dtype=np.float64))


def torch_nll_nd(c, x, y, w, g):
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64) if w is not None else None
    yt = torch.tensor(y, dtype=torch.int64)
    red = "sum" if c.reduction == "mean" and c.D != 0 else c.reduction
    loss = F.nll_loss(xt, yt, weight=wt, ignore_index=c.ignore_index,
                      reduction=red)
    if red != c.reduction:
        loss = loss / c.D
    upstream = torch.full(loss.shape, c.G, dtype=torch.float64)
    if g is not None:
        upstream = upstream * torch.tensor(g, dtype=torch.float64)
    loss.backward(upstream)
    return (loss.detach().numpy().copy(), xt.grad.numpy().copy(),
            (yt != c.ignore_index).numpy().reshape(-1))


def generate_nd(c, write):
    x, y, probs, w, g = make_inputs_nd(c)
    assert x.shape == c.shape
    per_row = (c.outer, c.inner)
    yr = y.reshape(-1) if y is not None else None
    gr = g.reshape(-1) if g is not None else None
    files = {}
    if c.op == "ce_nd":
        loss, lse, grad, valid, zl = torch_ce_nd(c, x, y, probs, w, g)
        grad = as_rows(c, grad).copy()
        loss, grad = apply_deviations(c, loss, grad, valid)
        # The formulas on the (R, C) rows of x', chained through x'(x).
        xp = transform(c, torch.tensor(x, dtype=torch.float64)).numpy()
        pr = as_rows(c, probs) if probs is not None else None
        fl, flse, fgrad = formula_ce(c, as_rows(c, xp), yr, pr, w, gr)
        fgrad = fgrad * as_rows(c, transform_slope(c, x))
        with np.errstate(all="ignore"):
            fz = np.where(valid, c.z * flse * flse, 0.0)
            if c.reduction != "none":
                fz = fz.sum()
            if c.reduction == "mean":
                if c.D != 0:
                    den = c.D
                elif y is None:
                    den = float(c.rows)
                else:
                    wv = np.ones(c.cols) if w is None else w.astype(np.float64)
                    den = wv[np.where(valid, yr, 0)][valid].sum()
                fz = fz / np.float64(den)
        agree(c.name, "loss", loss.reshape(-1), np.reshape(fl, -1))
        agree(c.name, "lse", lse.reshape(-1), flse)
        agree(c.name, "grad", grad, fgrad)
        agree(c.name, "z_loss", zl.reshape(-1), np.reshape(fz, -1))
        nl = per_row if c.reduction == "none" else ()
        files.update(expect_loss=loss.reshape(nl), expect_lse=lse.reshape(
            per_row), expect_grad=from_rows(c, grad),
            expect_zloss=zl.reshape(nl))
    elif c.op == "nll_nd":
        loss, grad, valid = torch_nll_nd(c, x, y, w, g)
        grad = as_rows(c, grad).copy()
        loss, grad = apply_deviations(c, loss, grad, valid)
        fl, fgrad = formula_nll(c, as_rows(c, x), yr, w, gr)
        agree(c.name, "loss", loss.reshape(-1), np.reshape(fl, -1))
        agree(c.name, "grad", grad, fgrad)
        nl = per_row if c.reduction == "none" else ()
        files.update(expect_loss=loss.reshape(nl),
                     expect_grad=from_rows(c, grad))
    else:
        xt = torch.tensor(x, dtype=torch.float64)
        mx = xt.max(c.dim).values
        xp = transform(c, xt)
        files.update(
            expect_max=mx.numpy().reshape(per_row),
            expect_expsum=torch.exp(xt - mx.unsqueeze(c.dim)).sum(
                c.dim).numpy().reshape(per_row),
            expect_logsoftmax=F.log_softmax(xp, c.dim).numpy().reshape(
                c.outer, c.cols, c.inner),
            expect_softmax=F.softmax(xp, c.dim).numpy().reshape(
                c.outer, c.cols, c.inner))
    if not write:
        return
    d = os.path.join(OUT, c.name)
    os.makedirs(d)
    save(os.path.join(d, "x.npy"), x.reshape(c.outer, c.cols, c.inner))
    if y is not None:
        save(os.path.join(d, "targets.npy"), y.reshape(per_row).astype(
            np.int32 if c.target == "i32" else np.int64))
    if probs is not None:
        save(os.path.join(d, "targets.npy"),
             probs.reshape(c.outer, c.cols, c.inner))
    if w is not None:
        save(os.path.join(d, "weights.npy"), w)
    if g is not None:
        save(os.path.join(d, "grad_rows.npy"), g.reshape(per_row))
    for k, v in files.items():
        save_f64(os.path.join(d, k + ".npy"), v)


def nd_cases():
    out = []
    dtypes = ("f32", "f16", "bf16")
    shapes = ((2, 5, 3), (2, 6, 3, 2), (2, 4, 2, 3, 2))
    # The 2-D grid again on (N, C, d1), (N, C, d1, d2) and
    # (N, C, d1, d2, d3): every reduction x every subset of the options;
    # dtype and shape rotate so that each pair of them occurs.
    k = 0
    for red in ("none", "sum", "mean"):
        for mask in range(16):
            wts, sm, ign, zl = (bool(mask & 1), bool(mask & 2),
                                bool(mask & 4), bool(mask & 8))
            dt, sh = dtypes[k % 3], shapes[(k // 3) % 3]
            tg = "i32" if k % 2 else "i64"
            name = "nd%d_%s_%s%s%s%s_%s_%s" % (
                len(sh), red, "w" if wts else "-", "s" if sm else "-",
                "i" if ign else "-", "z" if zl else "-", dt, tg)
            out.append(NdCase(
                name, sh, op="ce_nd", dtype=dt, target=tg, reduction=red,
                weights=wts, eps=0.2 if sm else 0.0,
                ignore_index=(-100 if k % 4 < 2 else 3) if ign else -100,
                ignore_frac=0.35 if ign else 0.0, z=1e-2 if zl else 0.0,
                G=(1.0, 0.5, 3.0, -1.25)[k % 4],
                grad_rows=(red == "none" and k % 2 == 0), seed=3000 + k))
            k += 1
        for mask in range(8):
            wts, sm, zl = bool(mask & 1), bool(mask & 2), bool(mask & 4)
            dt, sh = dtypes[k % 3], shapes[(k // 3) % 3]
            name = "nd%d_%s_%s%s%s_%s_probs" % (
                len(sh), red, "w" if wts else "-", "s" if sm else "-",
                "z" if zl else "-", dt)
            out.append(NdCase(
                name, sh, op="ce_nd", dtype=dt, target="probs",
                reduction=red, weights=wts, eps=0.15 if sm else 0.0,
                z=2e-2 if zl else 0.0, G=(1.0, 0.5, 3.0, -1.25)[k % 4],
                grad_rows=(red == "none" and k % 2 == 1),
                onehot=(mask == 0), seed=3000 + k))
            k += 1
    # A normalizer, and (N, C) through the tensor calls.
    out.append(NdCase("nd3_normalizer_wsz", (3, 5, 4), op="ce_nd", D=7.5,
                      weights=True, eps=0.1, z=1e-2, ignore_frac=0.3,
                      seed=3100))
    out.append(NdCase("nd2_matrix_wsiz_f16", (6, 9), op="ce_nd", dtype="f16",
                      weights=True, eps=0.1, z=1e-2, ignore_frac=0.3,
                      ignore_index=2, seed=3101))
    # Unbatched: input (C), 0-d target; loss and lse 0-d.
    for i, red in enumerate(("none", "sum", "mean")):
        out.append(NdCase("unbatched_%s" % red, (7,), dim=0, op="ce_nd",
                          reduction=red, weights=(i != 1), eps=0.1,
                          z=1e-2 * i, grad_rows=(red == "none"),
                          G=(1.0, -2.0, 0.5)[i], dtype=dtypes[i],
                          seed=3110 + i))
    out.append(NdCase("unbatched_ignored_sum", (5,), dim=0, op="ce_nd",
                      reduction="sum", y=[-100], seed=3113))
    out.append(NdCase("unbatched_probs_none_bf16", (6,), dim=0, op="ce_nd",
                      target="probs", reduction="none", dtype="bf16",
                      weights=True, z=1e-2, seed=3114))
    out.append(NdCase("unbatched_nll_mean_i32", (6,), dim=0, op="nll_nd",
                      target="i32", weights=True, seed=3115))
    out.append(NdCase("unbatched_softcap", (9,), dim=0, op="ce_nd",
                      cap=2.0, ls=1.5, z=1e-2, seed=3116))
    # NLL over N-d log-probabilities.
    for i, red in enumerate(("none", "sum", "mean")):
        for j, sh in enumerate(shapes):
            out.append(NdCase(
                "nll_nd%d_%s_%s" % (len(sh), red, dtypes[(i + j) % 3]), sh,
                op="nll_nd", dtype=dtypes[(i + j) % 3], reduction=red,
                weights=(i + j) % 2 == 0, ignore_frac=0.3,
                ignore_index=-100 if j != 1 else 1,
                target="i32" if j == 2 else "i64",
                G=(1.0, -2.0, 0.75)[i], grad_rows=(red == "none" and j != 0),
                D=6.0 if (red == "mean" and j == 2) else 0.0,
                seed=3120 + 3 * i + j))
    # softcap and logit_scale: each alone and both, on indices and
    # probabilities, every dtype; a scale large enough to saturate the cap.
    tf = (("cap", 5.0, 1.0), ("scale", 0.0, 0.5), ("both", 3.0, 2.0))
    for i, (what, cap, ls) in enumerate(tf):
        for j, dt in enumerate(dtypes):
            sh = shapes[(i + j) % 3]
            out.append(NdCase(
                "tf_%s_%s_nd%d" % (what, dt, len(sh)), sh, op="ce_nd",
                dtype=dt, cap=cap, ls=ls, reduction=("mean", "none",
                                                     "sum")[j],
                weights=j != 1, eps=0.1 if i != 1 else 0.0,
                z=1e-2 if j != 0 else 0.0, ignore_frac=0.25,
                grad_rows=(j == 1), seed=3140 + 3 * i + j))
        out.append(NdCase("tf_%s_probs" % what, (3, 6, 4), op="ce_nd",
                          target="probs", cap=cap, ls=ls, z=1e-2,
                          weights=True, eps=0.1, seed=3150 + i))
    out.append(NdCase("tf_cap_saturated", (2, 8, 3), op="ce_nd", cap=4.0,
                      ls=10.0, reduction="none", scale=5.0, seed=3153))
    out.append(NdCase("tf_matrix_both_bf16", (5, 11), op="ce_nd",
                      dtype="bf16", cap=6.0, ls=0.75, z=1e-2, seed=3154))
    # log_softmax, softmax and the row statistics over each dim of a 4-d
    # tensor (outer = the dims before, inner = those after).
    for d in range(4):
        for j, dt in enumerate(dtypes):
            out.append(NdCase("softmax_nd4_dim%d_%s" % (d, dt), (2, 3, 4, 5),
                              dim=d, op="softmax_nd", dtype=dt,
                              seed=3160 + 3 * d + j))
    out.append(NdCase("softmax_nd4_dim1_softcap", (2, 3, 4, 5), dim=1,
                      op="softmax_nd", cap=2.5, ls=1.25, seed=3180))
    out.append(NdCase("softmax_nd4_dim3_scale_f16", (2, 3, 4, 5), dim=3,
                      op="softmax_nd", dtype="f16", ls=0.25, seed=3181))
    out.append(NdCase("softmax_nd5_dim2_cap_bf16", (2, 2, 6, 2, 3), dim=2,
                      op="softmax_nd", dtype="bf16", cap=3.0, seed=3182))
    return out


# ---------------------------------------------------------------------------
# The cases.

def nan_row(r):
    def edit(x, y):
        x[r, 1] = np.nan
        return x, y
    return edit


def masked(cols, target_masked=False):
    def edit(x, y):
        for r in range(x.shape[0]):
            for k in cols:
                if y is None or y[r] != k or target_masked:
                    x[r, k] = -np.inf
        return x, y
    return edit


def cases():
    out = []
    dtypes = ("f32", "f16", "bf16")
    # Every reduction x every subset of {weights, smoothing, ignore, z-loss}
    # for class indices, and of {weights, smoothing, z-loss} for
    # probabilities. dtype, index width, grad_scale and the per-row upstream
    # gradient rotate through the grid.
    k = 0
    for red in ("none", "sum", "mean"):
        for mask in range(16):
            wts, sm, ign, zl = (bool(mask & 1), bool(mask & 2),
                                bool(mask & 4), bool(mask & 8))
            dt = dtypes[k % 3]
            tg = "i32" if k % 2 else "i64"
            name = "grid_%s_%s%s%s%s_%s_%s" % (
                red, "w" if wts else "-", "s" if sm else "-",
                "i" if ign else "-", "z" if zl else "-", dt, tg)
            out.append(Case(
                name, dtype=dt, target=tg, rows=6, cols=9, reduction=red,
                weights=wts, eps=0.2 if sm else 0.0,
                ignore_index=(-100 if k % 4 < 2 else 3) if ign else -100,
                ignore_frac=0.35 if ign else 0.0, z=1e-2 if zl else 0.0,
                G=(1.0, 0.5, 3.0, -1.25)[k % 4],
                grad_rows=(red == "none" and k % 2 == 0), seed=1000 + k))
            k += 1
        for mask in range(8):
            wts, sm, zl = bool(mask & 1), bool(mask & 2), bool(mask & 4)
            dt = dtypes[k % 3]
            name = "grid_%s_%s%s%s_%s_probs" % (
                red, "w" if wts else "-", "s" if sm else "-",
                "z" if zl else "-", dt)
            out.append(Case(
                name, dtype=dt, target="probs", rows=6, cols=9,
                reduction=red, weights=wts, eps=0.15 if sm else 0.0,
                z=2e-2 if zl else 0.0, G=(1.0, 0.5, 3.0, -1.25)[k % 4],
                grad_rows=(red == "none" and k % 2 == 1),
                onehot=(mask == 0), seed=1000 + k))
            k += 1

    # The seed article: x = [1,2,3] x3, class indices 2, 1, 0 / one-hot.
    seed_x = [1, 2, 3] * 3
    out.append(Case("seed_indices", rows=3, cols=3, x=seed_x, y=[2, 1, 0]))
    out.append(Case("seed_onehot", target="probs", rows=3, cols=3, x=seed_x,
                    probs=[0, 0, 1, 0, 1, 0, 1, 0, 0]))
    out.append(Case("seed_softmax", op="softmax", rows=3, cols=3, x=seed_x))
    out.append(Case("seed_nll", op="nll", rows=3, cols=3, x=seed_x,
                    y=[2, 1, 0]))

    # Every row ignored: mean is NaN (or 0 with all_ignored_zero), sum 0,
    # the gradient zero.
    allign = [-100] * 4
    for red in ("mean", "sum", "none"):
        out.append(Case("allignored_%s" % red, rows=4, cols=5, y=allign,
                        reduction=red, eps=0.1, z=1e-3, weights=True,
                        seed=2001))
    out.append(Case("allignored_mean_zero", rows=4, cols=5, y=allign,
                    aiz=1, seed=2002))
    out.append(Case("allignored_mean_zero_f16_smooth", dtype="f16", rows=4,
                    cols=5, y=allign, aiz=1, eps=0.3, seed=2003))
    out.append(Case("allignored_mean_normalizer", rows=4, cols=5, y=allign,
                    D=8.0, seed=2004))
    out.append(Case("allignored_mean_ii2", rows=3, cols=5, y=[2, 2, 2],
                    ignore_index=2, weights=True, G=2.0, seed=2005))
    out.append(Case("someignored_mean_zero", rows=5, cols=6,
                    y=[1, -100, 4, -100, 0], aiz=1, seed=2006))

    # Zero rows.
    for red in ("mean", "sum", "none"):
        out.append(Case("rows0_%s" % red, rows=0, cols=7, reduction=red,
                        y=[], seed=2010))
    out.append(Case("rows0_mean_zero", rows=0, cols=7, y=[], aiz=1,
                    seed=2011))
    out.append(Case("rows0_probs_sum", target="probs", rows=0, cols=7,
                    reduction="sum", seed=2012))
    out.append(Case("rows0_probs_mean", target="probs", rows=0, cols=7,
                    seed=2013))
    out.append(Case("rows0_softmax", op="softmax", rows=0, cols=7,
                    seed=2014))

    # One class.
    out.append(Case("cols1_indices", rows=4, cols=1, y=[0, 0, 0, 0],
                    eps=0.3, z=0.05, weights=True, seed=2020))
    out.append(Case("cols1_ignored", rows=4, cols=1, y=[0, -100, 0, -100],
                    reduction="sum", seed=2021))
    out.append(Case("cols1_probs", target="probs", rows=3, cols=1,
                    probs=[1, 0.5, 1], reduction="sum", seed=2022))
    out.append(Case("cols1_softmax", op="softmax", rows=3, cols=1,
                    seed=2023))
    out.append(Case("cols1_nll", op="nll", rows=3, cols=1, y=[0, 0, 0],
                    reduction="sum", seed=2024))

    # NaN in one row: that row's loss and gradient are NaN, the others are
    # untouched; an ignored NaN row gives exactly 0 (SEMANTICS deviation).
    out.append(Case("nan_row_none", rows=5, cols=7, reduction="none",
                    edit=nan_row(2), seed=2030))
    out.append(Case("nan_row_mean", rows=5, cols=7, edit=nan_row(2),
                    eps=0.1, seed=2031))
    out.append(Case("nan_row_sum_bf16", dtype="bf16", rows=5, cols=7,
                    reduction="sum", edit=nan_row(0), z=1e-2, seed=2032))
    out.append(Case("nan_row_ignored_none", rows=5, cols=7, reduction="none",
                    y=[1, 2, -100, 4, 5], edit=nan_row(2), eps=0.2, z=1e-2,
                    weights=True, seed=2033))
    out.append(Case("nan_row_ignored_mean", rows=5, cols=7,
                    y=[1, 2, -100, 4, 5], edit=nan_row(2), seed=2034))
    out.append(Case("nan_row_ignored_sum_f16", dtype="f16", rows=5, cols=7,
                    reduction="sum", y=[1, 2, 3, 4, 3], ignore_index=3,
                    edit=nan_row(2), eps=0.1, seed=2035))
    out.append(Case("nan_row_probs_none", target="probs", rows=4, cols=6,
                    reduction="none", edit=nan_row(1), seed=2036))

    # -inf masked classes (the row keeps finite values).
    out.append(Case("masked_none", rows=5, cols=8, reduction="none",
                    edit=masked([0, 5]), seed=2040))
    out.append(Case("masked_mean_weights", rows=5, cols=8, weights=True,
                    edit=masked([3]), z=1e-2, seed=2041))
    out.append(Case("masked_f16", dtype="f16", rows=5, cols=8,
                    reduction="sum", edit=masked([1, 2, 7]), seed=2042))
    out.append(Case("masked_smoothing_inf", rows=4, cols=8,
                    reduction="none", eps=0.1, edit=masked([6]), seed=2043))
    out.append(Case("masked_target_inf", rows=3, cols=6, reduction="none",
                    y=[4, 1, 2], edit=masked([4], target_masked=True),
                    seed=2044))
    out.append(Case("masked_softmax_bf16", op="softmax", dtype="bf16",
                    rows=4, cols=9, edit=masked([0, 8]), seed=2045))

    # Other ignore_index values: inside [0, C), positive outside, negative.
    out.append(Case("ignore_inside_weights_smooth", rows=8, cols=5,
                    ignore_index=0, weights=True, eps=0.25, seed=2050))
    out.append(Case("ignore_outside_positive", rows=6, cols=5,
                    ignore_index=1000, y=[1000, 2, 1000, 0, 4, 3],
                    seed=2051))
    out.append(Case("ignore_minus1_i32", target="i32", rows=6, cols=5,
                    ignore_index=-1, y=[-1, 2, -1, 0, 4, 3],
                    reduction="sum", seed=2052))
    out.append(Case("ignore_inside_last_class_none_bf16", dtype="bf16",
                    rows=8, cols=5, ignore_index=4, reduction="none",
                    grad_rows=True, z=1e-2, seed=2053))

    # Normalizer D replaces the mean's denominator.
    out.append(Case("normalizer_indices", rows=6, cols=7, D=37.0,
                    ignore_frac=0.3, seed=2060))
    out.append(Case("normalizer_weights_smooth_z", rows=6, cols=7, D=5.5,
                    weights=True, eps=0.1, z=1e-2, G=2.0, ignore_frac=0.3,
                    seed=2061))
    out.append(Case("normalizer_probs_f16", dtype="f16", target="probs",
                    rows=6, cols=7, D=100.0, weights=True, seed=2062))
    out.append(Case("normalizer_nll", op="nll", rows=6, cols=7, D=12.0,
                    weights=True, ignore_frac=0.3, seed=2063))

    # z-loss alone, large coefficient.
    out.append(Case("zloss_large_i32", target="i32", rows=5, cols=7, z=0.5,
                    seed=2070))
    out.append(Case("zloss_probs_bf16_none", dtype="bf16", target="probs",
                    rows=5, cols=7, reduction="none", z=0.25, seed=2071))

    # Label smoothing extremes.
    out.append(Case("smoothing_one", rows=5, cols=7, eps=1.0,
                    weights=True, seed=2080))
    out.append(Case("smoothing_one_probs", target="probs", rows=5, cols=7,
                    eps=1.0, seed=2081))

    # NLL gather over log-probabilities.
    for i, red in enumerate(("none", "sum", "mean")):
        out.append(Case("nll_%s" % red, op="nll", rows=6, cols=9,
                        reduction=red, weights=(i != 1), ignore_frac=0.3,
                        G=(1.0, -2.0, 0.75)[i], grad_rows=(red == "none"),
                        target="i32" if i == 1 else "i64", seed=2090 + i))
    out.append(Case("nll_f16_ignore_inside", op="nll", dtype="f16", rows=6,
                    cols=9, ignore_index=2, seed=2093))
    out.append(Case("nll_bf16_allignored_zero", op="nll", dtype="bf16",
                    rows=3, cols=4, y=[-100] * 3, aiz=1, seed=2094))
    out.append(Case("nll_allignored_nan", op="nll", rows=3, cols=4,
                    y=[-100] * 3, seed=2095))

    # Primitives on each storage type.
    for i, dt in enumerate(dtypes):
        out.append(Case("softmax_%s" % dt, op="softmax", dtype=dt, rows=4,
                        cols=33, seed=2100 + i))

    # Larger rows, wide logit ranges.
    out.append(Case("shape_4x33_f32", rows=4, cols=33, weights=True,
                    eps=0.1, ignore_frac=0.25, seed=2110))
    out.append(Case("shape_3x1000_f32", rows=3, cols=1000, eps=0.05,
                    z=1e-4, seed=2111))
    out.append(Case("shape_3x1000_bf16_none", dtype="bf16", rows=3,
                    cols=1000, reduction="none", grad_rows=True, seed=2112))
    out.append(Case("shape_2x4097_f16_probs", dtype="f16", target="probs",
                    rows=2, cols=4097, reduction="sum", seed=2113))
    out.append(Case("wide_pm100_f32", rows=4, cols=257, scale=100.0,
                    reduction="none", weights=True, eps=0.1, seed=2114))
    out.append(Case("wide_pm100_probs", target="probs", rows=4, cols=257,
                    scale=100.0, z=1e-4, seed=2115))
    out.append(Case("wide_softmax_3x1000", op="softmax", rows=3, cols=1000,
                    scale=100.0, seed=2116))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="compute and self-check only; write nothing")
    args = ap.parse_args()
    torch.set_num_threads(1)
    all_cases = cases() + nd_cases()
    names = [c.name for c in all_cases]
    assert len(names) == len(set(names)), "duplicate case names"
    if not args.check:
        if os.path.isdir(OUT):
            shutil.rmtree(OUT)
        os.makedirs(OUT)
    for c in all_cases:
        generate(c, not args.check)
    if args.check:
        print("%d cases agree with the SEMANTICS formulas" % len(all_cases))
        return
    with open(os.path.join(OUT, "manifest.txt"), "w") as f:
        f.write("# Generated by tests/gen_oracle.py; do not edit.\n")
        f.write("# " + COLUMNS + "\n")
        for c in all_cases:
            f.write(c.manifest_line() + "\n")
    size = sum(os.path.getsize(os.path.join(dp, fn))
               for dp, _, fns in os.walk(OUT) for fn in fns)
    print("%d cases, %d bytes in %s" % (len(all_cases), size, OUT))


if __name__ == "__main__":
    main()
