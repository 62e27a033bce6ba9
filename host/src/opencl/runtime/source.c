/* Kernel sources: embedded byte arrays (cmake/embed_kernels.cmake) or,
 * with CLXENT_KERNEL_DIR set at context creation, files of that folder; and the program source
 * of a kernel file with its #include "name" lines resolved. OpenCL has no
 * include path for sources passed as strings, so the host does the one
 * preprocessing step the kernels need. */
#include "opencl/runtime/runtime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads folder/name whole into a malloc'd NUL-terminated block. */
static clxent_status read_file(clxent_context *ctx, const char *folder,
                               const char *name, char **data, size_t *size) {
    *data = NULL;
    size_t plen = strlen(folder) + strlen(name) + 2;
    char *path = malloc(plen);
    if (!path)
        return clx_fail(ctx, CLXENT_STATUS_OUT_OF_MEMORY, "clx_cl_kernel",
                        "out of host memory");
    snprintf(path, plen, "%s/%s", folder, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        clxent_status st = clx_fail(
            ctx, CLXENT_STATUS_IO_ERROR, "clx_cl_kernel",
            "cannot open kernel source \"%s\" (CLXENT_KERNEL_DIR): %s", path,
            strerror(errno));
        free(path);
        return st;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1) break;
        char *grown = realloc(buf, cap * 2);
        if (!grown) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = grown;
        cap *= 2;
    }
    int failed = ferror(f);
    fclose(f);
    clxent_status st = CLXENT_STATUS_OK;
    if (!buf)
        st = clx_fail(ctx, CLXENT_STATUS_OUT_OF_MEMORY, "clx_cl_kernel",
                      "out of host memory reading \"%s\"", path);
    else if (failed)
        st = clx_fail(ctx, CLXENT_STATUS_IO_ERROR, "clx_cl_kernel",
                      "error reading kernel source \"%s\"", path);
    free(path);
    if (st != CLXENT_STATUS_OK) {
        free(buf);
        return st;
    }
    buf[n] = '\0';
    *data = buf;
    *size = n;
    return CLXENT_STATUS_OK;
}

static clxent_status embedded_file(clxent_context *ctx, const char *name,
                                   char **data, size_t *size) {
    for (size_t i = 0; i < clx_kernel_source_count; ++i) {
        if (strcmp(clx_kernel_sources[i].name, name) != 0) continue;
        *size = clx_kernel_sources[i].size;
        *data = malloc(*size + 1);
        if (!*data)
            return clx_fail(ctx, CLXENT_STATUS_OUT_OF_MEMORY, "clx_cl_kernel",
                            "out of host memory");
        memcpy(*data, clx_kernel_sources[i].data, *size);
        (*data)[*size] = '\0';
        return CLXENT_STATUS_OK;
    }
    *data = NULL;
    return clx_fail(ctx, CLXENT_STATUS_IO_ERROR, "clx_cl_kernel",
                    "no embedded kernel source \"%s\" (rebuild after adding "
                    "it to kernels/)",
                    name);
}

static clxent_status load_source(clxent_context *ctx, const char *name,
                                 char **data, size_t *size) {
    const char *dir = ctx->cl->kernel_dir;
    return dir ? read_file(ctx, dir, name, data, size)
                       : embedded_file(ctx, name, data, size);
}

/* The program source being assembled: a growing string, and the files
 * already in it (each is included at most once, like #pragma once). */
#define SRC_MAX_FILES 16
#define SRC_MAX_DEPTH 6

typedef struct src_builder {
    char *text;
    size_t len, cap;
    char names[SRC_MAX_FILES][64];
    size_t count;
} src_builder;

static int src_append(src_builder *b, const char *data, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 16;
        while (b->len + n + 1 > cap) cap *= 2;
        char *grown = realloc(b->text, cap);
        if (!grown) return 0;
        b->text = grown;
        b->cap = cap;
    }
    memcpy(b->text + b->len, data, n);
    b->len += n;
    b->text[b->len] = '\0';
    return 1;
}

/* "#line N "file"": build logs count the lines of the file they are in. */
static int src_line_marker(src_builder *b, size_t line, const char *file) {
    char marker[96];
    int n = snprintf(marker, sizeof marker, "#line %zu \"%s\"\n", line, file);
    return n > 0 && (size_t)n < sizeof marker && src_append(b, marker, (size_t)n);
}

/* The name of an `#include "name"` line (at the start of the line), or 0. */
static int include_name(const char *line, size_t n, char *name, size_t size) {
    static const char directive[] = "#include \"";
    size_t d = sizeof directive - 1;
    if (n <= d || memcmp(line, directive, d) != 0) return 0;
    const char *end = memchr(line + d, '"', n - d);
    if (!end || end == line + d || (size_t)(end - line - d) >= size) return 0;
    memcpy(name, line + d, (size_t)(end - line - d));
    name[end - line - d] = '\0';
    return 1;
}

static clxent_status src_add_file(clxent_context *ctx, src_builder *b,
                                  const char *file, int depth) {
    if (strlen(file) >= sizeof b->names[0] || b->count == SRC_MAX_FILES ||
        depth > SRC_MAX_DEPTH)
        return clx_fail(ctx, CLXENT_STATUS_BUILD_FAILED, "clx_cl_kernel",
                        "kernel source \"%s\": more than %d files or %d "
                        "levels of #include, or a name over %zu characters",
                        file, SRC_MAX_FILES, SRC_MAX_DEPTH,
                        sizeof b->names[0] - 1);
    strcpy(b->names[b->count++], file);
    char *data = NULL;
    size_t size = 0;
    clxent_status st = load_source(ctx, file, &data, &size);
    if (st != CLXENT_STATUS_OK) return st;
    int ok = src_line_marker(b, 1, file);
    size_t line_no = 1;
    for (const char *p = data; ok && st == CLXENT_STATUS_OK && p < data + size;
         ++line_no) {
        const char *nl = memchr(p, '\n', (size_t)(data + size - p));
        size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(data + size - p);
        char name[64];
        if (!include_name(p, n, name, sizeof name)) {
            ok = src_append(b, p, n);
        } else {
            int seen = 0;
            for (size_t i = 0; i < b->count; ++i)
                seen |= strcmp(b->names[i], name) == 0;
            if (!seen) st = src_add_file(ctx, b, name, depth + 1);
            /* back in this file, on the line after the #include */
            ok = st != CLXENT_STATUS_OK || src_line_marker(b, line_no + 1, file);
        }
        p += n;
    }
    free(data);
    if (st == CLXENT_STATUS_OK && (!ok || !src_append(b, "\n", 1)))
        st = clx_fail(ctx, CLXENT_STATUS_OUT_OF_MEMORY, "clx_cl_kernel",
                      "out of host memory");
    return st;
}

clxent_status clx_cl_program_source(clxent_context *ctx, const char *file,
                                    char **source) {
    src_builder b;
    memset(&b, 0, sizeof b);
    clxent_status st = src_add_file(ctx, &b, file, 0);
    if (st != CLXENT_STATUS_OK) {
        free(b.text);
        return st;
    }
    *source = b.text;
    return CLXENT_STATUS_OK;
}
