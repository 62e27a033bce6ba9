/* Device enumeration (clinfo's two-call idiom) and the device spec grammar:
 * host | P:D | gpu | cpu | accelerator | name substring | empty. */
#define _POSIX_C_SOURCE 200809L /* sysconf, for the host entry's memory */

#include "api/device_select.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


typedef struct found_device {
    clxent_device_info info;
    cl_platform_id platform;
    cl_device_id device;
    cl_device_type type_bits; /* 0 when the type failed to query */
    char platform_vendor[128];  /* "The pocl project": "pocl" finds PoCL */
} found_device;

/* ---- small text helpers ---- */

static void copy_text(char *dst, size_t size, const char *src) {
    if (size == 0) return;
    snprintf(dst, size, "%s", src ? src : "");
}

static int equals_nocase(const char *a, const char *b) {
    for (; *a && *b; ++a, ++b)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
            return 0;
    return *a == *b;
}

static void record_error(clxent_device_info *info, const char *property,
                         cl_int err) {
    clx_appendf(info->errors, sizeof info->errors, "%s%s: %s (%d)",
                info->errors[0] ? "; " : "", property,
                clx_cl_error_name(err), (int)err);
}

/* ---- property queries: a failure is recorded and the listing goes on ---- */

static void device_string(cl_device_id device, cl_device_info param,
                          const char *property, char *dst, size_t size,
                          clxent_device_info *info) {
    dst[0] = '\0';
    size_t need = 0;
    cl_int err = CLX_CL(clGetDeviceInfo(device, param, 0, NULL, &need));
    if (err != CL_SUCCESS) {
        record_error(info, property, err);
        return;
    }
    char *text = malloc(need + 1);
    if (!text) {
        record_error(info, property, CL_OUT_OF_HOST_MEMORY);
        return;
    }
    err = CLX_CL(clGetDeviceInfo(device, param, need, text, NULL));
    if (err != CL_SUCCESS) {
        record_error(info, property, err);
    } else {
        text[need] = '\0';
        copy_text(dst, size, text);
    }
    free(text);
}

static void device_value(cl_device_id device, cl_device_info param,
                         const char *property, void *dst, size_t size,
                         clxent_device_info *info) {
    cl_int err = CLX_CL(clGetDeviceInfo(device, param, size, dst, NULL));
    if (err != CL_SUCCESS) {
        memset(dst, 0, size);
        record_error(info, property, err);
    }
}

/* A platform string into dst ("" on failure, whose code is returned). */
static cl_int platform_string(cl_platform_id platform, cl_platform_info param,
                              char *dst, size_t size) {
    dst[0] = '\0';
    size_t need = 0;
    cl_int err = CLX_CL(clGetPlatformInfo(platform, param, 0, NULL, &need));
    char *text = err == CL_SUCCESS ? malloc(need + 1) : NULL;
    if (err == CL_SUCCESS && !text) err = CL_OUT_OF_HOST_MEMORY;
    if (err == CL_SUCCESS)
        err = CLX_CL(clGetPlatformInfo(platform, param, need, text, NULL));
    if (err == CL_SUCCESS) {
        text[need] = '\0';
        copy_text(dst, size, text);
    }
    free(text);
    return err;
}

static const char *type_name(cl_device_type bits) {
    if (bits & CL_DEVICE_TYPE_GPU) return "gpu";
    if (bits & CL_DEVICE_TYPE_CPU) return "cpu";
    if (bits & CL_DEVICE_TYPE_ACCELERATOR) return "accelerator";
    if (bits & CL_DEVICE_TYPE_CUSTOM) return "custom";
    return "unknown";
}

/* Fills every field of info for one OpenCL device (spec and indices are
 * the caller's). Returns the CL_DEVICE_TYPE bits (0 if unknown). */
