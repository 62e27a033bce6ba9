"""Context.from_queue: pyopencl arrays used in place (no copies), outputs as
pyopencl arrays carrying their completion event, wait_for, strided views,
offsets and bf16 bits; results equal the numpy path's on the same device."""
import threading
import time

import numpy as np
import pytest

import clxent
from clxent import _layout, ffi
from conftest import (assert_close, class_indices, class_weights, logits,
                      probabilities, pyopencl_device, tol)

cl = pytest.importorskip("pyopencl")
cla = pytest.importorskip("pyopencl.array")
COMPLETE = cl.command_execution_status.COMPLETE


@pytest.fixture(scope="module")
def cl_context(ctx):
    """A pyopencl context on the device of ctx (CLXENT_DEVICE), kept alive:
    Intel's runtime invalidates a context whose last handle goes, queue or
    not."""
    return cl.Context([pyopencl_device(ctx.device)])


@pytest.fixture(scope="module")
def queue(cl_context):
    return cl.CommandQueue(cl_context)


@pytest.fixture(scope="module")
def qctx(queue):
    with clxent.Context.from_queue(queue) as c:
        yield c


def dev(queue, a):
    return cla.to_device(queue, np.require(a, requirements="C"))  # 0-d stays 0-d


def same(got, want):
    """A pyopencl result equals the numpy path's, bit for bit."""
    assert isinstance(got, cla.Array)
    np.testing.assert_array_equal(got.get(), want)


def test_device_is_the_contexts(qctx, ctx):
    assert qctx.device["name"] == ctx.device["name"]
    assert qctx.device["platform"] == ctx.device["platform"]


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("shape", [(7,), (6, 7), (2, 5, 3, 2)], ids=str)
def test_results_equal_numpy_path(ctx, qctx, queue, dtype, shape):
    C = shape[0] if len(shape) == 1 else shape[1]
    x = logits(shape, 1).astype(dtype)
    y = class_indices(shape, C, 1, ignore_frac=0.2)
    p = probabilities(shape, 1).astype(dtype)
    w = class_weights(C, 1)
    xd, yd, pd, wd = (dev(queue, a) for a in (x, y, p, w))
    opts = dict(label_smoothing=0.1, z_loss=1e-2, softcap=5.0, reduction="none")
    for got, want in [(qctx.cross_entropy(xd, yd, weight=wd, **opts),
                       ctx.cross_entropy(x, y, weight=w, **opts)),
                      (qctx.cross_entropy(xd, pd, **opts), ctx.cross_entropy(x, p, **opts))]:
        same(got[0], want[0])
        same(got[1], want[1])
        assert got[1].dtype == dtype and got[1].shape == shape
    same(qctx.nll_loss(xd, yd, weight=wd, reduction="sum"),
         ctx.nll_loss(x, y, weight=w, reduction="sum"))
    for dim in range(-len(shape), len(shape)):
        same(qctx.softmax(xd, dim=dim), ctx.softmax(x, dim=dim))
        same(qctx.log_softmax(xd, dim=dim, logit_scale=2.0),
             ctx.log_softmax(x, dim=dim, logit_scale=2.0))


def test_int32_targets_and_0d(qctx, ctx, queue):
    x = logits((7,), 2).astype(np.float32)
    y = np.array(3, dtype=np.int32)
    same(qctx.cross_entropy(dev(queue, x), dev(queue, y))[0],
         ctx.cross_entropy(x, y)[0])
    z = dev(queue, np.array(1.5, np.float32))
    assert qctx.softmax(z).get() == 1.0 and qctx.log_softmax(z).get() == 0.0


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_empty_batch(qctx, ctx, queue, reduction):
    """No rows: the numpy path's results (0 for sum, NaN for mean, empty
    arrays), where an empty pyopencl array (no buffer) was refused."""
    x = np.zeros((0, 5), np.float32)
    y = np.zeros((0,), np.int64)
    got = qctx.cross_entropy(dev(queue, x), dev(queue, y), reduction=reduction)
    want = ctx.cross_entropy(x, y, reduction=reduction)
    for g, w in zip(got, want):
        assert isinstance(g, cla.Array) and g.shape == w.shape
        np.testing.assert_array_equal(g.get(), w)
    same(qctx.softmax(dev(queue, x)), ctx.softmax(x))


