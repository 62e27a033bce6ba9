"""numpy path against PyTorch float64: cross_entropy, nll_loss, log_softmax,
softmax over every layout, reduction, option and storage dtype."""
import zlib

import numpy as np
import pytest

from conftest import (DTYPES, REDUCTIONS, assert_close, class_indices, class_weights,
                      logits, oracle_ce, oracle_nll, oracle_softmax, probabilities,
                      round_to, storage, tol)

pytest.importorskip("torch")

# (C), (N, C), (N, C, d1), (N, C, d1, d2); C = 1; inner 1, 2, 3, 17, 6
SHAPES = [(7,), (1,), (6, 7), (5, 1), (3, 5, 1), (2, 4, 2), (2, 3, 3), (2, 6, 17),
          (2, 5, 3, 2), (2, 1, 3, 3)]
GRAD_DTYPE = {"f32": np.float32, "f16": np.float16, "bf16": np.float32}


def check_ce(ctx, x, target, dtype="f32", seed=None, **opts):
    """Runs cross_entropy on x and target rounded to dtype and compares loss
    and gradient with the oracle on exactly those values."""
    xr = round_to(x, dtype)
    probs = np.issubdtype(np.asarray(target).dtype, np.floating)
    tr = round_to(target, dtype) if probs else target
    loss, grad = ctx.cross_entropy(storage(xr, dtype), storage(tr, dtype) if probs
                                   else tr, dtype=dtype, **opts)
    want_loss, want_grad = oracle_ce(xr, tr, **opts)
    assert loss.dtype == np.float32 and grad.dtype == GRAD_DTYPE[dtype]
    assert grad.shape == xr.shape
    assert_close(loss, want_loss, tol("loss", dtype), "loss")
    assert_close(grad, want_grad, tol("grad", dtype), "grad")
    return loss, grad


def loss_shape(shape, reduction):
    if reduction != "none" or len(shape) == 1:
        return ()
    return shape[:1] + shape[2:]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", ["indices", "probs"])
