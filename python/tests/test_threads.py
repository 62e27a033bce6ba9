"""Threads sharing one context: calls are serialized (the C context is not
thread-safe and cffi runs other threads while one is in C), so every
thread gets exactly what the same call gives alone; contexts of their own
run side by side."""
import threading

import numpy as np

import clxent
from conftest import DEVICE, class_indices, logits

SHAPES = [(8, 10), (64, 300), (2, 21, 16, 16)]  # the last two past 64 KiB: in place
THREADS, ROUNDS = 4, 12


def cases():
    out = []
    for t in range(THREADS):
        shape = SHAPES[t % len(SHAPES)]
        C = shape[1]
        x = logits(shape, 100 + t).astype(np.float32)
        y = class_indices(shape, C, 100 + t)
        out.append((x, y))
    return out


def hammer(make_ctx):
    work = cases()
    want = []
    with clxent.Context(DEVICE) as alone:
        for x, y in work:
            loss, grad = alone.cross_entropy(x, y, reduction="none")
            want.append((loss, grad, alone.softmax(x, dim=1)))
    errors = []

    def run(t, ctx):
        x, y = work[t]
        try:
            for _ in range(ROUNDS):
                loss, grad = ctx.cross_entropy(x, y, reduction="none")
                soft = ctx.softmax(x, dim=1)
                for got, exp in zip((loss, grad, soft), want[t]):
                    np.testing.assert_array_equal(got, exp)
        except Exception as e:  # reported by the main thread
            errors.append((t, e))

    ctxs = [make_ctx() for _ in range(THREADS)]
    threads = [threading.Thread(target=run, args=(t, ctxs[t])) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=600)
    assert not any(th.is_alive() for th in threads), "a thread hung"
    assert not errors, errors
    return ctxs


def test_threads_share_one_context():
    shared = clxent.Context(DEVICE)
    hammer(lambda: shared)
    shared.close()


def test_threads_with_their_own_contexts():
    for ctx in hammer(lambda: clxent.Context(DEVICE)):
        ctx.close()
