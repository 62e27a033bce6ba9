"""clxent.torch.cross_entropy against torch.nn.functional.cross_entropy:
loss and input.grad (float64 PyTorch on the same rounded values), in
f32/f16/bf16, every reduction and option; a short training run."""
import pytest

import clxent
from conftest import DEVICE, REDUCTIONS, UNIT, assert_close, tol

torch = pytest.importorskip("torch")
import clxent.torch as ct  # noqa: E402
import torch.nn.functional as F  # noqa: E402

TORCH_DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def reference(x, target, weight=None, upstream=None, **kw):
    """F.cross_entropy in float64 on x's (rounded) values: (loss, x.grad)."""
    x64 = x.detach().to(torch.float64).requires_grad_()
    if target.is_floating_point():
        target = target.to(torch.float64)
    w64 = None if weight is None else weight.to(torch.float64)
    loss = F.cross_entropy(x64, target, weight=w64, **kw)
    backward(loss, None if upstream is None else upstream.to(torch.float64))
    return loss.detach(), x64.grad


def backward(loss, upstream):
    """The gradient of loss.sum(), or of (loss * upstream).sum()."""
    if upstream is None:
        loss.sum().backward()
    else:
        loss.backward(upstream)


def run(x, target, weight=None, upstream=None, **kw):
    x = x.detach().clone().requires_grad_()
    loss = ct.cross_entropy(x, target, weight=weight, device=DEVICE, **kw)
    backward(loss, upstream)
    return loss.detach(), x.grad, x


def case(shape, dtype, seed, kind="indices", ignore_frac=0.0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * 3).to(TORCH_DTYPES[dtype])
    C = shape[0] if len(shape) == 1 else shape[1]
    if kind == "probs":
        target = torch.softmax(torch.randn(shape, generator=g), 0 if len(shape) == 1
                               else 1).to(x.dtype)
    else:
        rows = shape[:1] + shape[2:] if len(shape) > 1 else ()
        target = torch.randint(0, C, rows, generator=g)
        if ignore_frac:
            target[torch.rand(rows, generator=g) < ignore_frac] = -100
    weight = (torch.rand(C, generator=g) * 1.5 + 0.25).to(x.dtype)
    return x, target, weight


def compare(x, target, dtype, weight=None, upstream=None, **kw):
    loss, grad, leaf = run(x, target, weight, upstream, **kw)
    want_loss, want_grad = reference(x, target, weight, upstream, **kw)
    assert loss.dtype == x.dtype and loss.shape == want_loss.shape
    assert grad.dtype == x.dtype and grad.shape == x.shape
    u = UNIT[dtype]
    # the loss comes back in the input's dtype: one more rounding
    assert_close(loss.to(torch.float64).numpy(), want_loss.numpy(),
                 (0.0, 2e-6 * (1 + u), u), "loss")
    a, rel1, uu = tol("grad", dtype)
    scale = 1.0 if upstream is None else float(upstream.abs().max())
    # with an upstream gradient, grad*upstream is rounded in f32 first
    bound = (a * scale, rel1, uu + (0.0 if upstream is None else 2.0 ** -23))
    assert_close(grad.to(torch.float64).numpy(), want_grad.numpy(), bound, "grad")
    return loss, grad


@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("variant", ["plain", "weights_ignore", "smoothing", "probs",
                                     "probs_smoothing_weights"])
def test_against_functional(dtype, reduction, variant):
    shape = (6, 7)
    x, target, weight = case(shape, dtype, 1, "probs" if "probs" in variant else
                             "indices", 0.3 if "ignore" in variant else 0.0)
    kw = dict(reduction=reduction)
    if "smoothing" in variant:
        kw["label_smoothing"] = 0.15
    if "weights" not in variant:
        weight = None
    compare(x, target, dtype, weight, **kw)