static cl_device_type describe_device(cl_device_id device,
                                      const char *platform_name,
                                      clxent_device_info *info) {
    info->backend = CLXENT_BACKEND_OPENCL;
    copy_text(info->platform, sizeof info->platform, platform_name);
    device_string(device, CL_DEVICE_NAME, "CL_DEVICE_NAME", info->name,
                  sizeof info->name, info);
    device_string(device, CL_DEVICE_VENDOR, "CL_DEVICE_VENDOR", info->vendor,
                  sizeof info->vendor, info);
    device_string(device, CL_DRIVER_VERSION, "CL_DRIVER_VERSION",
                  info->driver_version, sizeof info->driver_version, info);
    device_string(device, CL_DEVICE_VERSION, "CL_DEVICE_VERSION",
                  info->device_version, sizeof info->device_version, info);
    device_string(device, CL_DEVICE_OPENCL_C_VERSION,
                  "CL_DEVICE_OPENCL_C_VERSION", info->c_version,
                  sizeof info->c_version, info);
    cl_device_type bits = 0;
    device_value(device, CL_DEVICE_TYPE, "CL_DEVICE_TYPE", &bits, sizeof bits,
                 info);
    copy_text(info->type, sizeof info->type, type_name(bits));
    device_value(device, CL_DEVICE_MAX_COMPUTE_UNITS,
                 "CL_DEVICE_MAX_COMPUTE_UNITS", &info->compute_units,
                 sizeof info->compute_units, info);
    device_value(device, CL_DEVICE_MAX_WORK_GROUP_SIZE,
                 "CL_DEVICE_MAX_WORK_GROUP_SIZE", &info->max_work_group_size,
                 sizeof info->max_work_group_size, info);
    device_value(device, CL_DEVICE_GLOBAL_MEM_SIZE,
                 "CL_DEVICE_GLOBAL_MEM_SIZE", &info->global_mem_bytes,
                 sizeof info->global_mem_bytes, info);
    device_value(device, CL_DEVICE_LOCAL_MEM_SIZE, "CL_DEVICE_LOCAL_MEM_SIZE",
                 &info->local_mem_bytes, sizeof info->local_mem_bytes, info);
    device_value(device, CL_DEVICE_MAX_MEM_ALLOC_SIZE,
                 "CL_DEVICE_MAX_MEM_ALLOC_SIZE", &info->max_alloc_bytes,
                 sizeof info->max_alloc_bytes, info);
    /* The extension string can be long; only two names matter here. */
    size_t need = 0;
    cl_int err = CLX_CL(
        clGetDeviceInfo(device, CL_DEVICE_EXTENSIONS, 0, NULL, &need));
    char *ext = err == CL_SUCCESS ? malloc(need + 1) : NULL;
    if (err == CL_SUCCESS && !ext) err = CL_OUT_OF_HOST_MEMORY;
    if (err == CL_SUCCESS)
        err = CLX_CL(
            clGetDeviceInfo(device, CL_DEVICE_EXTENSIONS, need, ext, NULL));
    if (err == CL_SUCCESS) {
        ext[need] = '\0';
        info->fp16 = strstr(ext, "cl_khr_fp16") != NULL;
        info->fp64 = strstr(ext, "cl_khr_fp64") != NULL;
    } else {
        record_error(info, "CL_DEVICE_EXTENSIONS", err);
    }
    free(ext);
    return bits;
}

