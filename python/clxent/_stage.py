"""Where an operation's arrays live: host numpy arrays copied through the
context's pooled buffers, or a caller's pyopencl arrays used in place."""
import sys

import numpy as np

from ._lib import check, error, ffi, lib


# Below this size an array goes through a pooled buffer: a memcpy of it
# costs less than creating and releasing a cl_mem over it.
IN_PLACE_MIN_BYTES = 1 << 16


class HostStage:
    """numpy arrays for one call. On a device that works in host memory (a
    CPU driver, or the host backend) arrays of IN_PLACE_MIN_BYTES or more
    are used in place (clxent_buffer_wrap_host) and outputs are made
    visible by a read into themselves (free there); otherwise inputs are
    copied into buffers the context keeps (grown, reused) and outputs read
    back: a memcpy each on a CPU device."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.outputs = []
        self.keep = []  # the arrays and wraps in use until done()
        self.events = ffi.NULL

    def _buffer(self, role, nbytes):
        pool = self.ctx._pool
        held = pool.get(role)
        if held is None or held[1] < nbytes:
            pool.pop(role, None)
            out = ffi.new("clxent_buffer **")
            check(lib.clxent_buffer_create(self.ctx._ptr, max(nbytes, 64), out),
                  self.ctx._ptr)
            held = (ffi.gc(out[0], lib.clxent_buffer_release), max(nbytes, 64))
            pool[role] = held
        return held[0]

    def _wrap(self, array):
        out = ffi.new("clxent_buffer **")
        check(lib.clxent_buffer_wrap_host(self.ctx._ptr, ffi.from_buffer(array),
                                          array.nbytes, out), self.ctx._ptr)
        buf = ffi.gc(out[0], lib.clxent_buffer_release)
        self.keep.append((array, buf))
        return buf

    def _in_place(self, array):
        return self.ctx._host_memory and array.nbytes >= IN_PLACE_MIN_BYTES

    def input(self, role, array):
        """(buffer, element offset, element strides) of array's data."""
        array = np.require(array, None, "C")
        if self._in_place(array):
            return self._wrap(array), 0, _elem_strides(array)
        buf = self._buffer(role, array.nbytes)
        if array.nbytes:
            check(lib.clxent_buffer_write(self.ctx._ptr, buf, 0, array.nbytes,
                                          ffi.from_buffer(array)), self.ctx._ptr)
        return buf, 0, _elem_strides(array)

    def output(self, role, shape, dtype):
        array = np.empty(shape, dtype=dtype)
        buf = self._wrap(array) if self._in_place(array) else self._buffer(role, array.nbytes)
        self.outputs.append((buf, array))
        return buf, 0, _elem_strides(array)

    def done(self):
        """The outputs, read back (blocking; in place: a read into itself)."""
        for buf, array in self.outputs:
            if array.nbytes:
                check(lib.clxent_buffer_read(self.ctx._ptr, buf, 0, array.nbytes,
                                             ffi.from_buffer(array)), self.ctx._ptr)
        self.keep = []  # the reads waited for the work: the wraps may go
        return [array for _, array in self.outputs]


class ClStage:
    """Wraps pyopencl arrays' buffers (no copy); outputs are new pyopencl
    arrays on the context's queue. The call waits for every input's and
    output's pending events plus wait_for, and its completion event is
    added to the outputs' .events and kept as ctx.last_event."""

    def __init__(self, ctx, wait_for=None):
        import pyopencl as cl  # only here: pyopencl is optional
        import pyopencl.array  # noqa: F401
        self.cl, self.ctx = cl, ctx
        self.wraps, self.outputs, self.wait = [], [], list(wait_for or [])
        self.out_event = ffi.new("cl_event *")
        self.events = ffi.new("clxent_events *")

    def _wrap(self, array):
        if not isinstance(array, self.cl.array.Array):
            raise error("INVALID_ARGUMENT", "a context from a pyopencl queue takes "
                        "pyopencl.array.Array arguments only (mixing with numpy "
                        f"arrays is not supported), got {type(array).__name__}")
        if array.queue is not None and array.queue.context != self.ctx._queue.context:
            raise error("WRONG_CONTEXT", "a pyopencl array belongs to another cl.Context")
        if array.offset % array.dtype.itemsize or any(s < 0 for s in array.strides):
            raise error("INVALID_SHAPE", "a pyopencl array with a misaligned offset "
                        "or a negative stride")
        out = ffi.new("clxent_buffer **")
        if array.base_data is None:
            # an empty array has no cl_mem, and the call reads and writes
            # none of its elements: any buffer stands in, as for numpy
            check(lib.clxent_buffer_create(self.ctx._ptr, 64, out), self.ctx._ptr)
            buf = ffi.gc(out[0], lib.clxent_buffer_release)
            self.wraps.append(buf)
            self.wait.extend(array.events)
            return buf, 0, _elem_strides(array)
        mem = ffi.cast("cl_mem", array.base_data.int_ptr)
        check(lib.clxent_buffer_wrap(self.ctx._ptr, mem, out), self.ctx._ptr)
        buf = ffi.gc(out[0], lib.clxent_buffer_release)
        self.wraps.append(buf)
        self.wait.extend(array.events)
        return buf, array.offset // array.dtype.itemsize, _elem_strides(array)

    def input(self, role, array):
        return self._wrap(array)

    def output(self, role, shape, dtype):
        array = self.cl.array.empty(self.ctx._queue, shape, dtype)
        self.outputs.append(array)
        return self._wrap(array)

    def ready(self):
        """Fills the events argument just before the call."""
        self._wait = ffi.new("cl_event[]", [ffi.cast("cl_event", e.int_ptr)
                                            for e in self.wait] or 1)
        self.events.num_wait = len(self.wait)
        self.events.wait_list = self._wait if self.wait else ffi.NULL
        self.events.out_event = self.out_event

    def done(self):
        event = None
        if self.out_event[0] != ffi.NULL:
            ptr = int(ffi.cast("intptr_t", self.out_event[0]))
            event = self.cl.Event.from_int_ptr(ptr, retain=False)
            for array in self.outputs:
                array.add_event(event)
        self.ctx.last_event = event
        self.wraps = []  # released now: the enqueued work holds its own references
        return self.outputs


def _elem_strides(array):
    size = array.dtype.itemsize
    return [s // size for s in array.strides]


def is_cl_array(value):
    # Not imported here: a caller without pyopencl loaded has no such arrays.
    cla = sys.modules.get("pyopencl.array")
    return cla is not None and isinstance(value, cla.Array)
