"""PyTorch's shapes as clxent's outer x classes x inner, and storage dtypes."""
import math

import numpy as np

from ._lib import DTYPES, error, lib

MAX_INNER_DIMS = 7  # CLXENT_MAX_INNER_DIMS; _native checks it at import


def bf16_bits(values):
    """float32 values to bfloat16 bits (uint16), rounding to nearest even as
    clxent_f32_to_bf16 does; NaN stays a quiet NaN."""
    f = np.require(values, np.float32, "C")
    u = f.view(np.uint32)
    bits = ((u + np.uint32(0x7FFF) + ((u >> 16) & np.uint32(1))) >> 16).astype(np.uint16)
    nan = np.isnan(f)
    if nan.any():
        bits[nan] = ((u[nan] >> 16) | np.uint32(0x40)).astype(np.uint16)
    return bits


def bf16_values(bits):
    """bfloat16 bits (uint16) to float32 values, exactly."""
    return (np.require(bits, np.uint16, "C").astype(np.uint32) << 16).view(np.float32)


def dtype_name(array_dtype, dtype, what):
    """The storage dtype ("f32", "f16", "bf16") for an array and a request.

    None keeps float32 and float16 and converts float64 to f32; other numpy
    types are INVALID_DTYPE (as PyTorch refuses integer logits)."""
    if dtype is not None:
        if dtype not in DTYPES:
            raise error("INVALID_DTYPE", f"{what}: dtype {dtype!r} is not one of f32, f16, bf16")
        return dtype
    kind = np.dtype(array_dtype)
    if kind == np.float32 or kind == np.float64:
        return "f32"
    if kind == np.float16:
        return "f16"
    raise error("INVALID_DTYPE", f"{what}: {kind} is not a floating type "
                "(give float32, float16 or float64 values, or dtype=)")


def to_storage(values, name):
    """A contiguous host array holding values in storage dtype name."""
    if name == "bf16":
        return bf16_bits(values)
    return np.require(values, np.float16 if name == "f16" else np.float32, "C")


def from_storage(array, name):
    """A storage array as numpy values (bf16 comes back as float32)."""
    return bf16_values(array) if name == "bf16" else array


def storage_numpy_dtype(name):
    return {"f32": np.float32, "f16": np.float16, "bf16": np.uint16}[name]


class Layout:
    """outer x classes x inner, the axes of each part, and inner_dims."""

    def __init__(self, shape, outer_axes, class_axis, inner_axes):
        self.shape = tuple(shape)
        self.outer_axes, self.class_axis, self.inner_axes = outer_axes, class_axis, inner_axes
        self.outer = math.prod(int(shape[a]) for a in outer_axes)
        self.classes = shape[class_axis] if class_axis is not None else 1
        self.inner = math.prod(int(shape[a]) for a in inner_axes)
        self.rows_shape = tuple(shape[a] for a in outer_axes + inner_axes)

    @property
    def rows(self):
        return self.outer * self.inner


def loss_layout(shape, what="input"):
    """PyTorch's loss input: (C) unbatched, (N, C), (N, C, d1..dk)."""
    ndim = len(shape)
    if ndim == 0:
        raise error("INVALID_SHAPE", f"{what}: a 0-d input has no class axis "
                    "(give (C), (N, C) or (N, C, d1, ..., dk))")
    if ndim == 1:
        return Layout(shape, [], 0, [])
    if ndim - 2 > MAX_INNER_DIMS:
        raise error("INVALID_SHAPE", f"{what}: {ndim} dimensions; at most "
                    f"{MAX_INNER_DIMS + 2} are supported")
    return Layout(shape, [0], 1, list(range(2, ndim)))


def dim_layout(shape, dim, what="input"):
    """softmax over dim: outer the dims before it, inner those after."""
    ndim = len(shape)
    lo, hi = (-1, 0) if ndim == 0 else (-ndim, ndim - 1)
    if not isinstance(dim, (int, np.integer)) or not lo <= dim <= hi:
        raise error("INVALID_ARGUMENT", f"{what}: dim {dim!r} is out of range "
                    f"[{lo}, {hi}] for {ndim} dimensions")
    if ndim == 0:
        return Layout((1,), [], 0, [])
    dim = int(dim) % ndim
    return Layout(shape, list(range(dim)), dim, list(range(dim + 1, ndim)))


def collapse(shape, strides, axes):
    """One element stride walking axes as a single flat index, or None when
    they do not nest (a view that cannot be described without a copy)."""
    live = [(shape[a], strides[a]) for a in axes if shape[a] != 1]
    if not live:
        return 1
    for (outer_n, outer_s), (n, s) in zip(live, live[1:]):
        if outer_s != s * n:
            return None
    return live[-1][1]


def fill_tensor(t, buffer, offset, layout, strides, dtype_code, per_row=False):
    """Fills a clxent_tensor from a layout and the array's element strides
    (per_row: an array of the layout's rows_shape, such as targets)."""
    if per_row:
        n_outer = len(layout.outer_axes)
        shape, class_axis = layout.rows_shape, None
        axes_outer = list(range(n_outer))
        axes_inner = list(range(n_outer, len(shape)))
    else:
        shape, class_axis = layout.shape, layout.class_axis
        axes_outer, axes_inner = layout.outer_axes, layout.inner_axes
    t.buffer, t.offset, t.dtype = buffer, offset, dtype_code
    t.outer, t.inner = layout.outer, layout.inner
    t.classes = 1 if per_row else layout.classes
    strides = list(strides) if len(strides) == len(shape) else [1] * len(shape)
    so, si = collapse(shape, strides, axes_outer), collapse(shape, strides, axes_inner)
    if so is None or si is None:
        raise error("INVALID_SHAPE", "an array's strides do not let its dimensions "
                    "before or after the class axis be walked as one (copy it first)")
    t.class_stride = strides[class_axis] if class_axis is not None else 1
    t.inner_stride = si
    span = max((t.classes - 1) * t.class_stride, (t.inner - 1) * si) + 1
    t.outer_stride = so if axes_outer and layout.outer > 1 else span
    dims = [layout.shape[a] for a in layout.inner_axes]
    t.inner_rank = len(dims)
    for k, d in enumerate(dims):
        t.inner_dims[k] = d


assert lib.CLXENT_MAX_INNER_DIMS == MAX_INNER_DIMS