static void host_info(clxent_device_info *info) {
    memset(info, 0, sizeof *info);
    info->backend = CLXENT_BACKEND_HOST;
    info->platform_index = -1;
    info->device_index = -1;
    copy_text(info->spec, sizeof info->spec, "host");
    copy_text(info->platform, sizeof info->platform, "clxent");
    copy_text(info->name, sizeof info->name,
              "host reference backend (C, double accumulation)");
    copy_text(info->vendor, sizeof info->vendor, "clxent");
    copy_text(info->driver_version, sizeof info->driver_version,
              CLXENT_VERSION_STRING);
    copy_text(info->device_version, sizeof info->device_version,
              "clxent host " CLXENT_VERSION_STRING);
    copy_text(info->c_version, sizeof info->c_version, "C11");
    copy_text(info->type, sizeof info->type, "host");
    info->compute_units = 1; /* single-threaded reference */
    info->max_work_group_size = 1;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0)
        info->global_mem_bytes = (cl_ulong)pages * (cl_ulong)page;
    info->max_alloc_bytes = info->global_mem_bytes;
    info->local_mem_bytes = 0;
    info->fp16 = 0;
    info->fp64 = 1;
}

/* ---- enumeration ---- */

/* All OpenCL devices in platform/device order. No platform (or the ICD
 * loader's CL_PLATFORM_NOT_FOUND_KHR) is an empty list, not an error. */
static clxent_status enumerate(found_device **out, size_t *count,
                               char *error, size_t error_size) {
    *out = NULL;
    *count = 0;
    cl_uint np = 0;
    cl_int err = CLX_CL(clGetPlatformIDs(0, NULL, &np));
    if (err == -1001 || (err == CL_SUCCESS && np == 0)) return CLXENT_STATUS_OK;
    if (err != CL_SUCCESS) {
        snprintf(error, error_size, "clGetPlatformIDs: %s (%d)",
                 clx_cl_error_name(err), (int)err);
        return clx_status_from_cl(err);
    }
    cl_platform_id *platforms = malloc(np * sizeof *platforms);
    if (!platforms) {
        snprintf(error, error_size, "out of host memory listing platforms");
        return CLXENT_STATUS_OUT_OF_MEMORY;
    }
    err = CLX_CL(clGetPlatformIDs(np, platforms, NULL));
    if (err != CL_SUCCESS) {
        snprintf(error, error_size, "clGetPlatformIDs: %s (%d)",
                 clx_cl_error_name(err), (int)err);
        free(platforms);
        return clx_status_from_cl(err);
    }
    found_device *list = NULL;
    size_t n = 0;
    clxent_status status = CLXENT_STATUS_OK;
    for (cl_uint p = 0; p < np && status == CLXENT_STATUS_OK; ++p) {
        char pname[128], pvendor[128];
        cl_int name_err = platform_string(platforms[p], CL_PLATFORM_NAME,
                                          pname, sizeof pname);
        cl_int vendor_err = platform_string(platforms[p], CL_PLATFORM_VENDOR,
                                            pvendor, sizeof pvendor);

        cl_uint nd = 0;
        err = CLX_CL(
            clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, 0, NULL, &nd));
        if (err == CL_DEVICE_NOT_FOUND || (err == CL_SUCCESS && nd == 0))
            continue;
        cl_device_id *devices = NULL;
        if (err == CL_SUCCESS) {
            devices = malloc(nd * sizeof *devices);
            if (!devices) err = CL_OUT_OF_HOST_MEMORY;
        }
        if (err == CL_SUCCESS)
            err = CLX_CL(clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, nd,
                                        devices, NULL));
        found_device *grown =
            err == CL_SUCCESS ? realloc(list, (n + nd) * sizeof *list) : NULL;
        if (err == CL_SUCCESS && !grown) err = CL_OUT_OF_HOST_MEMORY;
        if (err != CL_SUCCESS) {
            /* Skipping the platform would silently renumber nothing but
             * hide its devices; a broken platform is an error. */
            snprintf(error, error_size, "clGetDeviceIDs (platform %u): %s (%d)",
                     p, clx_cl_error_name(err), (int)err);
            status = clx_status_from_cl(err);
            free(devices);
            break;
        }
        list = grown;
        for (cl_uint d = 0; d < nd; ++d) {
            found_device *f = &list[n++];
            memset(f, 0, sizeof *f);
            f->platform = platforms[p];
            f->device = devices[d];
            f->info.platform_index = (int)p;
            f->info.device_index = (int)d;
            snprintf(f->info.spec, sizeof f->info.spec, "%u:%u", p, d);
            memcpy(f->platform_vendor, pvendor, sizeof pvendor);
            if (name_err != CL_SUCCESS)
                record_error(&f->info, "CL_PLATFORM_NAME", name_err);
            if (vendor_err != CL_SUCCESS)
                record_error(&f->info, "CL_PLATFORM_VENDOR", vendor_err);
            f->type_bits = describe_device(devices[d], pname, &f->info);
        }
        free(devices);
    }
    free(platforms);
    if (status != CLXENT_STATUS_OK) {
        free(list);
        return status;
    }
    *out = list;
    *count = n;
    return CLXENT_STATUS_OK;
}

