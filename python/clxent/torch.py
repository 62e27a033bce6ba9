"""clxent.torch.cross_entropy: a drop-in for torch.nn.functional.cross_entropy
on CPU tensors, computed by clxent on an OpenCL device, with autograd.

The forward runs clxent's fused pass, which writes the gradient as it
computes the loss (when the input requires grad); backward scales that
saved gradient by the incoming one, so a training step reads the logits
once. Costs over the C call: the tensors are copied to the device and the
loss and gradient back (a memcpy each on a CPU device).
"""
import sys
import threading

from ._context import Context, devices
from ._lib import error

if "torch" not in sys.modules:
    # Load the OpenCL drivers before torch: Intel's OpenCL CPU runtime
    # needs its own, newer libtbb.so.12, and once Debian's torch has loaded
    # its older one, the ICD loader silently drops Intel's platform.
    devices()
import torch  # noqa: E402

# per thread: a thread's contexts go with it (a dict keyed by thread ids
# kept every finished thread's device context alive)
_local = threading.local()


def context(device=None):
    """The shared clxent.Context of this thread for a device spec (see
    clxent.Context; None: CLXENT_DEVICE, else a GPU, ...); closed when the
    thread ends."""
    contexts = getattr(_local, "contexts", None)
    if contexts is None:
        contexts = _local.contexts = {}
    ctx = contexts.get(device)
    if ctx is None:
        ctx = contexts[device] = Context(device)
    return ctx


_STORAGE = {torch.float32: "f32", torch.float64: "f32", torch.float16: "f16",
            torch.bfloat16: "bf16"}


def _host(tensor, name):
    """A CPU tensor as numpy values for storage dtype name (bf16 and float64
    go through float32, which holds bf16 exactly)."""
    t = tensor.detach()
    if name == "f16":
        return t.contiguous().numpy()
    return t.to(torch.float32).contiguous().numpy()


def _targets_host(target, name):
    if target.is_floating_point():
        return _host(target, name)
    return target.detach().contiguous().numpy()


class _CrossEntropy(torch.autograd.Function):
    """One fused pass writes the loss and the gradient, which backward
    scales by the upstream gradient in float32 and rounds once to the
    input's dtype, as PyTorch does (a 16-bit gradient rounded before a
    loss scaler's factor would have lost f16's smallest entries). bfloat16
    runs in f32 storage (which holds its values exactly: bf16 reaches the
    device through float32 values anyway). float16 runs the forward alone
    (with the rows' lse) and backward computes the f16 gradient with the
    upstream folded in (2048 x 32000 forward and backward on PoCL: f16
    631 -> 240 ms, bf16 1339 -> 466 ms against the f16/bf16 gradient
    scaled in PyTorch)."""

    @staticmethod
    def forward(fctx, input, target, weight, ignore_index, reduction, label_smoothing,
                device, want_grad):
        name = _STORAGE[input.dtype]
        if want_grad and name == "bf16":
            name = "f32"
        tgt = _targets_host(target, name)
        w = None if weight is None else weight.detach().to(torch.float32).contiguous().numpy()
        kw = dict(ignore_index=ignore_index, reduction=reduction,
                  label_smoothing=label_smoothing)
        fctx.reduction, fctx.batched = reduction, input.dim() > 1
        fctx.dtype, fctx.device, fctx.kw = input.dtype, device, kw
        fctx.lazy = want_grad and name != "f32"
        grad = None
        if fctx.lazy:
            loss, lse = context(device)._cross_entropy_lse(
                _host(input, name), tgt, w, dtype=name, **kw)
            fctx.w, fctx.lse = w, lse
        else:
            loss, grad = context(device).cross_entropy(
                _host(input, name), tgt, weight=w, grad=want_grad, dtype=name, **kw)
        if want_grad:
            # the ignored rows: their gradient stays 0 whatever the upstream
            # gradient holds there (NaN or inf), as PyTorch's
            ignored = (None if target.is_floating_point()
                       else target.detach() == ignore_index)
            kept = torch.float64 if input.dtype == torch.float64 else torch.float32
            saved = (input.detach(), target.detach()) if fctx.lazy else (
                torch.from_numpy(grad).to(kept),)
            fctx.save_for_backward(ignored, *saved)
        return torch.from_numpy(loss).to(input.dtype)

    @staticmethod
    def backward(fctx, grad_output):
        if torch.is_grad_enabled():
            # create_graph=True: the saved gradient is a constant, so a
            # second derivative (a gradient penalty) would silently lose the
            # terms through the logits
            raise error("UNSUPPORTED", "clxent.torch.cross_entropy has no second "
                        "derivative (backward with create_graph=True)")
        ignored, *saved = fctx.saved_tensors
        none = (None,) * 7
        if fctx.lazy:
            return (_lazy_grad(fctx, saved, grad_output, ignored),) + none
        grad = saved[0]
        if fctx.reduction == "none" and fctx.batched:
            grad_output = grad_output.unsqueeze(1)
        elif bool((grad_output == 1).all()):
            return (grad.to(fctx.dtype),) + none
        # the product in float32, then the input's dtype
        scaled = grad.to(torch.float32) * grad_output.to(torch.float32)
        if ignored is not None and bool(ignored.any()):
            mask = ignored.unsqueeze(1) if fctx.batched else ignored
            scaled = scaled.masked_fill(mask, 0.0)
        return (scaled.to(fctx.dtype),) + none


