"""Builds clxent._native, the cffi binding, against the clxent.h it finds.

API mode: the C compiler sees the real header, so a struct below whose
fields drift from it fails the build instead of corrupting memory at run
time. Where the library lives (first that exists):
  CLXENT_INCLUDE_DIR and CLXENT_LIBRARY_DIR, both set;
  CLXENT_BUILD_DIR (a CMake build of this source tree);
  this source tree's build/ (what `bash tools/setup.sh` builds);
  pkg-config clxent (an installed library).
The extension keeps the library's directory as its run path, so it loads
the library it was built with.
"""
import os
import shlex
import subprocess

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
TREE = os.path.dirname(HERE)

CDEF = r"""
typedef int... clxent_status;
typedef int... clxent_dtype;
typedef int... clxent_backend;
typedef int... clxent_reduction;
typedef int... clxent_target_check;
typedef uint32_t cl_uint;
typedef uint64_t cl_ulong;
typedef struct _cl_command_queue *cl_command_queue;
typedef struct _cl_mem *cl_mem;
typedef struct _cl_event *cl_event;

#define CLXENT_F32 ...
#define CLXENT_F16 ...
#define CLXENT_BF16 ...
#define CLXENT_I32 ...
#define CLXENT_I64 ...
#define CLXENT_BACKEND_HOST ...
#define CLXENT_REDUCTION_NONE ...
#define CLXENT_REDUCTION_SUM ...
#define CLXENT_REDUCTION_MEAN ...
#define CLXENT_MAX_INNER_DIMS ...

const char *clxent_version(void);
const char *clxent_status_name(clxent_status status);
const char *clxent_status_string(clxent_status status);

typedef struct clxent_device_info {
    clxent_backend backend;
    int platform_index;
    int device_index;
    char spec[32];
    char platform[128];
    char name[128];
    char vendor[128];
    char driver_version[64];
    char device_version[64];
    char c_version[64];
    char type[16];
    cl_uint compute_units;
    size_t max_work_group_size;
    cl_ulong global_mem_bytes;
    cl_ulong local_mem_bytes;
    cl_ulong max_alloc_bytes;
    int fp16;
    int fp64;
    char errors[256];
    char reason[160];
} clxent_device_info;

clxent_status clxent_devices_list(clxent_device_info *infos, size_t capacity,
                                  size_t *count);

typedef struct clxent_context clxent_context;
clxent_status clxent_context_create(const char *spec, clxent_context **ctx);
clxent_status clxent_context_create_from_queue(cl_command_queue queue,
                                               clxent_context **ctx);
void clxent_context_destroy(clxent_context *ctx);
clxent_status clxent_context_info(const clxent_context *ctx,
                                  clxent_device_info *info);
const char *clxent_context_message(const clxent_context *ctx);
clxent_status clxent_finish(clxent_context *ctx);

typedef struct clxent_buffer clxent_buffer;
clxent_status clxent_buffer_create(clxent_context *ctx, size_t bytes,
                                   clxent_buffer **buffer);
clxent_status clxent_buffer_wrap_host(clxent_context *ctx, void *memory,
                                      size_t bytes, clxent_buffer **buffer);
clxent_status clxent_buffer_wrap(clxent_context *ctx, cl_mem mem,
                                 clxent_buffer **buffer);
clxent_status clxent_buffer_write(clxent_context *ctx, clxent_buffer *buffer,
                                  size_t byte_offset, size_t bytes,
                                  const void *source);
clxent_status clxent_buffer_read(clxent_context *ctx,
                                 const clxent_buffer *buffer,
                                 size_t byte_offset, size_t bytes,
                                 void *destination);
void clxent_buffer_release(clxent_buffer *buffer);
cl_mem clxent_buffer_mem(const clxent_buffer *buffer);

typedef struct clxent_vector {
    clxent_buffer *buffer;
    size_t offset;
    size_t length;
    clxent_dtype dtype;
} clxent_vector;

typedef struct clxent_events {
    cl_uint num_wait;
    const cl_event *wait_list;
    cl_event *out_event;
} clxent_events;

typedef struct clxent_loss_options {
    clxent_reduction reduction;
    int64_t ignore_index;
    float label_smoothing;
    float z_loss;
    float grad_scale;
    float normalizer;
    int all_ignored_zero;
    int in_place;
    clxent_target_check target_check;
} clxent_loss_options;

typedef struct clxent_tensor {
    clxent_buffer *buffer;
    size_t offset;
    size_t outer, classes, inner;
    size_t outer_stride, class_stride, inner_stride;
    clxent_dtype dtype;
    unsigned inner_rank;
    size_t inner_dims[7];
} clxent_tensor;

typedef struct clxent_tensor_targets {
    clxent_tensor indices;
    clxent_tensor probs;
} clxent_tensor_targets;

typedef struct clxent_options {
    size_t size;
    clxent_loss_options loss;
    float softcap;
    float logit_scale;
    int validate_only;
} clxent_options;
void clxent_options_init(clxent_options *options);

clxent_status clxent_log_softmax_nd(clxent_context *ctx, const clxent_tensor *x,
                                    const clxent_options *options,
                                    const clxent_tensor *out,
                                    const clxent_events *events);
clxent_status clxent_softmax_nd(clxent_context *ctx, const clxent_tensor *x,
                                const clxent_options *options,
                                const clxent_tensor *out,
                                const clxent_events *events);
clxent_status clxent_nll_loss_nd(
    clxent_context *ctx, const clxent_tensor *logp,
    const clxent_tensor *targets, const clxent_vector *weights,
    const clxent_options *options, const clxent_tensor *loss,
    const clxent_events *events);
clxent_status clxent_cross_entropy_forward_nd(
    clxent_context *ctx, const clxent_tensor *logits,
    const clxent_tensor_targets *targets, const clxent_vector *weights,
    const clxent_options *options, const clxent_tensor *loss,
    const clxent_tensor *lse, const clxent_tensor *z_loss_out,
    const clxent_events *events);
clxent_status clxent_cross_entropy_backward_nd(
    clxent_context *ctx, const clxent_tensor *logits,
    const clxent_tensor_targets *targets, const clxent_vector *weights,
    const clxent_options *options, const clxent_tensor *lse,
    const clxent_tensor *grad_rows, const clxent_tensor *grad,
    const clxent_events *events);
clxent_status clxent_cross_entropy_nd(
    clxent_context *ctx, const clxent_tensor *logits,
    const clxent_tensor_targets *targets, const clxent_vector *weights,
    const clxent_options *options, const clxent_tensor *grad_rows,
    const clxent_tensor *loss, const clxent_tensor *lse,
    const clxent_tensor *z_loss_out, const clxent_tensor *grad,
    const clxent_events *events);

clxent_status clxent_cross_entropy_host(
    clxent_context *ctx, size_t rows, size_t cols, clxent_dtype dtype,
    const void *logits, clxent_dtype target_dtype, const void *targets,
    const float *weights, const clxent_loss_options *options, float *loss,
    float *lse, void *grad);

uint16_t clxent_f32_to_bf16(float value);
float clxent_bf16_to_f32(uint16_t bits);
"""


