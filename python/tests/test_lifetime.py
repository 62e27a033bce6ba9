"""Objects go away in any order, cycles are collected, and creating, using
and dropping contexts over and over keeps memory flat."""
import gc
import os
import weakref

import numpy as np
import pytest

import clxent
from conftest import DEVICE, class_indices, logits, pyopencl_device

X = logits((16, 10), 1).astype(np.float32)
Y = class_indices((16, 10), 10, 1)


def expected():
    with clxent.Context(DEVICE) as c:
        loss, grad = c.cross_entropy(X, Y, reduction="none")
        return loss.copy(), grad.copy(), c.softmax(X, dim=0).copy()


WANT = expected()


def check(loss, grad, soft=None):
    np.testing.assert_array_equal(loss, WANT[0])
    np.testing.assert_array_equal(grad, WANT[1])
    if soft is not None:
        np.testing.assert_array_equal(soft, WANT[2])


def test_outputs_outlive_their_context():
    c = clxent.Context(DEVICE)
    loss, grad = c.cross_entropy(X, Y, reduction="none")
    soft = c.softmax(X, dim=0)
    ref = weakref.ref(c)
    del c
    gc.collect()
    assert ref() is None
    check(loss, grad, soft)


def test_context_outlives_its_outputs():
    c = clxent.Context(DEVICE)
    for _ in range(3):
        out = c.cross_entropy(X, Y, reduction="none")
        del out
    check(*c.cross_entropy(X, Y, reduction="none"))
    c.close()


def test_many_contexts_dropped_in_any_order():
    ctxs = [clxent.Context(DEVICE) for _ in range(4)]
    outs = [c.cross_entropy(X, Y, reduction="none") for c in ctxs]
    for i in (2, 0, 3, 1):
        ctxs[i] = None
        gc.collect()
        for o in outs:
            check(*o)
    outs.clear()


class Owner:
    """Holds a context that refers back to it: a cycle only gc frees."""

    def __init__(self):
        self.ctx = clxent.Context(DEVICE)
        self.ctx.owner = self
        self.result = self.ctx.cross_entropy(X, Y, reduction="none")


def test_reference_cycles_are_collected():
    gc.collect()
    owners = [Owner() for _ in range(5)]
    refs = [weakref.ref(o.ctx) for o in owners]
    results = [o.result for o in owners]
    del owners
    assert all(r() is not None for r in refs)  # only the cycle keeps them
    gc.collect()
    assert all(r() is None for r in refs)
    for loss, grad in results:
        check(loss, grad)


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


BIG = logits((64, 300), 2).astype(np.float32)  # 75 KiB: big enough to matter
BIG_Y = class_indices((64, 300), 300, 2)


LIVE = []  # weak references to every round's context


def cycle(i):
    """One round: a context (every third one in a cycle), calls, its end."""
    c = clxent.Context(DEVICE)
    LIVE.append(weakref.ref(c))
    loss, grad = c.cross_entropy(BIG, BIG_Y, reduction="none", label_smoothing=0.1)
    if i % 5 == 0:
        c.log_softmax(X)
    if i % 10 == 0:
        with pytest.raises(clxent.Error):
            c.cross_entropy(X, Y + 10)
    if i % 3 == 0:
        c.close()
    elif i % 3 == 1:
        c.me = c  # a cycle: only gc frees it
    del c
    gc.collect()
    return loss, grad


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
def test_create_call_destroy_keeps_memory_flat():
    """100 rounds (each builds its kernels anew: ~0.15 s on PoCL)."""
    first = cycle(0)
    for i in range(10):  # warm-up: kernel caches, allocator pools
        cycle(i)
    before = rss_bytes()
    for i in range(100):
        loss, grad = cycle(i)
    grown = rss_bytes() - before
    assert all(r() is None for r in LIVE)  # every context was freed
    np.testing.assert_array_equal(loss, first[0])
    np.testing.assert_array_equal(grad, first[1])
    # a leaked context (MiBs on an OpenCL driver), or a leaked copy of the
    # arrays (225 KiB), each round would pass this
    assert grown < 12 * 2**20, f"RSS grew {grown / 2**20:.1f} MiB over 100 rounds"


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
def test_calls_keep_memory_flat(ctx):
    def calls():
        ctx.cross_entropy(BIG, BIG_Y, label_smoothing=0.1)
        ctx.softmax(BIG, dim=0)
        ctx.nll_loss(X, Y, reduction="none")
        with pytest.raises(clxent.Error):
            ctx.cross_entropy(BIG, BIG_Y + 300)
    for _ in range(30):
        calls()
    gc.collect()
    before = rss_bytes()
    for _ in range(300):
        calls()
    gc.collect()
    grown = rss_bytes() - before
    assert grown < 8 * 2**20, f"RSS grew {grown / 2**20:.1f} MiB over 300 rounds"


def test_pyopencl_arrays_outlive_the_context():
    cl = pytest.importorskip("pyopencl")
    cla = pytest.importorskip("pyopencl.array")
    with clxent.Context(DEVICE) as probe:
        dev = pyopencl_device(probe.device)
    cl_context = cl.Context([dev])  # kept: Intel's runtime needs it alive
    queue = cl.CommandQueue(cl_context)
    c = clxent.Context.from_queue(queue)
    x, y = cla.to_device(queue, X), cla.to_device(queue, Y)
    loss, grad = c.cross_entropy(x, y, reduction="none")
    soft = c.softmax(x, dim=0)
    event = c.last_event
    ref = weakref.ref(c)
    del c, x, y
    gc.collect()
    assert ref() is None
    event.wait()
    check(loss.get(), grad.get(), soft.get())
    # a fresh context on the same queue, after the first is gone
    c2 = clxent.Context.from_queue(queue)
    loss2, _ = c2.cross_entropy(cla.to_device(queue, X), cla.to_device(queue, Y),
                                reduction="none")
    c2.close()
    del queue
    gc.collect()
    check(loss2.get(), grad.get())