clxent_status clxent_devices_list(clxent_device_info *infos, size_t capacity,
                                  size_t *count) {
    if (!count) return CLXENT_STATUS_NULL_POINTER;
    *count = 0;
    found_device *list;
    size_t n;
    char error[256] = "";
    clxent_status st = enumerate(&list, &n, error, sizeof error);
    if (st != CLXENT_STATUS_OK) return st;
    if (infos) {
        for (size_t i = 0; i < n && i < capacity; ++i) infos[i] = list[i].info;
        if (n < capacity) host_info(&infos[n]);
    }
    *count = n + 1;
    free(list);
    return CLXENT_STATUS_OK;
}

/* ---- the spec grammar ---- */

/* Parses a non-negative decimal int of [begin, end); 0 if malformed. */
static int parse_index(const char *begin, const char *end, int *value) {
    if (begin == end) return 0;
    long v = 0;
    for (const char *c = begin; c < end; ++c) {
        if (!isdigit((unsigned char)*c)) return 0;
        v = v * 10 + (*c - '0');
        if (v > INT_MAX) return 0;
    }
    *value = (int)v;
    return 1;
}

/* Classifies spec: returns "default", "host", "index" (platform, device
 * set), "type" (type set) or "name", or NULL with error filled for a
 * malformed P:D. Surrounding white space is ignored; keywords are
 * case-insensitive. Any spec holding ':' is a P:D spec. */
const char *clx_spec_parse(const char *spec, int *platform, int *device,
                           cl_device_type *type, char *error,
                           size_t error_size) {
    if (error && error_size) error[0] = '\0';
    if (!spec) return "default";
    const char *begin = spec, *end = spec + strlen(spec);
    while (begin < end && isspace((unsigned char)*begin)) ++begin;
    while (end > begin && isspace((unsigned char)end[-1])) --end;
    if (begin == end) return "default";
    size_t len = (size_t)(end - begin);
    char word[16];
    if (len < sizeof word) {
        memcpy(word, begin, len);
        word[len] = '\0';
        if (equals_nocase(word, "host")) return "host";
        static const struct {
            const char *name;
            cl_device_type bits;
        } types[] = {{"gpu", CL_DEVICE_TYPE_GPU},
                     {"cpu", CL_DEVICE_TYPE_CPU},
                     {"accelerator", CL_DEVICE_TYPE_ACCELERATOR}};
        for (size_t i = 0; i < sizeof types / sizeof types[0]; ++i)
            if (equals_nocase(word, types[i].name)) {
                if (type) *type = types[i].bits;
                return "type";
            }
    }
    const char *colon = memchr(begin, ':', len);
    if (colon) {
        int p, d;
        if (parse_index(begin, colon, &p) && parse_index(colon + 1, end, &d)) {
            if (platform) *platform = p;
            if (device) *device = d;
            return "index";
        }
        if (error && error_size)
            snprintf(error, error_size,
                     "malformed device spec \"%s\": P:D takes two "
                     "non-negative integers, platform and device index",
                     spec);
        return NULL;
    }
    return "name";
}