class Spy:
    """Stands in for clxent's cffi lib in a module: records which clxent_*
    functions run and the cl_mem behind every tensor an operation gets."""

    def __init__(self, real):
        self.real, self.calls, self.mems = real, [], []

    def _mem(self, buffer):
        if buffer != ffi.NULL:
            mem = self.real.clxent_buffer_mem(buffer)
            self.mems.append(int(ffi.cast("intptr_t", mem)))

    def __getattr__(self, name):
        attr = getattr(self.real, name)
        if not name.startswith("clxent_"):
            return attr

        def call(*args):
            self.calls.append(name)
            if name.endswith("_nd"):
                for a in args:
                    kind = ffi.typeof(a) if isinstance(a, ffi.CData) else None
                    if kind in (ffi.typeof("clxent_tensor *"),
                                ffi.typeof("clxent_vector *")):
                        self._mem(a.buffer)
                    elif kind == ffi.typeof("clxent_tensor_targets *"):
                        self._mem(a.indices.buffer)
                        self._mem(a.probs.buffer)
            return attr(*args)
        return call


@pytest.fixture
def spy(monkeypatch):
    s = Spy(clxent.lib)
    monkeypatch.setattr(clxent._stage, "lib", s)
    monkeypatch.setattr(clxent._context, "lib", s)
    return s


def ptr(array):
    return array.base_data.int_ptr


COPIES = {"clxent_buffer_write", "clxent_buffer_read", "clxent_buffer_create"}


def test_zero_copy(qctx, ctx, queue, spy):
    big = dev(queue, logits((10, 6), 3).astype(np.float32))
    x = big[2:8]                       # an offset into a bigger buffer
    y = dev(queue, class_indices((6, 6), 6, 3))
    w = dev(queue, class_weights(6, 3))
    loss, grad = qctx.cross_entropy(x, y, weight=w, reduction="none")
    assert isinstance(loss, cla.Array) and isinstance(grad, cla.Array)
    assert not COPIES & set(spy.calls), spy.calls
    assert spy.calls.count("clxent_buffer_wrap") == 5
    assert sorted(spy.mems) == sorted(map(ptr, (big, y, w, loss, grad)))
    soft = qctx.softmax(x, dim=0)
    assert spy.mems[-2:] == [ptr(big), ptr(soft)]
    assert not COPIES & set(spy.calls)
    # the spy sees copies where there are some: the numpy path's
    ctx.cross_entropy(x.get(), y.get())
    assert {"clxent_buffer_write", "clxent_buffer_read"} <= set(spy.calls)


def test_output_events(qctx, queue):
    x = dev(queue, logits((64, 33), 4).astype(np.float32))
    p = dev(queue, probabilities((64, 33), 4).astype(np.float32))
    loss, grad = qctx.cross_entropy(x, p)
    event = qctx.last_event
    assert isinstance(event, cl.Event)
    assert event in loss.events and event in grad.events
    event.wait()
    assert event.command_execution_status == COMPLETE
    out = qctx.log_softmax(x)
    assert qctx.last_event is not event and qctx.last_event in out.events


@pytest.mark.parametrize("op", ["softmax", "probs"])
def test_wait_for_user_event(qctx, ctx, queue, op):
    """The work waits for wait_for: nothing completes until the user event
    is set. A timer sets it after 5 s in any case, so a call that blocked
    on it fails instead of hanging."""
    xh = logits((16, 9), 5).astype(np.float32)
    ph = probabilities((16, 9), 5).astype(np.float32)
    x, p = dev(queue, xh), dev(queue, ph)
    queue.finish()
    gate = cl.UserEvent(queue.context)
    timer = threading.Timer(5.0, gate.set_status, (COMPLETE,))
    timer.start()
    try:
        start = time.monotonic()
        if op == "softmax":
            outs = [qctx.softmax(x, wait_for=[gate])]
            wants = [ctx.softmax(xh)]
        else:
            outs = list(qctx.cross_entropy(x, p, wait_for=[gate]))
            wants = list(ctx.cross_entropy(xh, ph))
        assert time.monotonic() - start < 4.0, "the call waited for wait_for"
        event = qctx.last_event
        time.sleep(0.3)
        assert event.command_execution_status != COMPLETE, "ran before its wait list"
    finally:
        timer.cancel()
        gate.set_status(COMPLETE)
    event.wait()
    for got, want in zip(outs, wants):
        same(got, want)


