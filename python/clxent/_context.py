"""clxent.Context: the operations on numpy arrays or a caller's pyopencl arrays."""
import functools
import threading

import numpy as np

from . import _layout as L
from ._lib import DTYPES, INDEX_DTYPES, REDUCTIONS, check, error, ffi, lib
from ._stage import ClStage, HostStage, is_cl_array


def device_dict(info):
    """A clxent_device_info as `clxent devices --json` writes it."""
    text = {k: ffi.string(getattr(info, k)).decode(errors="replace") for k in
            ("spec", "type", "platform", "name", "vendor", "driver_version",
             "device_version", "c_version", "errors", "reason")}
    return {"spec": text.pop("spec"),
            "backend": "host" if info.backend == lib.CLXENT_BACKEND_HOST else "opencl",
            "platform_index": info.platform_index, "device_index": info.device_index,
            **text, "compute_units": info.compute_units,
            "max_work_group_size": info.max_work_group_size,
            "global_mem_bytes": info.global_mem_bytes,
            "local_mem_bytes": info.local_mem_bytes,
            "max_alloc_bytes": info.max_alloc_bytes,
            "fp16": bool(info.fp16), "fp64": bool(info.fp64)}


def devices():
    """Every OpenCL device, then the host backend (always last), as a list of
    dicts with the fields of `clxent devices --json` (spec, backend, type,
    platform, name, vendor, driver_version, ...). Enumerates the OpenCL
    platforms each time (milliseconds)."""
    count = ffi.new("size_t *")
    check(lib.clxent_devices_list(ffi.NULL, 0, count))
    infos = ffi.new("clxent_device_info[]", count[0])
    check(lib.clxent_devices_list(infos, count[0], count))
    return [device_dict(infos[i]) for i in range(count[0])]


def _serialized(method):
    """One call at a time on a context: the C context is not thread-safe,
    and cffi lets other threads run while a call is in C."""
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return run