def _lazy_grad(fctx, saved, grad_output, ignored):
    """The 16-bit gradient of (loss * grad_output).sum(): the upstream as
    grad_rows (reduction 'none' on a batch) or grad_scale."""
    input, target = saved
    name = _STORAGE[fctx.dtype]
    up = grad_output.detach().to(torch.float32)
    rows = fctx.reduction == "none" and fctx.batched
    if rows and ignored is not None:
        up = up.masked_fill(ignored, 0.0)  # NaN there must not reach the row
    grad = context(fctx.device)._cross_entropy_backward(
        _host(input, name), _targets_host(target, name), fctx.w, fctx.lse,
        grad_scale=1.0 if rows else float(up), dtype=name,
        grad_rows=up.contiguous().numpy() if rows else None, **fctx.kw)
    return torch.from_numpy(grad).to(fctx.dtype)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,
                  reduce=None, reduction="mean", label_smoothing=0.0, device=None):
    """torch.nn.functional.cross_entropy, computed by clxent.

    Same arguments and result (the legacy size_average/reduce must be None);
    input a CPU tensor of float32, float16, bfloat16 or float64 (float64
    is stored as f32: the result has clxent's f32 accuracy, not float64's);
    target class indices or
    probabilities (a target or weight that requires grad is refused: no
    gradient flows to them; nor a second derivative). device: the
    clxent device spec, one shared context per spec and thread.
    """
    if size_average is not None or reduce is not None:
        raise error("UNSUPPORTED", "size_average and reduce are deprecated in "
                    "PyTorch; give reduction=")
    for name, t in (("input", input), ("target", target), ("weight", weight)):
        if t is not None and (not isinstance(t, torch.Tensor) or t.device.type != "cpu"):
            raise error("UNSUPPORTED", f"{name}: clxent.torch takes CPU tensors "
                        f"(got {getattr(t, 'device', type(t).__name__)})")
    if input.dtype not in _STORAGE:
        raise error("INVALID_DTYPE", f"input: {input.dtype} is not a floating type")
    for name, t in (("target", target), ("weight", weight)):
        if t is not None and t.requires_grad:
            raise error("UNSUPPORTED", f"{name}: clxent.torch computes no gradient "
                        f"for the {name}; pass {name}.detach()")
    # under torch.no_grad() no gradient is computed, as PyTorch's
    want_grad = torch.is_grad_enabled() and input.requires_grad
    return _CrossEntropy.apply(input, target, weight, ignore_index, reduction,
                               label_smoothing, device, want_grad)


__all__ = ["cross_entropy", "context"]