def test_strided_views_and_offsets(qctx, ctx, queue):
    base = logits((7, 12), 6).astype(np.float32)
    bd = dev(queue, base)
    views = {"transpose": (bd.T, base.T), "slice": (bd[1:6], base[1:6]),
             "step": (bd[::2], base[::2]), "offset_step": (bd[1::3], base[1::3])}
    for name, (xd, xh) in views.items():
        R, C = xh.shape
        ybig = class_indices((3 * R, C), C, 6)
        yd, yh = dev(queue, ybig)[R:2 * R], ybig[R:2 * R]   # an offset target
        loss, grad = qctx.cross_entropy(xd, yd, reduction="none", z_loss=1e-3)
        want = ctx.cross_entropy(xh, yh, reduction="none", z_loss=1e-3)
        assert grad.shape == xh.shape, name
        assert_close(loss.get(), want[0], tol("loss", "f32"), name)
        assert_close(grad.get(), want[1], tol("grad", "f32"), name)
        for dim in (0, 1):
            assert_close(qctx.softmax(xd, dim=dim).get(), ctx.softmax(xh, dim=dim),
                         tol("softmax", "f32"), f"{name} softmax dim {dim}")
    # a strided probability target and an N-d view with its class axis moved
    pbase = probabilities((12, 7), 6).astype(np.float32)
    pd = dev(queue, pbase.T.copy()).T     # (12, 7) with strides (4, 48)
    loss, grad = qctx.cross_entropy(bd.T, pd)
    want = ctx.cross_entropy(base.T, pbase)
    assert_close(loss.get(), want[0], tol("loss", "f32"))
    assert_close(grad.get(), want[1], tol("grad", "f32"))
    x4 = logits((2, 3, 4, 5), 7).astype(np.float32)
    x4d = dev(queue, x4).transpose((0, 3, 1, 2))
    y4 = class_indices((2, 5, 3, 4), 5, 7)
    loss, grad = qctx.cross_entropy(x4d, dev(queue, y4), reduction="sum")
    want = ctx.cross_entropy(x4.transpose(0, 3, 1, 2), y4, reduction="sum")
    assert_close(loss.get(), want[0], tol("loss", "f32"))
    assert_close(grad.get(), want[1], tol("grad", "f32"))


def test_bf16_bits(qctx, ctx, queue):
    x = logits((5, 3, 4), 8).astype(np.float32)
    y = class_indices((5, 3, 4), 3, 8)
    p = probabilities((5, 3, 4), 8).astype(np.float32)
    xb, pb = _layout.bf16_bits(x), _layout.bf16_bits(p)
    assert xb.dtype == np.uint16
    for target, target_d in [(y, dev(queue, y)), (p, dev(queue, pb))]:
        loss, grad = qctx.cross_entropy(dev(queue, xb), target_d, dtype="bf16",
                                        label_smoothing=0.1)
        want_loss, want_grad = ctx.cross_entropy(x, target, dtype="bf16",
                                                 label_smoothing=0.1)
        assert grad.dtype == np.uint16  # the bits, in place on the device
        np.testing.assert_array_equal(loss.get(), want_loss)
        np.testing.assert_array_equal(_layout.bf16_values(grad.get()), want_grad)
    out = qctx.log_softmax(dev(queue, xb), dim=1, dtype="bf16")
    np.testing.assert_array_equal(_layout.bf16_values(out.get()),
                                  ctx.log_softmax(x, dim=1, dtype="bf16"))
    with pytest.raises(clxent.Error) as e:
        qctx.softmax(dev(queue, xb))          # bits without dtype="bf16"
    assert e.value.status == "INVALID_DTYPE"
    with pytest.raises(clxent.Error) as e:
        qctx.softmax(dev(queue, x), dtype="bf16")  # float32 is not bf16 bits
    assert e.value.status == "INVALID_DTYPE"


def test_misuse(qctx, ctx, queue):
    x = logits((4, 5), 9).astype(np.float32)
    y = class_indices((4, 5), 5, 9)
    cases = [
        (lambda: qctx.cross_entropy(dev(queue, x), y), "INVALID_ARGUMENT"),   # mixed
        (lambda: ctx.cross_entropy(dev(queue, x), dev(queue, y)), "INVALID_ARGUMENT"),
        (lambda: ctx.softmax(x, wait_for=[cl.UserEvent(queue.context)]),
         "INVALID_ARGUMENT"),
        (lambda: qctx.cross_entropy(dev(queue, x), dev(queue, p32)), "INVALID_DTYPE"),
    ]
    p32 = probabilities((4, 5), 9).astype(np.float16)  # not the input's dtype
    other_context = cl.Context([queue.device])  # kept alive (see cl_context)
    other = cl.CommandQueue(other_context)
    cases.append((lambda: qctx.softmax(cla.to_device(other, x)), "WRONG_CONTEXT"))
    for fn, status in cases:
        with pytest.raises(clxent.Error) as e:
            fn()
        assert e.value.status == status, e.value
    # and the context still works
    same(qctx.cross_entropy(dev(queue, x), dev(queue, y))[0], ctx.cross_entropy(x, y)[0])
