"""The compiled binding and the one way a failed call becomes an exception."""
from ._native import ffi, lib

# Storage dtypes by name, and their numpy representation on the host:
# bf16 travels as its 16 bits in uint16 (numpy has no bfloat16).
DTYPES = {"f32": lib.CLXENT_F32, "f16": lib.CLXENT_F16, "bf16": lib.CLXENT_BF16}
INDEX_DTYPES = {"int32": lib.CLXENT_I32, "int64": lib.CLXENT_I64}
REDUCTIONS = {"none": lib.CLXENT_REDUCTION_NONE, "sum": lib.CLXENT_REDUCTION_SUM,
              "mean": lib.CLXENT_REDUCTION_MEAN}


def status_name(code):
    """'INVALID_SHAPE' for CLXENT_STATUS_INVALID_SHAPE's code."""
    name = ffi.string(lib.clxent_status_name(code)).decode()
    return name[len("CLXENT_STATUS_"):] if name.startswith("CLXENT_STATUS_") else name


class Error(Exception):
    """A call clxent refused or could not finish.

    status: the status name from clxent.h without its prefix
    ("INVALID_SHAPE", "TARGET_OUT_OF_RANGE", ...); code: its number;
    message: the context's full message (function, argument, OpenCL error,
    build log). Checks the binding makes before calling the library raise it
    too, with the status the library would give.
    """

    def __init__(self, status, message, code=None):
        self.status = status
        self.code = code
        self.message = message
        super().__init__(f"{status}: {message}")


def error(status, message):
    """An Error with the code of a status name, for the binding's own checks."""
    for code in range(64):
        if status_name(code) == status:
            return Error(status, message, code)
    return Error(status, message)


def check(code, ctx=None, what=""):
    """Raises Error for a status other than OK, with ctx's message."""
    if code == 0:
        return
    text = ffi.string(lib.clxent_context_message(ctx)).decode(errors="replace") \
        if ctx is not None else ""
    if not text:
        text = ffi.string(lib.clxent_status_string(code)).decode()
        if what:
            text = f"{what}: {text}"
    raise Error(status_name(code), text, int(code))
