"""clxent: softmax cross-entropy and its gradient on any OpenCL device.

    import clxent
    clxent.devices()                  # what `clxent devices --json` lists
    ctx = clxent.Context()            # CLXENT_DEVICE, else a GPU, else ...
    loss, grad = ctx.cross_entropy(logits, targets)

numpy arrays in and out; with Context.from_queue(pyopencl_queue),
pyopencl arrays in place. clxent.torch has a drop-in for
torch.nn.functional.cross_entropy. Failures raise clxent.Error.
"""
from ._context import Context, devices
from ._lib import Error, ffi, lib

__version__ = "0.3.0"


def version():
    """The version of the C library actually loaded, e.g. "0.3.0"."""
    return ffi.string(lib.clxent_version()).decode()


__all__ = ["Context", "Error", "devices", "version", "__version__"]
