"""Shared helpers of the clxent Python tests.

Run against the installed package, on the device CLXENT_DEVICE names
(unset: clxent's default choice):

    CLXENT_DEVICE=pocl python -m pytest -q python/tests

The oracle is PyTorch in float64 on the values the device actually sees
(inputs rounded to the storage dtype first); the tolerances are those of
the C oracle tests (tests/common/oracle_harness.h; docs/semantics.md,
section 10): an f32 bound plus one rounding to a 16-bit output.
"""
import os
import sys

import numpy as np
import pytest

# The source tree (python/) has no compiled clxent._native: import the
# installed package even when pytest runs from python/ itself.
_SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:] = [p for p in sys.path
               if os.path.abspath(p or os.curdir) != _SRC]

import clxent  # noqa: E402

if os.environ.get("CLXENT_REQUIRE_PYTHON") == "1":
    # CI installs both: there an importorskip would hide a broken install.
    # clxent.torch loads the OpenCL drivers before torch (Intel's runtime).
    import clxent.torch  # noqa: E402,F401
    import pyopencl  # noqa: E402,F401

assert os.path.abspath(os.path.dirname(clxent.__file__)) != \
    os.path.join(_SRC, "clxent"), "testing the source tree, not the installed package"

DEVICE = os.environ.get("CLXENT_DEVICE") or None
DTYPES = ("f32", "f16", "bf16")
REDUCTIONS = ("none", "sum", "mean")

# unit roundoff of one rounding to the storage dtype
UNIT = {"f32": 0.0, "f16": 2.0 ** -11, "bf16": 2.0 ** -8}


@pytest.fixture(scope="session")
def ctx():
    """The context of the device under test, shared by the session."""
    with clxent.Context(DEVICE) as c:
        yield c


# ---------------------------------------------------------------------------
# Values and tolerances.

def rng(seed):
    return np.random.default_rng(seed)


def round_to(values, dtype):
    """float64 copy of values rounded (nearest even) to a storage dtype: what
    the device computes from."""
    import torch
    t = torch.from_numpy(np.asarray(values, dtype=np.float32).copy())
    if dtype != "f32":
        t = t.to(torch.float16 if dtype == "f16" else torch.bfloat16)
    return t.to(torch.float64).numpy()


def storage(values, dtype):
    """numpy array to hand to clxent for a dtype: float32 for f32 and bf16
    (with dtype="bf16"), float16 for f16."""
    return np.asarray(values, dtype=np.float16 if dtype == "f16" else np.float32)


def tol(kind, dtype):
    """(abs, rel1, u) of oracle_harness.h: |got - want| <= abs +
    rel1*max(1, |want|) + u*|want|. kind: loss (always f32), grad, softmax
    (absolute like grad), log_softmax (relative like loss, in dtype)."""
    u = UNIT[dtype]
    f16_floor = 2.0 ** -25 if dtype == "f16" else 0.0
    if kind == "loss":
        return 0.0, 2e-6, 0.0
    if kind in ("grad", "softmax"):
        return 2e-6 * (1 + u) + f16_floor, 0.0, u
    if kind == "log_softmax":
        return f16_floor, 2e-6 * (1 + u), u
    raise ValueError(kind)