@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16"])
@pytest.mark.parametrize("shape", [(7,), (2, 5, 3, 4), (3, 4, 6)], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nd_shapes(dtype, shape, reduction):
    x, target, weight = case(shape, dtype, 2, ignore_frac=0.2)
    compare(x, target, dtype, weight, reduction=reduction, ignore_index=-100)


@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16"])
@pytest.mark.parametrize("shape", [(6, 7), (2, 5, 3, 4), (7,)], ids=str)
def test_none_with_upstream_gradient(dtype, shape):
    x, target, _ = case(shape, dtype, 3, ignore_frac=0.2)
    rows = shape[:1] + shape[2:] if len(shape) > 1 else ()
    upstream = (torch.randn(rows, generator=torch.Generator().manual_seed(4)) * 2
                ).to(x.dtype)
    compare(x, target, dtype, upstream=upstream, reduction="none")


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_scalar_upstream_gradient(reduction):
    x, target, _ = case((5, 6), "f32", 5)
    compare(x, target, "f32", upstream=torch.tensor(-2.5), reduction=reduction)


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_loss_scaler_rounds_once(dtype):
    """A loss scaler's factor (2^15, as large as f16 holds) on a mean over
    2048 rows: most of p/N is below f16's normal range, where a gradient rounded
    before scaling has lost its digits. Every entry within 2 units of the
    16-bit dtype of PyTorch's float64 value, as PyTorch rounds once."""
    x, target, _ = case((2048, 64), dtype, 6)
    scale = torch.tensor(32768.0)
    _, grad, _ = run(x, target, upstream=scale, reduction="mean")
    _, want = reference(x, target, upstream=scale, reduction="mean")
    got = grad.to(torch.float64)
    err = (got - want).abs()
    bound = 2 * UNIT[dtype] * want.abs() + 2.0 ** -24
    worst = int((err - bound).argmax())
    assert bool((err <= bound).all()), (
        f"grad[{worst}] = {got.flatten()[worst]}, want {want.flatten()[worst]}")


def test_thread_contexts_go_with_their_thread():
    """A thread's shared context is collected when the thread ends, not
    kept for the life of the process."""
    import gc
    import threading
    import weakref
    refs = []

    def work():
        x, target, _ = case((3, 4), "f32", 7)
        ct.cross_entropy(x, target, device=DEVICE)
        refs.append(weakref.ref(ct.context(DEVICE)))

    t = threading.Thread(target=work)
    t.start()
    t.join()
    gc.collect()
    assert refs and refs[0]() is None


def test_ignore_index_in_range():
    x, target, _ = case((8, 5), "f32", 6)
    compare(x, target, "f32", ignore_index=int(target[0]))


def test_float64_input_and_no_grad():
    x, target, _ = case((4, 6), "f32", 7)
    x64 = x.to(torch.float64)
    loss = ct.cross_entropy(x64, target, device=DEVICE)
    assert loss.dtype == torch.float64 and not loss.requires_grad
    want, _ = reference(x, target)
    assert abs(float(loss) - float(want)) <= 2e-6 * max(1.0, abs(float(want)))


@pytest.mark.parametrize("shape", [(6, 7), (2, 5, 3), (7,)], ids=str)
def test_nan_upstream_at_ignored_rows(shape):
    """An ignored row's gradient is 0 even where the upstream gradient is
    NaN or inf, as PyTorch's; the other rows take it as usual."""
    x, target, _ = case(shape, "f32", 11)
    target = target.clone()
    target.view(-1)[1::3] = -100
    if not target.dim():
        target.fill_(-100)
    up = torch.ones(target.shape)
    up.view(-1)[1::3] = float("nan")  # the ignored rows (0-d: the one)
    up.view(-1)[4::6] = float("inf")
    for reduction, upstream in (("none", up),
                                ("sum", torch.tensor(float("nan")))):
        ours = x.clone().requires_grad_()
        theirs = x.clone().requires_grad_()
        ct.cross_entropy(ours, target, reduction=reduction,
                         device=DEVICE).backward(upstream)
        F.cross_entropy(theirs, target, reduction=reduction).backward(upstream)
        torch.testing.assert_close(ours.grad, theirs.grad, equal_nan=True,
                                   atol=1e-6, rtol=1e-5)


def test_no_second_derivative():
    """The saved gradient is a constant: asked for a graph of the gradient
    (a gradient penalty), backward raises rather than silently dropping the
    terms through the logits."""
    x, target, _ = case((4, 5), "f32", 12)
    x.requires_grad_()
    loss = ct.cross_entropy(x, target, device=DEVICE)
    with pytest.raises(clxent.Error) as e:
        torch.autograd.grad(loss, x, create_graph=True)
    assert e.value.status == "UNSUPPORTED"
    (g,) = torch.autograd.grad(loss, x)  # without create_graph: as before
    assert g.shape == x.shape


def test_no_grad_computes_no_gradient(monkeypatch):
    x, target, _ = case((4, 5), "f32", 13)
    x.requires_grad_()
    calls = []
    real = clxent.Context.cross_entropy

    def spy(self, *args, **kwargs):
        calls.append(kwargs.get("grad"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(clxent.Context, "cross_entropy", spy)
    with torch.no_grad():
        loss = ct.cross_entropy(x, target, device=DEVICE)
    assert calls == [False] and not loss.requires_grad


def test_training_loop_tracks_functional():
    """A linear classifier trained 20 SGD steps with clxent.torch stays with
    the same model trained with F.cross_entropy."""
    g = torch.Generator().manual_seed(8)
    data = torch.randn(64, 10, generator=g)
    labels = torch.randint(0, 5, (64,), generator=g)
    labels[::9] = -100
    torch.manual_seed(0)
    ours = torch.nn.Linear(10, 5)
    theirs = torch.nn.Linear(10, 5)
    theirs.load_state_dict(ours.state_dict())
    opts = [torch.optim.SGD(m.parameters(), lr=0.5) for m in (ours, theirs)]
    first = last = None
    for step in range(20):
        for model, opt, fn in ((ours, opts[0], ct.cross_entropy),
                               (theirs, opts[1], F.cross_entropy)):
            opt.zero_grad()
            kw = dict(device=DEVICE) if fn is ct.cross_entropy else {}
            loss = fn(model(data), labels, label_smoothing=0.05, **kw)
            loss.backward()
            opt.step()
            if fn is ct.cross_entropy:
                first = float(loss) if first is None else first
                last = float(loss)
        for p, q in zip(ours.parameters(), theirs.parameters()):
            torch.testing.assert_close(p, q, atol=1e-5, rtol=1e-5)
    assert last < 0.8 * first  # it did learn


def test_misuse():
    x, target, _ = case((4, 5), "f32", 9)
    bad = [
        (lambda: ct.cross_entropy(x.numpy(), target), "UNSUPPORTED"),
        (lambda: ct.cross_entropy(x, target.tolist()), "UNSUPPORTED"),
        (lambda: ct.cross_entropy(x, target, weight=[1.0] * 5), "UNSUPPORTED"),
        (lambda: ct.cross_entropy(x, target, size_average=True), "UNSUPPORTED"),
        (lambda: ct.cross_entropy(x, target, reduce=False), "UNSUPPORTED"),
        (lambda: ct.cross_entropy(x.to(torch.int64), target), "INVALID_DTYPE"),
        (lambda: ct.cross_entropy(x, target, reduction="avg"), "INVALID_ARGUMENT"),
        (lambda: ct.cross_entropy(x, target[:3]), "INVALID_SHAPE"),
        (lambda: ct.cross_entropy(x, target + 5), "TARGET_OUT_OF_RANGE"),
        (lambda: ct.cross_entropy(x, torch.softmax(x, 1).requires_grad_()),
         "UNSUPPORTED"),
        (lambda: ct.cross_entropy(x, target, weight=torch.ones(5, requires_grad=True)),
         "UNSUPPORTED"),
        (lambda: ct.cross_entropy(x, target, ignore_index=3.7), "INVALID_ARGUMENT"),
        (lambda: ct.cross_entropy(x, target, ignore_index=2**63), "INVALID_ARGUMENT"),
        (lambda: ct.cross_entropy(x, target, label_smoothing="x"), "INVALID_ARGUMENT"),
    ]
    for fn, status in bad:
        with pytest.raises(clxent.Error) as e:
            fn()
        assert e.value.status == status, e.value
    compare(x, target, "f32")  # still works