class Context:
    """A device and its queue; every operation runs on it.

    Context(device) takes the CLI's device spec ("host", "P:D", "gpu",
    "cpu", a name such as "pocl"); None reads CLXENT_DEVICE, else picks the
    first GPU, else the first OpenCL device, else the host backend. Creating
    one builds nothing; each kernel variant is compiled on its first use
    (cached on disk by the driver or by clxent). Calls on one context are
    serialized (a lock: threads may share a context, one call runs at a
    time; a context per thread runs them side by side). Closed by close(), by a
    with block, or when collected; arrays it returned stay valid.
    """

    def __init__(self, device=None):
        out = ffi.new("clxent_context **")
        spec = ffi.NULL if device is None else str(device).encode()
        self._init(lib.clxent_context_create(spec, out), out[0])

    def _init(self, status, ptr, queue=None):
        self._lock = threading.RLock()
        self._ptr, self._queue, self._pool, self.last_event = None, queue, {}, None
        if ptr == ffi.NULL:  # only when memory ran out (clxent.h)
            check(status, None, "clxent_context_create")
            raise error("OUT_OF_MEMORY", "clxent_context_create: no context")
        ptr = ffi.gc(ptr, lib.clxent_context_destroy)
        check(status, ptr)  # the failed context gives the message, then goes
        self._ptr = ptr
        info = self.device
        # a CPU driver or the host backend: numpy arrays used in place
        self._host_memory = info["backend"] == "host" or info["type"] == "cpu"

    @classmethod
    def from_queue(cls, queue):
        """A context on a caller's pyopencl CommandQueue (in-order; retained
        until the context is closed). Its operations take pyopencl.array.Array
        arguments, use their buffers in place and return pyopencl arrays.
        Keep the queue's cl.Context object alive too: Intel's OpenCL runtime
        invalidates a context once the caller's last handle to it goes, even
        while a queue on it lives (pyopencl alone fails the same way)."""
        self = cls.__new__(cls)
        out = ffi.new("clxent_context **")
        handle = ffi.cast("cl_command_queue", queue.int_ptr)
        self._init(lib.clxent_context_create_from_queue(handle, out), out[0], queue)
        return self

    @_serialized
    def close(self):
        """Waits for queued work and frees the context (idempotent)."""
        ptr, self._ptr, self._pool = self._ptr, None, {}
        if ptr is not None:
            ffi.release(ptr)  # runs clxent_context_destroy now

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    @_serialized
    def device(self):
        """The device's description, as an entry of clxent.devices()."""
        info = ffi.new("clxent_device_info *")
        check(lib.clxent_context_info(self._live(), info), self._ptr)
        return device_dict(info)

    def __repr__(self):
        if self._ptr is None:
            return "<clxent.Context closed>"
        d = self.device
        return f"<clxent.Context {d['spec']} {d['name']!r}>"

    def _live(self):
        if self._ptr is None:
            raise error("INVALID_ARGUMENT", "the context is closed")
        return self._ptr

    def _stage(self, arrays, wait_for):
        """numpy arguments go through HostStage, pyopencl ones (all of them,
        on a context from a queue) through ClStage."""
        self._live()
        given = [a for a in arrays if a is not None]
        cl = [a for a in given if is_cl_array(a)]
        if not cl:
            if wait_for:
                raise error("INVALID_ARGUMENT", "wait_for goes with pyopencl arrays")
            return HostStage(self)
        if self._queue is None:
            raise error("INVALID_ARGUMENT", "pyopencl arrays need a context made by "
                        "Context.from_queue")
        if len(cl) != len(given):
            raise error("INVALID_ARGUMENT", "pyopencl and numpy arrays in one call: "
                        "give all as pyopencl arrays (or all as numpy)")
        return ClStage(self, wait_for)

    def _options(self, reduction="mean", ignore_index=-100, label_smoothing=0.0,
                 z_loss=0.0, softcap=0.0, logit_scale=1.0):
        if reduction not in REDUCTIONS:
            raise error("INVALID_ARGUMENT", f"reduction {reduction!r} is not one of "
                        "'none', 'sum', 'mean'")
        opts = ffi.new("clxent_options *")
        lib.clxent_options_init(opts)
        opts.loss.reduction = REDUCTIONS[reduction]
        # an integral ignore_index in int64's range, as PyTorch's (3.7 is
        # not truncated to 3); numbers where numbers go: clxent.Error else
        if (isinstance(ignore_index, (bool, np.bool_)) or
                not isinstance(ignore_index, (int, np.integer)) or
                not -2**63 <= int(ignore_index) < 2**63):
            raise error("INVALID_ARGUMENT", f"ignore_index {ignore_index!r}: give "
                        "an integer in int64's range")
        opts.loss.ignore_index = int(ignore_index)
        values = {"label_smoothing": label_smoothing, "z_loss": z_loss,
                  "softcap": softcap, "logit_scale": logit_scale}
        for key, v in values.items():
            try:
                values[key] = float(v)
            except (TypeError, ValueError):
                raise error("INVALID_ARGUMENT", f"{key} {v!r} is not a number") from None
        opts.loss.label_smoothing = values["label_smoothing"]
        opts.loss.z_loss = values["z_loss"]
        opts.softcap, opts.logit_scale = values["softcap"], values["logit_scale"]
        return opts

    # ---- the operations -------------------------------------------------

    @_serialized
    def cross_entropy(self, input, target, weight=None, ignore_index=-100,
                      reduction="mean", label_smoothing=0.0, z_loss=0.0, softcap=0.0,
                      logit_scale=1.0, grad=True, dtype=None, wait_for=None):
        """PyTorch's F.cross_entropy and its gradient, in one pass.

        input: (C), (N, C) or (N, C, d1..dk) logits; target: class indices of
        shape (), (N) or (N, d1..dk) (any integer type), or probabilities of
        input's shape. Returns (loss, grad): loss float32, of the target's
        shape for reduction 'none', else 0-d; grad the gradient of
        loss.sum() in input's shape and storage dtype (bf16 comes back as
        float32 values; None when grad=False, which runs the forward alone,
        reading the logits once). dtype: the storage type "f32", "f16" or
        "bf16"; None keeps float32/float16 and stores float64 as f32.
        z_loss adds z_loss * lse^2 per row; softcap and logit_scale transform
        the logits first. Costs one fused kernel pass; numpy arrays are
        used in place on a CPU device or the host backend (from 64 KiB),
        else copied in and the results copied out.
        """
        loss, g, name = self._cross_entropy(input, target, weight, ignore_index,
                                            reduction, label_smoothing, z_loss,
                                            softcap, logit_scale, grad, dtype, wait_for)
        if g is not None and not is_cl_array(g):
            g = L.from_storage(g, name)
        return loss, g

    def _cross_entropy(self, input, target, weight, ignore_index, reduction,
                       label_smoothing, z_loss, softcap, logit_scale, grad, dtype,
                       wait_for):
        stage = self._stage([input, target, weight], wait_for)
        x, name = self._logits(stage, input, dtype)
        layout = L.loss_layout(x.shape)
        opts = self._options(reduction, ignore_index, label_smoothing, z_loss,
                             softcap, logit_scale)
        logits = self._tensor(stage, "logits", x, layout, DTYPES[name])
        targets = ffi.new("clxent_tensor_targets *")
        self._targets(stage, target, layout, name, targets, x.dtype)
        w = self._weights(stage, weight, layout.classes)
        loss = self._loss_out(stage, layout, reduction)
        g = self._out_tensor(stage, "grad", x.shape, layout, name) if grad else None
        self._ready(stage)
        if grad:
            status = lib.clxent_cross_entropy_nd(self._ptr, logits, targets, w, opts,
                                                 ffi.NULL, loss, ffi.NULL, ffi.NULL,
                                                 g, stage.events)
        else:
            status = lib.clxent_cross_entropy_forward_nd(self._ptr, logits, targets, w,
                                                         opts, loss, ffi.NULL, ffi.NULL,
                                                         stage.events)
        self._check(stage, status)
        outs = stage.done()
        return outs[0], (outs[1] if grad else None), name

    # ---- the two passes clxent.torch runs for 16-bit inputs -------------
    # (the gradient computed in backward with the upstream gradient folded
    # in: rounded once to the storage type, as PyTorch rounds it)

    @_serialized
    def _cross_entropy_lse(self, input, target, weight, ignore_index, reduction,
                           label_smoothing, dtype):
        """The forward alone: (loss, lse), lse float32 of the target's shape."""
        stage = self._stage([input, target, weight], None)
        x, name = self._logits(stage, input, dtype)
        layout = L.loss_layout(x.shape)
        opts = self._options(reduction, ignore_index, label_smoothing)
        logits = self._tensor(stage, "logits", x, layout, DTYPES[name])
        targets = ffi.new("clxent_tensor_targets *")
        self._targets(stage, target, layout, name, targets, x.dtype)
        w = self._weights(stage, weight, layout.classes)
        loss = self._loss_out(stage, layout, reduction)
        lse = ffi.new("clxent_tensor *")
        buf, off, st = stage.output("lse", layout.rows_shape, np.float32)
        L.fill_tensor(lse, buf, off, layout, st, lib.CLXENT_F32, per_row=True)
        self._ready(stage)
        status = lib.clxent_cross_entropy_forward_nd(self._ptr, logits, targets, w,
                                                     opts, loss, lse, ffi.NULL,
                                                     stage.events)
        self._check(stage, status)
        outs = stage.done()
        return outs[0], outs[1]

    @_serialized
    def _cross_entropy_backward(self, input, target, weight, lse, ignore_index,
                                reduction, label_smoothing, grad_scale, grad_rows,
                                dtype):
        """The gradient of (loss * upstream).sum() from the forward's lse: the
        upstream is grad_scale, times grad_rows (reduction 'none', float32
        of the target's shape, or None)."""
        stage = self._stage([input, target, weight, lse, grad_rows], None)
        x, name = self._logits(stage, input, dtype)
        layout = L.loss_layout(x.shape)
        opts = self._options(reduction, ignore_index, label_smoothing)
        opts.loss.grad_scale = float(grad_scale)
        logits = self._tensor(stage, "logits", x, layout, DTYPES[name])
        targets = ffi.new("clxent_tensor_targets *")
        self._targets(stage, target, layout, name, targets, x.dtype)
        w = self._weights(stage, weight, layout.classes)
        f32 = lib.CLXENT_F32
        lse_t = self._tensor(stage, "lse", np.asarray(lse, np.float32), layout, f32,
                             per_row=True)
        gr = ffi.NULL if grad_rows is None else self._tensor(
            stage, "grad_rows", np.asarray(grad_rows, np.float32), layout, f32,
            per_row=True)
        g = self._out_tensor(stage, "grad", x.shape, layout, name)
        self._ready(stage)
        status = lib.clxent_cross_entropy_backward_nd(self._ptr, logits, targets, w,
                                                      opts, lse_t, gr, g,
                                                      stage.events)
        self._check(stage, status)
        return L.from_storage(stage.done()[0], name)

    @_serialized
    def nll_loss(self, input, target, weight=None, ignore_index=-100, reduction="mean",
                 wait_for=None):
        """PyTorch's F.nll_loss over log-probabilities input ((C), (N, C) or
        (N, C, d1..dk)) and class indices target; returns the loss (float32;
        the target's shape for 'none', else 0-d). One pass over the rows,
        reading one element of each."""
        stage = self._stage([input, target, weight], wait_for)
        x, name = self._logits(stage, input, None)
        layout = L.loss_layout(x.shape)
        opts = self._options(reduction, ignore_index)
        logp = self._tensor(stage, "logits", x, layout, DTYPES[name])
        targets = ffi.new("clxent_tensor_targets *")
        self._targets(stage, target, layout, name, targets, x.dtype, indices_only=True)
        w = self._weights(stage, weight, layout.classes)
        loss = self._loss_out(stage, layout, reduction)
        self._ready(stage)
        self._check(stage, lib.clxent_nll_loss_nd(self._ptr, logp,
                                                  ffi.addressof(targets.indices), w,
                                                  opts, loss, stage.events))
        return stage.done()[0]

    @_serialized
    def log_softmax(self, input, dim=-1, softcap=0.0, logit_scale=1.0, dtype=None,
                    wait_for=None):
        """log_softmax over dim (negative counts from the end; 0-d input
        too), in the storage dtype; one kernel pass."""
        return self._softmax(lib.clxent_log_softmax_nd, input, dim, softcap,
                             logit_scale, dtype, wait_for)

    @_serialized
    def softmax(self, input, dim=-1, softcap=0.0, logit_scale=1.0, dtype=None,
                wait_for=None):
        """softmax over dim, as log_softmax."""
        return self._softmax(lib.clxent_softmax_nd, input, dim, softcap, logit_scale,
                             dtype, wait_for)

    def _softmax(self, fn, input, dim, softcap, logit_scale, dtype, wait_for):
        stage = self._stage([input], wait_for)
        x, name = self._logits(stage, input, dtype)
        layout = L.dim_layout(x.shape, dim)
        shape = x.shape
        if isinstance(stage, HostStage) and x.ndim == 0:
            x = x.reshape(1)
        opts = self._options(softcap=softcap, logit_scale=logit_scale)
        src = self._tensor(stage, "logits", x, layout, DTYPES[name])
        out = self._out_tensor(stage, "out", x.shape, layout, name)
        self._ready(stage)
        self._check(stage, fn(self._ptr, src, opts, out, stage.events))
        result = stage.done()[0]
        if isinstance(stage, ClStage):
            return result
        return L.from_storage(result, name).reshape(shape)

    # ---- argument plumbing ---------------------------------------------

    def _check(self, stage, status):
        """Raises for a failed call, once nothing queued can still touch the
        stage's arrays (a device error may come after part of the work was
        enqueued, and wrapped numpy memory goes with the exception)."""
        try:
            check(status, self._ptr)  # reads the message before the finish
        finally:
            if status != 0:
                lib.clxent_finish(self._ptr)
                stage.keep = []

    def _ready(self, stage):
        if isinstance(stage, ClStage):
            stage.ready()

    def _logits(self, stage, input, dtype):
        if isinstance(stage, ClStage):
            kinds = {np.dtype(np.float32): "f32", np.dtype(np.float16): "f16",
                     np.dtype(np.uint16): "bf16"}
            name = kinds.get(input.dtype)
            # dtype= must match the array; uint16 bits are bf16 only when asked
            if name is None or (dtype != name if dtype is not None else name == "bf16"):
                raise error("INVALID_DTYPE", f"input: a pyopencl array of {input.dtype} "
                            f"with dtype={dtype!r}; give float32 (f32), float16 (f16) or "
                            "uint16 bits with dtype='bf16'")
            return input, name
        values = np.asarray(input)
        name = L.dtype_name(values.dtype, dtype, "input")
        return L.to_storage(values, name), name

    def _tensor(self, stage, role, array, layout, code, per_row=False):
        t = ffi.new("clxent_tensor *")
        buf, off, st = stage.input(role, array)
        L.fill_tensor(t, buf, off, layout, st, code, per_row)
        return t

    def _out_tensor(self, stage, role, shape, layout, name):
        """A new output of the layout's shape in storage dtype name."""
        t = ffi.new("clxent_tensor *")
        buf, off, st = stage.output(role, shape, L.storage_numpy_dtype(name))
        L.fill_tensor(t, buf, off, layout, st, DTYPES[name])
        return t

    def _targets(self, stage, target, layout, name, out, x_dtype, indices_only=False):
        cl = isinstance(stage, ClStage)
        t = target if cl else np.asarray(target)
        # bf16 probabilities on the device travel as uint16 bits, like the input
        bits = cl and name == "bf16" and t.dtype == np.uint16
        if np.issubdtype(t.dtype, np.integer) and not bits:
            if not cl and t.dtype not in (np.int32, np.int64):
                # uint64 past int64's range would wrap (2**64 - 100 to -100,
                # then ignored): a bad label
                if t.dtype == np.uint64 and t.size and int(t.max()) > 2**63 - 1:
                    raise error("TARGET_OUT_OF_RANGE", f"target: {int(t.max())} "
                                "is no class index (past int64)")
                t = t.astype(np.int64)
            code = INDEX_DTYPES.get(str(t.dtype))
            if code is None:
                raise error("INVALID_DTYPE", f"target: {t.dtype}; give int32 or int64")
            if tuple(t.shape) != layout.rows_shape:
                raise error("INVALID_SHAPE", f"target: shape {tuple(t.shape)} for input "
                            f"{layout.shape}; class indices need {layout.rows_shape}")
            buf, off, st = stage.input("targets", t)
            L.fill_tensor(out.indices, buf, off, layout, st, code, per_row=True)
        elif (np.issubdtype(t.dtype, np.floating) or bits) and not indices_only:
            if tuple(t.shape) != layout.shape:
                raise error("INVALID_SHAPE", f"target: probabilities of shape "
                            f"{tuple(t.shape)} for input {layout.shape}")
            if cl and t.dtype != x_dtype:
                raise error("INVALID_DTYPE", "target: probabilities must have the "
                            "input's dtype")
            p = t if cl else L.to_storage(t, name)
            buf, off, st = stage.input("probs", p)
            L.fill_tensor(out.probs, buf, off, layout, st, DTYPES[name])
        else:
            want = "int32 or int64 class indices" + ("" if indices_only else
                                                     " or float probabilities")
            raise error("INVALID_DTYPE", f"target: {t.dtype}; give {want}")

    def _weights(self, stage, weight, classes):
        w = ffi.new("clxent_vector *")
        if weight is None:
            return w  # no buffer: every class weighs 1
        if not isinstance(stage, ClStage):
            weight = np.ascontiguousarray(weight, dtype=np.float32)
        if weight.dtype != np.float32 or tuple(weight.shape) != (classes,):
            raise error("INVALID_SHAPE", f"weight: {weight.dtype} of shape "
                        f"{tuple(weight.shape)}; give float32 of shape ({classes},)")
        buf, off, st = stage.input("weights", weight)
        if st and st[0] != 1:
            raise error("INVALID_SHAPE", "weight: a pyopencl array with a stride")
        w.buffer, w.offset, w.length, w.dtype = buf, off, classes, lib.CLXENT_F32
        return w

    def _loss_out(self, stage, layout, reduction):
        t = ffi.new("clxent_tensor *")
        if reduction == "none":
            buf, off, st = stage.output("loss", layout.rows_shape, np.float32)
            L.fill_tensor(t, buf, off, layout, st, lib.CLXENT_F32, per_row=True)
        else:
            buf, off, _ = stage.output("loss", (), np.float32)
            L.fill_tensor(t, buf, off, L.Layout((1,), [0], None, []), [1],
                          lib.CLXENT_F32, per_row=True)
        return t