def test_layouts_f32(ctx, shape, reduction, kind):
    seed = zlib.crc32(repr((shape, reduction)).encode()) % 1000
    C = shape[0] if len(shape) == 1 else shape[1]
    target = class_indices(shape, C, seed) if kind == "indices" else \
        probabilities(shape, seed)
    loss, _ = check_ce(ctx, logits(shape, seed), target, reduction=reduction)
    assert loss.shape == loss_shape(shape, reduction)


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
@pytest.mark.parametrize("shape", [(7,), (6, 7), (2, 6, 17), (2, 5, 3, 2)], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", ["indices", "probs"])
def test_layouts_16bit(ctx, dtype, shape, reduction, kind):
    C = shape[0] if len(shape) == 1 else shape[1]
    target = class_indices(shape, C, 11) if kind == "indices" else \
        probabilities(shape, 11)
    check_ce(ctx, logits(shape, 11), target, dtype=dtype, reduction=reduction)


# option sets: (ignore fraction, probability targets, cross_entropy options)
OPTIONS = {
    "weights": (0.0, False, dict(weight=True)),
    "ignore": (0.35, False, {}),
    "ignore_minus1": (0.35, False, dict(ignore_index=-1)),
    "ignore_in_range": (0.0, False, dict(ignore_index=2)),
    "smoothing": (0.0, False, dict(label_smoothing=0.1)),
    "smoothing_1": (0.2, False, dict(label_smoothing=1.0)),
    "weights_smoothing_ignore": (0.3, False, dict(weight=True, label_smoothing=0.1)),
    "z_loss": (0.0, False, dict(z_loss=1e-2)),
    "z_all": (0.3, False, dict(weight=True, label_smoothing=0.1, z_loss=1e-2)),
    "softcap": (0.0, False, dict(softcap=2.0)),
    "logit_scale": (0.0, False, dict(logit_scale=1.5)),
    "transforms_z": (0.25, False, dict(softcap=6.0, logit_scale=0.75, z_loss=1e-2)),
    "probs_smoothing": (0.0, True, dict(label_smoothing=0.2)),
    "probs_weights_smoothing": (0.0, True, dict(weight=True, label_smoothing=0.1)),
    "probs_z": (0.0, True, dict(z_loss=1e-2)),
    "probs_transforms": (0.0, True, dict(softcap=2.0, logit_scale=1.5, z_loss=1e-3)),
}


def option_case(shape, name, seed):
    frac, probs, opts = OPTIONS[name]
    opts = dict(opts)
    C = shape[0] if len(shape) == 1 else shape[1]
    if opts.get("weight"):
        opts["weight"] = class_weights(C, seed)
    if probs:
        target = probabilities(shape, seed)
    else:
        target = class_indices(shape, C, seed, frac, opts.get("ignore_index", -100))
    return logits(shape, seed), target, opts


@pytest.mark.parametrize("name", list(OPTIONS))
@pytest.mark.parametrize("shape", [(7,), (9, 7), (2, 5, 3, 2)], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_options(ctx, name, shape, reduction):
    x, target, opts = option_case(shape, name, 5)
    check_ce(ctx, x, target, reduction=reduction, **opts)


@pytest.mark.parametrize("name", list(OPTIONS))
@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_options_16bit(ctx, name, dtype):
    x, target, opts = option_case((4, 6, 5), name, 9)
    check_ce(ctx, x, target, dtype=dtype, reduction="mean", **opts)


def test_ignored_rows_are_exact_zeros(ctx):
    x = logits((8, 5), 1)
    y = np.array([0, -100, 4, -100, 1, 2, -100, 3])
    loss, grad = ctx.cross_entropy(x, y, reduction="none", z_loss=0.1,
                                   label_smoothing=0.2)
    ignored = y == -100
    assert (loss[ignored] == 0).all() and (loss[~ignored] > 0).all()
    assert (grad[ignored] == 0).all() and (grad[~ignored] != 0).all()


@pytest.mark.parametrize("shape", [(6, 7), (2, 3, 4), (5,)], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("opts", [{}, dict(z_loss=1e-2, label_smoothing=0.1)],
                         ids=["plain", "z_smooth"])
def test_all_ignored(ctx, shape, reduction, opts):
    """A mean over no valid position is NaN as in PyTorch; sum 0; none zeros;
    the gradient is zero throughout."""
    y = np.full(shape[:1] + shape[2:] if len(shape) > 1 else (), -100)
    x = logits(shape, 3)
    loss, grad = check_ce(ctx, x, y, reduction=reduction, **opts)
    if reduction == "mean":
        assert np.isnan(loss)
    else:
        assert (loss == 0).all()
    assert (grad == 0).all()


@pytest.mark.parametrize("kind", ["indices", "probs"])
def test_forward_only(ctx, kind):
    shape = (3, 6, 4)
    x = logits(shape, 21).astype(np.float32)
    target = class_indices(shape, 6, 21) if kind == "indices" else \
        probabilities(shape, 21)
    full, grad = ctx.cross_entropy(x, target, z_loss=1e-2, label_smoothing=0.1)
    alone, none = ctx.cross_entropy(x, target, z_loss=1e-2, label_smoothing=0.1,
                                    grad=False)
    assert none is None and grad is not None
    want, _ = oracle_ce(x, round_to(target, "f32") if kind == "probs" else target,
                        z_loss=1e-2, label_smoothing=0.1)
    assert_close(alone, want, tol("loss", "f32"), "forward loss")
    assert_close(alone, full, tol("loss", "f32"), "forward vs fused")


@pytest.mark.parametrize("shape", [(7,), (6, 7), (5, 1), (2, 6, 17), (2, 5, 3, 2)],
                         ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("variant", ["plain", "weights_ignore", "f16", "float64"])
def test_nll_loss(ctx, shape, reduction, variant):
    C = shape[0] if len(shape) == 1 else shape[1]
    logp = oracle_softmax(logits(shape, 31), dim=0 if len(shape) == 1 else 1, log=True)
    y = class_indices(shape, C, 31, 0.3 if variant == "weights_ignore" else 0.0)
    w = class_weights(C, 31) if variant == "weights_ignore" else None
    given = {"f16": logp.astype(np.float16), "float64": logp}.get(
        variant, logp.astype(np.float32))
    loss = ctx.nll_loss(given, y, weight=w, reduction=reduction)
    want = oracle_nll(given.astype(np.float32).astype(np.float64), y, weight=w,
                      reduction=reduction)
    assert loss.dtype == np.float32 and loss.shape == loss_shape(shape, reduction)
    assert_close(loss, want, tol("loss", "f32"), "nll loss")


@pytest.mark.parametrize("dim", [-4, -3, -2, -1, 0, 1, 2, 3])
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_every_dim(ctx, dim, log, dtype):
    xr = round_to(logits((3, 4, 5, 2), 41 + dim), dtype)
    fn = ctx.log_softmax if log else ctx.softmax
    out = fn(storage(xr, dtype), dim=dim, dtype=dtype)
    assert out.shape == xr.shape and out.dtype == GRAD_DTYPE[dtype]
    assert_close(out, oracle_softmax(xr, dim, log),
                 tol("log_softmax" if log else "softmax", dtype), f"dim {dim}")


@pytest.mark.parametrize("value", [2.5, -40.0, np.float16(1.0)])
@pytest.mark.parametrize("dim", [0, -1])
def test_softmax_0d(ctx, value, dim):
    """A 0-d input is a row of one element: softmax 1, log_softmax 0."""
    x = np.array(value)
    assert ctx.softmax(x, dim=dim).shape == ()
    assert ctx.softmax(x, dim=dim) == 1.0
    assert ctx.log_softmax(x, dim=dim) == 0.0
    assert ctx.log_softmax(x, dim=dim).dtype == (np.float16 if x.dtype == np.float16
                                                 else np.float32)


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("softcap,logit_scale", [(2.0, 1.0), (0.0, 1.5), (6.0, 0.5)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_transforms(ctx, log, softcap, logit_scale, dtype):
    xr = round_to(logits((4, 9, 3), 51), dtype)
    fn = ctx.log_softmax if log else ctx.softmax
    out = fn(storage(xr, dtype), dim=1, softcap=softcap, logit_scale=logit_scale,
             dtype=dtype)
    want = oracle_softmax(xr, 1, log, softcap, logit_scale)
    assert_close(out, want, tol("log_softmax" if log else "softmax", dtype))
    plain = oracle_softmax(xr, 1, log)
    assert np.abs(want - plain).max() > 1e-2  # the transform matters here


def test_float64_input_is_f32(ctx):
    x = logits((5, 7), 61)  # float64, not representable in f32
    y = class_indices((5, 7), 7, 61)
    loss, grad = ctx.cross_entropy(x, y, reduction="none")
    assert grad.dtype == np.float32 and loss.dtype == np.float32
    want_loss, want_grad = oracle_ce(x.astype(np.float32), y, reduction="none")
    assert_close(loss, want_loss, tol("loss", "f32"))
    assert_close(grad, want_grad, tol("grad", "f32"))
    out = ctx.log_softmax(x, dim=0)
    assert out.dtype == np.float32
    assert_close(out, oracle_softmax(x.astype(np.float32), 0, log=True),
                 tol("log_softmax", "f32"))


def test_float16_stays_f16(ctx):
    x = logits((5, 7), 62).astype(np.float16)
    y = class_indices((5, 7), 7, 62)
    _, grad = ctx.cross_entropy(x, y)
    assert grad.dtype == np.float16
    assert ctx.softmax(x).dtype == np.float16


def test_non_contiguous_inputs(ctx):
    """Transposed and sliced numpy views give the results of their
    contiguous copies, bit for bit, and match the oracle."""
    base = logits((7, 12), 71).astype(np.float32)
    x = base.T[::2]                      # (6, 7), strides (8, 48)
    assert not x.flags.c_contiguous
    yfull = class_indices((12, 7), 7, 71)
    y = yfull[::2]                       # (6,), stride 16
    w = np.repeat(class_weights(7, 71), 2)[::2]  # (7,), stride 8
    got = ctx.cross_entropy(x, y, weight=w, reduction="none", label_smoothing=0.1)
    want = ctx.cross_entropy(np.ascontiguousarray(x), np.ascontiguousarray(y),
                             weight=np.ascontiguousarray(w), reduction="none",
                             label_smoothing=0.1)
    for g, e in zip(got, want):
        np.testing.assert_array_equal(g, e)
    wl, wg = oracle_ce(x, y, weight=w, reduction="none", label_smoothing=0.1)
    assert_close(got[0], wl, tol("loss", "f32"))
    assert_close(got[1], wg, tol("grad", "f32"))

    # probabilities transposed; an N-d input with its class axis last, moved
    p = probabilities((6, 7), 72).T.copy().T
    assert not p.flags.c_contiguous
    loss, grad = ctx.cross_entropy(x, p)
    wl, wg = oracle_ce(x, p.astype(np.float32))
    assert_close(loss, wl, tol("loss", "f32"))
    assert_close(grad, wg, tol("grad", "f32"))

    x4 = logits((2, 3, 4, 5), 73).astype(np.float32).transpose(0, 3, 1, 2)  # (2,5,3,4)
    y4 = class_indices((2, 5, 3, 4), 5, 73)
    loss, grad = ctx.cross_entropy(x4, y4, reduction="sum")
    wl, wg = oracle_ce(x4, y4, reduction="sum")
    assert_close(loss, wl, tol("loss", "f32"))
    assert_close(grad, wg, tol("grad", "f32"))
    out = ctx.softmax(x4[:, :, ::2], dim=1)
    assert_close(out, oracle_softmax(x4[:, :, ::2], 1), tol("softmax", "f32"))


# Arrays of 64 KiB and more may be used in place on a CPU device (no copy):
# the same answers, inputs left as they were, outputs their own memory.
@pytest.mark.parametrize("shape,dtype", [((64, 300), "f32"), ((8, 50, 41), "f32"),
                                         ((64, 600), "f16"), ((64, 600), "bf16")],
                         ids=str)
@pytest.mark.parametrize("kind", ["indices", "probs"])
def test_large_arrays(ctx, shape, dtype, kind):
    C = shape[1]
    target = class_indices(shape, C, 81, 0.1) if kind == "indices" else \
        probabilities(shape, 81)
    check_ce(ctx, logits(shape, 81), target, dtype=dtype, label_smoothing=0.05,
             reduction="sum")
    xr = round_to(logits(shape, 82), dtype)
    out = ctx.softmax(storage(xr, dtype), dim=1, dtype=dtype)
    assert_close(out, oracle_softmax(xr, 1), tol("softmax", dtype))


def test_large_inputs_unchanged_and_outputs_distinct(ctx):
    x = logits((64, 300), 83).astype(np.float32)
    y = class_indices((64, 300), 300, 83)
    x0, y0 = x.copy(), y.copy()
    loss1, grad1 = ctx.cross_entropy(x, y, reduction="none")
    soft1 = ctx.softmax(x)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)
    for out in (loss1, grad1, soft1):
        assert not np.shares_memory(out, x) and not np.shares_memory(out, y)
    keep = grad1.copy(), soft1.copy()

    # new values in the same arrays: the next call sees them
    x[:] = logits((64, 300), 84)
    y[:] = class_indices((64, 300), 300, 84)
    loss2, grad2 = ctx.cross_entropy(x, y, reduction="none")
    soft2 = ctx.softmax(x)
    want_loss, want_grad = oracle_ce(x, y, reduction="none")
    assert_close(loss2, want_loss, tol("loss", "f32"))
    assert_close(grad2, want_grad, tol("grad", "f32"))
    assert_close(soft2, oracle_softmax(x), tol("softmax", "f32"))
    # and the first results were not overwritten
    np.testing.assert_array_equal(grad1, keep[0])
    np.testing.assert_array_equal(soft1, keep[1])
    assert not np.shares_memory(grad1, grad2) and not np.shares_memory(soft1, soft2)


def test_read_only_inputs(ctx):
    for shape in [(4, 5), (64, 300)]:
        x = logits(shape, 85).astype(np.float32)
        y = class_indices(shape, shape[1], 85)
        w = class_weights(shape[1], 85)
        for a in (x, y, w):
            a.setflags(write=False)
        loss, grad = ctx.cross_entropy(x, y, weight=w)
        want_loss, want_grad = oracle_ce(x, y, weight=w)
        assert_close(loss, want_loss, tol("loss", "f32"))
        assert_close(grad, want_grad, tol("grad", "f32"))
        assert_close(ctx.log_softmax(x), oracle_softmax(x, log=True),
                     tol("log_softmax", "f32"))


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_conversion_rounds_to_nearest_even(ctx, dtype):
    """float32 values not representable in dtype are rounded to nearest even
    by the binding, as torch's .to(dtype) does."""
    x = logits((8, 6, 5), 86).astype(np.float32)
    p = probabilities((8, 6, 5), 86).astype(np.float32)
    half = 2.0 ** -8 if dtype == "bf16" else 2.0 ** -11  # half an ulp at 1
    x[0, :2, 0] = [1.0 + half, 1.0 + 3 * half]  # ties: to 1 and to 1 + 4 * half
    assert not np.array_equal(round_to(x, dtype), x)
    for target in (class_indices((8, 6, 5), 6, 86), p):
        loss, grad = ctx.cross_entropy(x, target, dtype=dtype, reduction="none")
        t = round_to(target, dtype) if target is p else target
        want_loss, want_grad = oracle_ce(round_to(x, dtype), t, reduction="none")
        assert_close(loss, want_loss, tol("loss", dtype))
        assert_close(grad, want_grad, tol("grad", dtype))
    out = ctx.softmax(x, dim=1, dtype=dtype)
    assert_close(out, oracle_softmax(round_to(x, dtype), 1), tol("softmax", dtype))


@pytest.mark.parametrize("shape", [(0, 5), (0, 5, 3), (2, 5, 0)], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_empty_batch(ctx, shape, reduction):
    """No position at all: mean NaN (as PyTorch), sum 0, none empty."""
    check_ce(ctx, np.zeros(shape), np.zeros(shape[:1] + shape[2:], np.int64),
             reduction=reduction)
    check_ce(ctx, np.zeros(shape), np.full(shape, 0.2), reduction=reduction)
    assert ctx.softmax(np.zeros(shape, np.float32), dim=1).shape == shape