def assert_close(got, want, bound, what=""):
    """fx_close element-wise: NaN matches NaN, inf matches itself, finite
    values within the (abs, rel1, u) bound; shapes must match."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, want {want.shape}"
    a, rel1, u = bound
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan), f"{what}: NaN where {want} has none"
    inf = np.isinf(want)
    assert np.array_equal(got[inf], want[inf]), f"{what}: infinities differ"
    fin = ~(nan | inf)
    g, w = got[fin], want[fin]
    limit = a + rel1 * np.maximum(1.0, np.abs(w)) + u * np.abs(w)
    err = np.abs(g - w)
    bad = ~(err <= limit)
    if bad.any():
        i = int(np.argmax(np.where(bad, err - limit, -np.inf)))
        pytest.fail(f"{what}: {bad.sum()} of {g.size} values off; worst got "
                    f"{g[i]!r} want {w[i]!r} (|diff| {err[i]:.3g} > {limit[i]:.3g})")


# ---------------------------------------------------------------------------
# The PyTorch float64 oracle.

def transform(xt, softcap=0.0, logit_scale=1.0):
    """docs/semantics.md section 12 in torch ops (autograd chains through)."""
    if logit_scale != 1.0:
        xt = logit_scale * xt
    if softcap:
        xt = softcap * xt.div(softcap).tanh()
    return xt


def oracle_ce(x, target, weight=None, ignore_index=-100, reduction="mean",
              label_smoothing=0.0, z_loss=0.0, softcap=0.0, logit_scale=1.0):
    """(loss, grad of loss.sum()) in float64 from F.cross_entropy, plus the
    z-loss (z*lse^2 per valid position, reduced as the loss) and clxent's
    documented deviations (ignored rows and an all-ignored mean have a zero
    gradient). x, target (and weight) are taken exactly as given."""
    import torch
    import torch.nn.functional as F
    xt = torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
    xs = transform(xt, softcap, logit_scale)
    probs = np.issubdtype(np.asarray(target).dtype, np.floating)
    tt = torch.tensor(np.asarray(target, dtype=np.float64 if probs else np.int64))
    wt = None if weight is None else torch.tensor(np.asarray(weight, np.float64))
    cdim = 0 if xt.dim() == 1 else 1
    args = dict(weight=wt, label_smoothing=label_smoothing)
    if not probs:
        args["ignore_index"] = ignore_index
    valid = torch.ones(xt.shape[:cdim] + xt.shape[cdim + 1:], dtype=torch.bool) \
        if probs else tt != ignore_index
    loss = F.cross_entropy(xs, tt, reduction=reduction, **args)
    if z_loss:
        lse = torch.logsumexp(xs, cdim)
        zterm = torch.where(valid, z_loss * lse * lse, torch.zeros_like(lse))
        if reduction == "none":
            loss = loss + zterm
        elif reduction == "sum":
            loss = loss + zterm.sum()
        else:
            if probs:
                den = float(valid.numel())
            elif wt is None:
                den = float(valid.sum())
            else:
                den = float(wt[tt[valid]].sum())
            loss = loss + zterm.sum() / den
    loss.sum().backward()
    grad = xt.grad.numpy().copy()
    grad = grad * np.expand_dims(valid.numpy(), cdim)  # ignored rows: exact 0
    if reduction == "mean" and not probs and not valid.any():
        grad[...] = 0.0
    return loss.detach().numpy().copy(), grad


def oracle_nll(logp, target, weight=None, ignore_index=-100, reduction="mean"):
    import torch
    import torch.nn.functional as F
    wt = None if weight is None else torch.tensor(np.asarray(weight, np.float64))
    return F.nll_loss(torch.tensor(np.asarray(logp, np.float64)),
                      torch.tensor(np.asarray(target, np.int64)), weight=wt,
                      ignore_index=ignore_index, reduction=reduction).numpy()


def oracle_softmax(x, dim=-1, log=False, softcap=0.0, logit_scale=1.0):
    import torch
    import torch.nn.functional as F
    xt = transform(torch.tensor(np.asarray(x, dtype=np.float64)), softcap, logit_scale)
    if xt.dim() == 0:
        xt, dim = xt.reshape(1), 0
        out = (F.log_softmax if log else F.softmax)(xt, dim=dim)
        return out.reshape(()).numpy()
    return (F.log_softmax if log else F.softmax)(xt, dim=dim).numpy()


# ---------------------------------------------------------------------------
# Random inputs.

def logits(shape, seed, scale=3.0):
    return rng(seed).standard_normal(shape) * scale


def class_indices(shape, classes, seed, ignore_frac=0.0, ignore_index=-100):
    """Class indices of the input's shape (the class axis dropped)."""
    rows = shape[:1] + shape[2:] if len(shape) > 1 else ()
    r = rng(seed + 1)
    y = r.integers(0, classes, size=rows).astype(np.int64)
    if ignore_frac:
        y = np.where(r.random(rows) < ignore_frac, ignore_index, y)
    return y


def probabilities(shape, seed):
    """Rows of probabilities along the class axis (axis 1, or 0 for (C))."""
    axis = 0 if len(shape) == 1 else 1
    e = np.exp(rng(seed + 2).standard_normal(shape))
    return e / e.sum(axis=axis, keepdims=True)


def class_weights(classes, seed):
    return (rng(seed + 3).random(classes) * 1.5 + 0.25).astype(np.float32)


def pyopencl_device(info):
    """The pyopencl.Device of a clxent device (an entry of clxent.devices()),
    found by platform and device name (the index among same-named ones)."""
    import pyopencl as cl
    if info["backend"] == "host":
        pytest.skip("the host backend has no OpenCL queue")
    plats = [p for p in cl.get_platforms() if p.name == info["platform"]]
    assert plats, f"pyopencl sees no platform {info['platform']!r}"
    plat = plats[0] if len(plats) == 1 else cl.get_platforms()[info["platform_index"]]
    devs = plat.get_devices()
    named = [d for d in devs if d.name == info["name"]]
    assert named, f"pyopencl sees no device {info['name']!r}"
    dev = named[0] if len(named) == 1 else devs[info["device_index"]]
    assert dev.name == info["name"]
    return dev