/* Names and vendors both count: PoCL's platform is "Portable Computing
 * Language" and only its vendor, "The pocl project", says pocl. The
 * platform's first (pass 0), then the device's (pass 1): PoCL's device
 * "pthread-skylake-avx512-Intel(R) Xeon(R) Processor", vendor
 * GenuineIntel, would otherwise answer "intel" whenever the ICD loader
 * lists PoCL before Intel's runtime. */
static int name_matches(const found_device *f, const char *needle,
                        int pass) {
    if (pass == 0)
        return clx_contains_nocase(f->info.platform, needle) ||
               clx_contains_nocase(f->platform_vendor, needle);
    return clx_contains_nocase(f->info.name, needle) ||
           clx_contains_nocase(f->info.vendor, needle);
}

/* "0:0 cpu NAME (PLATFORM), host" */
static void append_choices(char *message, size_t size,
                           const found_device *list, size_t n) {
    clx_appendf(message, size, "; choices: ");
    for (size_t i = 0; i < n; ++i)
        clx_appendf(message, size, "%s %s %s (%s), ", list[i].info.spec,
                    list[i].info.type, list[i].info.name,
                    list[i].info.platform);
    clx_appendf(message, size, "host");
}

/* Trimmed copy of spec for substring search (NULL when out of memory). */
static char *trimmed(const char *spec) {
    const char *begin = spec, *end = spec + strlen(spec);
    while (begin < end && isspace((unsigned char)*begin)) ++begin;
    while (end > begin && isspace((unsigned char)end[-1])) --end;
    char *t = malloc((size_t)(end - begin) + 1);
    if (!t) return NULL;
    memcpy(t, begin, (size_t)(end - begin));
    t[end - begin] = '\0';
    return t;
}

/* clxent_device_resolve plus the OpenCL ids of the chosen device (NULL
 * for host). message is always written when given ("" on success). */