def _pkg_config():
    try:
        cflags = subprocess.run(["pkg-config", "--cflags-only-I", "clxent"],
                                check=True, capture_output=True, text=True)
        libs = subprocess.run(["pkg-config", "--libs-only-L", "clxent"],
                              check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    inc = [f[2:] for f in shlex.split(cflags.stdout) if f.startswith("-I")]
    lib = [f[2:] for f in shlex.split(libs.stdout) if f.startswith("-L")]
    return (inc[0] if inc else "/usr/include", lib[0] if lib else "/usr/lib")


def _has_lib(directory):
    return os.path.exists(os.path.join(directory, "libclxent.so"))


def locate():
    """(include dir, library dir) of the clxent this binding builds against."""
    inc, lib = os.environ.get("CLXENT_INCLUDE_DIR"), os.environ.get("CLXENT_LIBRARY_DIR")
    if inc and lib:
        return inc, lib
    tree_inc = os.path.join(TREE, "host", "include")
    build = os.environ.get("CLXENT_BUILD_DIR")
    if build:
        build = os.path.abspath(build)
        if not _has_lib(build):
            raise RuntimeError(f"CLXENT_BUILD_DIR={build} has no libclxent.so")
        return tree_inc, build
    if _has_lib(os.path.join(TREE, "build")) and os.path.isdir(tree_inc):
        return tree_inc, os.path.join(TREE, "build")
    found = _pkg_config()
    if found:
        return found
    raise RuntimeError(
        "clxent: no libclxent.so found. Build it first (bash tools/setup.sh "
        "build), or set CLXENT_BUILD_DIR, or CLXENT_INCLUDE_DIR and "
        "CLXENT_LIBRARY_DIR, or install clxent where pkg-config finds it.")


INCLUDE_DIR, LIBRARY_DIR = locate()
ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "clxent._native",
    "#include <clxent/clxent.h>\n",
    include_dirs=[INCLUDE_DIR],
    library_dirs=[LIBRARY_DIR],
    libraries=["clxent"],
    extra_link_args=[f"-Wl,-rpath,{LIBRARY_DIR}"],
    extra_compile_args=["-std=c11"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
