/* Argument parsing, error reporting and small conversions shared by the
 * clxent subcommands. */
#define _POSIX_C_SOURCE 200809L /* access */
#include "commands.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* cli_option without the check of the value. */
static int option(const char *cmd, int argc, char **argv, int *i,
                  const char *name, const char **value) {
    const char *arg = argv[*i];
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0) return 0;
    if (arg[n] == '=') {
        *value = arg + n + 1;
        return 1;
    }
    if (arg[n] != '\0') return 0;
    if (*i + 1 >= argc)
        return cli_usage_error(cmd, "option %s needs a value", name);
    *value = argv[++*i];
    return 1;
}

int cli_option(const char *cmd, int argc, char **argv, int *i,
               const char *name, const char **value) {
    int r = option(cmd, argc, argv, i, name, value);
    /* An empty spec would silently mean the default device. */
    if (r == 1 && !**value &&
        (strcmp(name, "--device") == 0 || strcmp(name, "--select") == 0))
        return cli_usage_error(cmd, "%s: empty; a device spec such as "
                               "'host' or 'pocl' expected", name);
    return r;
}

int cli_is_help(const char *arg) {
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "clxent %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'clxent %s --help'.\n", cmd);
    return CLI_USAGE;
}

int cli_fail(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "clxent %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_RUNTIME;
}

int cli_fail_status(const char *cmd, const clxent_context *ctx,
                    clxent_status status, const char *what) {
    const char *message = ctx ? clxent_context_message(ctx) : "";
    return cli_fail(cmd, "%s: %s (%s)%s%s", what,
                    clxent_status_string(status), clxent_status_name(status),
                    message && *message ? ": " : "", message ? message : "");
}

int cli_parse_size(const char *cmd, const char *flag, const char *text,
                   size_t *out) {
    char *end = NULL;
    errno = 0;
    if (!text || *text < '0' || *text > '9')
        return cli_usage_error(cmd, "%s: '%s' is not a non-negative integer",
                               flag, text ? text : "");
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end != '\0' || v > SIZE_MAX)
        return cli_usage_error(cmd, "%s: '%s' is not a non-negative integer",
                               flag, text);
    *out = (size_t)v;
    return 0;
}

int cli_parse_int64(const char *cmd, const char *flag, const char *text,
                    int64_t *out) {
    char *end = NULL;
    errno = 0;
    long long v = text && *text ? strtoll(text, &end, 10) : 0;
    if (!text || !*text || errno || *end != '\0')
        return cli_usage_error(cmd, "%s: '%s' is not an integer", flag,
                               text ? text : "");
    *out = (int64_t)v;
    return 0;
}

int cli_parse_float(const char *cmd, const char *flag, const char *text,
                    float *out) {
    char *end = NULL;
    errno = 0;
    double v = text && *text ? strtod(text, &end) : 0.0;
    /* ERANGE with a finite result is an underflow: a denormal or 0 is
     * still the number meant, as float rounds it anyway; with an infinite
     * one, an overflow. */
    int overflow = errno == ERANGE && isinf(v);
    if (!text || !*text || *end != '\0' || (errno && errno != ERANGE) ||
        (!isfinite(v) && !overflow))
        return cli_usage_error(cmd, "%s: '%s' is not a finite number", flag,
                               text ? text : "");
    if (overflow || !cli_fits_f32(v))
        return cli_usage_error(cmd, "%s: '%s' is beyond float's range "
                               "(largest finite %g)", flag, text,
                               (double)FLT_MAX);
    *out = (float)v;
    return 0;
}

int cli_fits_f32(double v) {
    /* Halfway between FLT_MAX and 2^128: from there on, rounding to
     * nearest gives inf. */
    return !isfinite(v) || fabs(v) < 0x1.ffffffp+127;
}

int cli_parse_dtype(const char *cmd, const char *flag, const char *text,
                    clxent_dtype *out) {
    if (strcmp(text, "f32") == 0) *out = CLXENT_F32;
    else if (strcmp(text, "f16") == 0) *out = CLXENT_F16;
    else if (strcmp(text, "bf16") == 0) *out = CLXENT_BF16;
    else
        return cli_usage_error(cmd, "%s: '%s' is not one of f32, f16, bf16",
                               flag, text);
    return 0;
}

int cli_parse_shapes(const char *cmd, const char *flag, const char *text,
                     size_t *rows, size_t *cols, size_t capacity,
                     size_t *count) {
    *count = 0;
    for (const char *p = text;;) {
        char *end = NULL;
        if (*p < '0' || *p > '9') break;
        errno = 0;
        unsigned long long r = strtoull(p, &end, 10);
        if (errno || (*end != 'x' && *end != 'X')) break;
        p = end + 1;
        if (*p < '0' || *p > '9') break;
        unsigned long long c = strtoull(p, &end, 10);
        if (errno || r == 0 || c == 0) break;
        if (r > SIZE_MAX || c > SIZE_MAX ||
            !cli_shape_fits((size_t)r, (size_t)c, 1))
            return cli_usage_error(cmd, "%s: %llux%llu exceeds the limit of "
                                   "%zu rows and %zu classes", flag, r, c,
                                   CLI_MAX_DIM, CLI_MAX_DIM);
        if (*count == capacity)
            return cli_usage_error(cmd, "%s: at most %zu shapes", flag,
                                   capacity);
        rows[*count] = (size_t)r;
        cols[*count] = (size_t)c;
        ++*count;
        if (*end == '\0') return 0;
        if (*end != ',') break;
        p = end + 1;
    }
    return cli_usage_error(cmd, "%s: '%s' is not a list like 64x1000,8x32000 "
                           "(positive sizes)", flag, text);
}