clxent_status clx_device_select(const char *spec, clxent_device_info *info,
                                cl_platform_id *platform,
                                cl_device_id *device, char *message,
                                size_t message_size) {
    char scratch[8];
    if (!message || message_size == 0) {
        message = scratch;
        message_size = sizeof scratch;
    }
    message[0] = '\0';
    if (platform) *platform = NULL;
    if (device) *device = NULL;
    if (!info) {
        copy_text(message, message_size, "info is NULL");
        return CLXENT_STATUS_NULL_POINTER;
    }
    int p = -1, d = -1;
    cl_device_type want = 0;
    char parse_error[192];
    const char *kind =
        clx_spec_parse(spec, &p, &d, &want, parse_error, sizeof parse_error);
    if (kind && strcmp(kind, "host") == 0) { /* needs no OpenCL at all */
        host_info(info);
        copy_text(info->reason, sizeof info->reason,
                  "spec \"host\": built-in C backend");
        return CLXENT_STATUS_OK;
    }

    found_device *list;
    size_t n;
    clxent_status st = enumerate(&list, &n, message, message_size);
    if (st != CLXENT_STATUS_OK) return st;

    const found_device *chosen = NULL;
    char reason[sizeof info->reason] = "";
    if (!kind) {
        copy_text(message, message_size, parse_error);
        append_choices(message, message_size, list, n);
        st = CLXENT_STATUS_INVALID_ARGUMENT;
    } else if (strcmp(kind, "default") == 0) {
        for (size_t i = 0; i < n && !chosen; ++i)
            if (list[i].type_bits & CL_DEVICE_TYPE_GPU) chosen = &list[i];
        if (chosen)
            copy_text(reason, sizeof reason, "default: first GPU");
        else if (n > 0) {
            chosen = &list[0];
            copy_text(reason, sizeof reason,
                      "default: no GPU, first OpenCL device");
        }
    } else if (strcmp(kind, "index") == 0) {
        for (size_t i = 0; i < n && !chosen; ++i)
            if (list[i].info.platform_index == p &&
                list[i].info.device_index == d)
                chosen = &list[i];
        if (chosen)
            snprintf(reason, sizeof reason,
                     "spec \"%d:%d\": platform %d, device %d", p, d, p, d);
        else {
            snprintf(message, message_size,
                     "no device matches \"%s\" (no platform %d device %d)",
                     spec, p, d);
            append_choices(message, message_size, list, n);
            st = CLXENT_STATUS_DEVICE_NOT_FOUND;
        }
    } else if (strcmp(kind, "type") == 0) {
        for (size_t i = 0; i < n && !chosen; ++i)
            if (list[i].type_bits & want) chosen = &list[i];
        if (chosen)
            snprintf(reason, sizeof reason,
                     "spec \"%.40s\": first OpenCL device of type %s", spec,
                     type_name(want));
        else {
            snprintf(message, message_size,
                     "no device matches \"%s\" (no OpenCL device of type %s)",
                     spec, type_name(want));
            append_choices(message, message_size, list, n);
            st = CLXENT_STATUS_DEVICE_NOT_FOUND;
        }
    } else { /* name */
        char *needle = trimmed(spec);
        if (!needle) {
            copy_text(message, message_size, "out of host memory");
            st = CLXENT_STATUS_OUT_OF_MEMORY;
        }
        int pass = 0;
        for (; needle && pass < 2 && !chosen; ++pass)
            for (size_t i = 0; i < n && !chosen; ++i)
                if (name_matches(&list[i], needle, pass)) chosen = &list[i];
        if (chosen)
            snprintf(reason, sizeof reason,
                     "spec \"%.40s\": first device whose %s name or vendor "
                     "contains it",
                     needle, pass == 1 ? "platform's" : "device");
        else if (needle) {
            snprintf(message, message_size, "no device matches \"%s\"", spec);
            append_choices(message, message_size, list, n);
            st = CLXENT_STATUS_DEVICE_NOT_FOUND;
        }
        free(needle);
    }

    if (st == CLXENT_STATUS_OK) {
        if (chosen) {
            *info = chosen->info;
            if (platform) *platform = chosen->platform;
            if (device) *device = chosen->device;
        } else { /* default with no OpenCL device at all */
            host_info(info);
            copy_text(reason, sizeof reason,
                      "default: no OpenCL device, host backend");
        }
        copy_text(info->reason, sizeof info->reason, reason);
    }
    free(list);
    return st;
}

clxent_status clxent_device_resolve(const char *spec, clxent_device_info *info,
                                    char *message, size_t message_size) {
    return clx_device_select(spec, info, NULL, NULL, message, message_size);
}

/* Info for a caller's device: the listed entry when the device is in the
 * enumeration, else queried directly with indices -1. */
clxent_status clx_device_describe(cl_device_id device,
                                  clxent_device_info *info, char *message,
                                  size_t message_size) {
    found_device *list;
    size_t n;
    clxent_status st = enumerate(&list, &n, message, message_size);
    if (st != CLXENT_STATUS_OK) return st;
    for (size_t i = 0; i < n; ++i)
        if (list[i].device == device) {
            *info = list[i].info;
            free(list);
            return CLXENT_STATUS_OK;
        }
    free(list);

    memset(info, 0, sizeof *info);
    info->platform_index = -1;
    info->device_index = -1;
    copy_text(info->spec, sizeof info->spec, "queue");
    char pname[128] = "";
    cl_platform_id platform = NULL;
    cl_int err = CLX_CL(clGetDeviceInfo(device, CL_DEVICE_PLATFORM,
                                        sizeof platform, &platform, NULL));
    if (err == CL_SUCCESS)
        err = platform_string(platform, CL_PLATFORM_NAME, pname, sizeof pname);
    if (err != CL_SUCCESS) record_error(info, "CL_PLATFORM_NAME", err);
    describe_device(device, pname, info);
    return CLXENT_STATUS_OK;
}