int cli_shape_fits(size_t outer, size_t classes, size_t inner) {
    if (outer > CLI_MAX_DIM || classes > CLI_MAX_DIM || inner > CLI_MAX_DIM)
        return 0;
    size_t rows = outer * inner; /* both under 2^31: no overflow */
    return rows <= CLI_MAX_DIM && rows <= SIZE_MAX / classes / sizeof(float);
}

int cli_check_writable(const char *cmd, const char *flag, const char *path) {
    struct stat st;
    const char *why = NULL;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) why = "it is a directory";
        else if (access(path, W_OK) != 0) why = strerror(errno);
    } else if (errno != ENOENT) {
        why = strerror(errno);
    } else {
        /* A new file: its directory must take it. */
        const char *slash = strrchr(path, '/');
        char dir[4096];
        if (!slash) snprintf(dir, sizeof dir, ".");
        else if (slash == path) snprintf(dir, sizeof dir, "/");
        else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
        if (access(dir, W_OK | X_OK) != 0) why = strerror(errno);
    }
    if (!why) return 0;
    return cli_fail(cmd, "%s %s: cannot be written (%s); nothing was run",
                    flag, path, why);
}

int cli_open_context(const char *cmd, const char *spec, clxent_context **ctx) {
    *ctx = NULL;
    clxent_status st = clxent_context_create(spec, ctx);
    if (st == CLXENT_STATUS_OK) return 0;
    cli_fail_status(cmd, *ctx, st,
                    spec ? spec : "default device (CLXENT_DEVICE or rule)");
    clxent_context_destroy(*ctx);
    *ctx = NULL;
    return CLI_RUNTIME;
}

int cli_open_pair(const char *cmd, const char *spec, clxent_context **dev,
                  clxent_context **host, clxent_device_info *info) {
    *host = NULL;
    int rc = cli_open_context(cmd, spec, dev);
    if (rc) return rc;
    if ((rc = cli_open_context(cmd, "host", host))) {
        clxent_context_destroy(*dev);
        *dev = NULL;
        return rc;
    }
    memset(info, 0, sizeof *info);
    clxent_context_info(*dev, info);
    return 0;
}

void cli_json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20) fprintf(f, "\\u%04x", *p);
            else fputc(*p, f);
        }
    }
    fputc('"', f);
}

void cli_store(void *base, size_t i, clxent_dtype dtype, float value) {
    if (dtype == CLXENT_F32) {
        memcpy((unsigned char *)base + 4 * i, &value, 4);
        return;
    }
    uint16_t h = dtype == CLXENT_F16 ? clxent_f32_to_f16(value)
                                     : clxent_f32_to_bf16(value);
    memcpy((unsigned char *)base + 2 * i, &h, 2);
}

float cli_load(const void *base, size_t i, clxent_dtype dtype) {
    float f;
    if (dtype == CLXENT_F32) {
        memcpy(&f, (const unsigned char *)base + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, (const unsigned char *)base + 2 * i, 2);
    return dtype == CLXENT_F16 ? clxent_f16_to_f32(h) : clxent_bf16_to_f32(h);
}

void *cli_from_f32(const float *values, size_t n, clxent_dtype dtype) {
    size_t elem = clxent_dtype_size(dtype);
    if (!elem || (n && n > SIZE_MAX / elem)) return NULL;
    void *out = malloc(n ? n * elem : 1);
    if (!out) return NULL;
    for (size_t i = 0; i < n; i++) cli_store(out, i, dtype, values[i]);
    return out;
}

float *cli_to_f32(const void *values, size_t n, clxent_dtype dtype) {
    if (n > SIZE_MAX / sizeof(float)) return NULL;
    float *out = malloc(n ? n * sizeof(float) : 1);
    if (!out) return NULL;
    for (size_t i = 0; i < n; i++) out[i] = cli_load(values, i, dtype);
    return out;
}

cli_rng cli_rng_seed(uint64_t seed) {
    cli_rng r = {seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull};
    if (r.s == 0) r.s = 1; /* xorshift stays at 0 forever */
    return r;
}

uint64_t cli_rng_next(cli_rng *rng) {
    uint64_t x = rng->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng->s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

double cli_rng_uniform(cli_rng *rng, double lo, double hi) {
    return lo + (hi - lo) * ((double)(cli_rng_next(rng) >> 11) * 0x1.0p-53);
}
