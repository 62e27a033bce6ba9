/* Tuning files: parse, match, write; and the resolution of a context's
 * parameters (tuning.h). Pure C: no OpenCL call, no context. */
#define _POSIX_C_SOURCE 200809L /* open, fstat, fdopen */
#include "opencl/tuning/tuning.h"

#include "core/internal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(char *err, size_t size, const char *format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static int fail(char *err, size_t size, const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    vsnprintf(err, size, format, ap);
    va_end(ap);
    return -1;
}

/* A whole decimal number (optional sign), nothing else. */
static int parse_int(const char *s, int64_t *out) {
    if (!s || !*s) return 0;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || !end || *end != '\0' || end == s) return 0;
    *out = (int64_t)v;
    return 1;
}

static int copy_field(char *dst, size_t size, const char *src) {
    size_t n = strlen(src);
    if (n >= size) return 0;
    memcpy(dst, src, n + 1);
    return 1;
}

/* Splits a line (modified in place) into key and the trimmed rest. */
static void split_line(char *line, char **key, char **rest) {
    char *p = line;
    while (*p && !isspace((unsigned char)*p)) ++p;
    *key = line;
    if (*p) *p++ = '\0';
    while (*p && isspace((unsigned char)*p)) ++p;
    *rest = p;
}

/* One line of a tuning file after the version line. */
static int parse_key(clx_tuning_entry *e, unsigned char *seen, char *key,
                     char *rest, const char *where, char *err, size_t size) {
    static const char *const keys[] = {"name",         "match.platform",
                                       "match.vendor", "match.device",
                                       "match.driver", "match.class",
                                       "note"};
    if (strcmp(key, "param") == 0) {
        char *name, *value;
        split_line(rest, &name, &value);
        int id = clx_param_find(name);
        if (id < 0)
            return fail(err, size, "%s: unknown parameter \"%s\"", where,
                        name);
        int64_t v;
        if (!parse_int(value, &v))
            return fail(err, size,
                        "%s: parameter %s: \"%s\" is not a whole number",
                        where, name, value);
        const char *bad = clx_param_check(id, v);
        if (bad)
            return fail(err, size, "%s: parameter %s = %lld %s (%lld to %lld)",
                        where, name, (long long)v, bad,
                        (long long)clx_param_infos[id].lo,
                        (long long)clx_param_infos[id].hi);
        if (e->set[id])
            return fail(err, size, "%s: parameter %s is set twice", where,
                        name);
        e->set[id] = 1;
        e->value[id] = v;
        return 0;
    }
    size_t k = 0;
    while (k < sizeof keys / sizeof *keys && strcmp(keys[k], key) != 0) ++k;
    if (k == sizeof keys / sizeof *keys)
        return fail(err, size,
                    "%s: unknown key \"%s\" (name, match.platform, "
                    "match.vendor, match.device, match.driver, match.class, "
                    "note, param)",
                    where, key);
    if (seen[k]) return fail(err, size, "%s: %s is given twice", where, key);
    seen[k] = 1;
    if (!*rest && k != 6)
        return fail(err, size, "%s: %s has no value", where, key);
    int ok = 1;
    switch (k) {
    case 0: ok = copy_field(e->name, sizeof e->name, rest); break;
    case 1: ok = copy_field(e->platform, sizeof e->platform, rest); break;
    case 2: ok = copy_field(e->vendor, sizeof e->vendor, rest); break;
    case 3: ok = copy_field(e->device, sizeof e->device, rest); break;
    case 4: ok = copy_field(e->driver, sizeof e->driver, rest); break;
    case 5:
        if (strcmp(rest, "cpu") == 0)
            e->cls = 0;
        else if (strcmp(rest, "gpu") == 0)
            e->cls = 1;
        else
            return fail(err, size, "%s: match.class is \"%s\", not cpu or gpu",
                        where, rest);
        break;
    default: ok = copy_field(e->note, sizeof e->note, rest); break;
    }
    if (!ok) return fail(err, size, "%s: the value of %s is too long", where, key);
    return 0;
}

int clx_tuning_parse(const char *text, const char *path, clx_tuning_entry *e,
                     char *err, size_t err_size) {
    memset(e, 0, sizeof *e);
    e->cls = -1;
    unsigned char seen[7] = {0};
    int have_version = 0;
    unsigned line_no = 0;
    const char *p = text;
    while (*p) {
        ++line_no;
        const char *end = strchr(p, '\n');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char line[512];
        char where[320];
        snprintf(where, sizeof where, "%s:%u", path, line_no);
        if (n >= sizeof line)
            return fail(err, err_size, "%s: line longer than %zu characters",
                        where, sizeof line - 1);
        memcpy(line, p, n);
        line[n] = '\0';
        p = end ? end + 1 : p + n;
        while (n > 0 && isspace((unsigned char)line[n - 1])) line[--n] = '\0';
        char *s = line;
        while (*s && isspace((unsigned char)*s)) ++s;
        if (!*s || *s == '#') continue;
        char *key, *rest;
        split_line(s, &key, &rest);
        if (!have_version) {
            int64_t v;
            if (strcmp(key, "clxent-tuning") != 0)
                return fail(err, err_size,
                            "%s: expected the version line \"clxent-tuning "
                            "%d\" first, found \"%s\"",
                            where, CLX_TUNING_VERSION, s);
            if (!parse_int(rest, &v) || v != CLX_TUNING_VERSION)
                return fail(err, err_size,
                            "%s: tuning format version \"%s\" is not "
                            "supported (this clxent reads version %d)",
                            where, rest, CLX_TUNING_VERSION);
            have_version = 1;
            continue;
        }
        if (parse_key(e, seen, key, rest, where, err, err_size) != 0) return -1;
    }
    if (!have_version)
        return fail(err, err_size,
                    "%s:%u: empty: no version line \"clxent-tuning %d\"", path,
                    line_no ? line_no : 1, CLX_TUNING_VERSION);
    if (!e->name[0]) {
        const char *base = strrchr(path, '/');
        copy_field(e->name, sizeof e->name, base ? base + 1 : path);
    }
    return 0;
}

int clx_tuning_match(const clx_tuning_entry *e, const clx_device_key *k) {
    int score = 0;
    if (e->platform[0]) {
        if (!clx_contains_nocase(k->platform, e->platform)) return -1;
        ++score;
    }
    if (e->vendor[0]) {
        if (!clx_contains_nocase(k->vendor, e->vendor)) return -1;
        ++score;
    }
    if (e->device[0]) {
        if (!clx_contains_nocase(k->name, e->device)) return -1;
        ++score;
    }
    if (e->driver[0]) {
        if (!k->driver || strncmp(k->driver, e->driver, strlen(e->driver)))
            return -1;
        ++score;
    }
    if (e->cls >= 0) {
        if (e->cls != (k->gpu ? 1 : 0)) return -1;
        ++score;
    }
    return score;
}

/* The longest value a field of an entry holds. */
#define FIELD_MAX(field) ((int)sizeof(((clx_tuning_entry *)0)->field) - 1)

/* A name or note the reader gets back as written: one line, not longer
 * than its field. */
static int text_fails(const char *what, const char *text, int max, char *err,
                      size_t err_size) {
    if (!text) return 0;
    size_t n = strlen(text);
    for (size_t i = 0; i < n; ++i)
        if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f)
            return fail(err, err_size, "%s: a control character (byte %zu, "
                        "0x%02x): a tuning file's value is one line",
                        what, i, (unsigned)(unsigned char)text[i]);
    if (n > (size_t)max)
        return fail(err, err_size, "%s: %zu bytes, more than a tuning file "
                    "holds (%d)", what, n, max);
    return 0;
}

int clx_tuning_check_text(const char *name, const char *note, char *err,
                          size_t err_size) {
    return text_fails("name", name, FIELD_MAX(name), err, err_size) ||
           text_fails("note", note, FIELD_MAX(note), err, err_size);
}

int clx_tuning_write(FILE *f, const char *name, const clx_device_key *k,
                     const char *note, const clx_params *p,
                     const clx_params *baseline) {
    fprintf(f, "# clxent tuning file (docs/tuning.md)\nclxent-tuning %d\n",
            CLX_TUNING_VERSION);
    if (name && *name) fprintf(f, "name %s\n", name);
    /* at most what the reader takes: a prefix still matches (platform
     * and device by containment, the driver by prefix) */
    if (k->platform && *k->platform)
        fprintf(f, "match.platform %.*s\n", FIELD_MAX(platform), k->platform);
    if (k->name && *k->name)
        fprintf(f, "match.device %.*s\n", FIELD_MAX(device), k->name);
    if (k->driver && *k->driver)
        fprintf(f, "match.driver %.*s\n", FIELD_MAX(driver), k->driver);
    fprintf(f, "match.class %s\n", k->gpu ? "gpu" : "cpu");
    if (note && *note) fprintf(f, "note %s\n", note);
    for (int i = 0; i < CLX_PARAM_COUNT; ++i)
        if (p->v[i] != baseline->v[i])
            fprintf(f, "param %s %lld\n", clx_param_infos[i].name,
                    (long long)p->v[i]);
    return ferror(f) ? -1 : 0;
}

/* ---- resolution ---- */

static void apply(clx_params *p, const clx_tuning_entry *e) {
    for (int i = 0; i < CLX_PARAM_COUNT; ++i)
        if (e->set[i]) p->v[i] = e->value[i];
}

/* Reads a whole tuning file (at most 1 MiB). */
static clxent_status read_text(const char *path, char **text, char *err,
                               size_t err_size) {
    *text = NULL;
    /* non-blocking: a FIFO would wait for a writer before fstat says so */
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        fail(err, err_size, "CLXENT_TUNING_FILE: cannot open \"%s\": %s", path,
             strerror(errno));
        if (fd >= 0) close(fd);
        return CLXENT_STATUS_IO_ERROR;
    }
    FILE *f = S_ISREG(sb.st_mode) ? fdopen(fd, "rb") : NULL;
    if (!f) {
        fail(err, err_size, "CLXENT_TUNING_FILE: \"%s\" is not a regular "
             "file", path);
        close(fd);
        return CLXENT_STATUS_IO_ERROR;
    }
    size_t cap = 1 << 20;
    char *buf = malloc(cap + 1);
    size_t n = buf ? fread(buf, 1, cap + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!buf) {
        fail(err, err_size, "out of host memory reading \"%s\"", path);
        return CLXENT_STATUS_OUT_OF_MEMORY;
    }
    if (bad || n > cap) {
        free(buf);
        fail(err, err_size, "CLXENT_TUNING_FILE: \"%s\": %s", path,
             bad ? "read error" : "larger than 1 MiB");
        return CLXENT_STATUS_IO_ERROR;
    }
    buf[n] = '\0';
    if (strlen(buf) != n) {
        free(buf);
        fail(err, err_size, "%s: not a text file (a NUL byte)", path);
        return CLXENT_STATUS_INVALID_ARGUMENT;
    }
    *text = buf;
    return CLXENT_STATUS_OK;
}

/* Applies every database entry that matches k, the least specific first
 * (a driver's entry, then a device's), to p; source gets "db:a+b". */
static clxent_status apply_db(const clx_device_key *k, clx_params *p,
                              char *source, size_t source_size, char *err,
                              size_t err_size) {
    for (int score = 1; score <= 5; ++score)
        for (size_t i = 0; i < clx_tuning_db_count; ++i) {
            clx_tuning_entry e;
            char path[160];
            snprintf(path, sizeof path, "host/tuning/%s (embedded)",
                     clx_tuning_db[i].name);
            if (clx_tuning_parse(clx_tuning_db[i].text, path, &e, err,
                                 err_size))
                return CLXENT_STATUS_INVALID_ARGUMENT;
            if (clx_tuning_match(&e, k) != score) continue;
            apply(p, &e);
            if (strncmp(source, "db:", 3) != 0)
                snprintf(source, source_size, "db:%s", e.name);
            else
                clx_appendf(source, source_size, "+%s", e.name);
        }
    return CLXENT_STATUS_OK;
}

clxent_status clx_tuning_baseline(const clx_device_key *k, clx_params *out,
                                  char *source, size_t source_size,
                                  char *err, size_t err_size) {
    clx_params_defaults(out, k->gpu);
    snprintf(source, source_size, "defaults (%s)", k->gpu ? "gpu" : "cpu");
    return apply_db(k, out, source, source_size, err, err_size);
}

/* The experiment variables, applied last (README, "Environment"). */
static clxent_status apply_env(clx_params *p, clx_env_fn env, char *source,
                               size_t source_size, char *err,
                               size_t err_size) {
    static const struct {
        const char *var;
        int id; /* -1: an on/off switch handled below */
    } direct[] = {
        {"CLXENT_VEC", CLX_P_vec},
        {"CLXENT_KT", CLX_P_kt},
        {"CLXENT_WORK_GROUP_SIZE", CLX_P_group_size},
        {"CLXENT_SPLIT_CHUNKS", CLX_P_split_chunks},
        {"CLXENT_REDUCE_GROUPS", CLX_P_reduce_groups},
        {"CLXENT_GPU_CACHE_CK", CLX_P_regs_ck},
        {"CLXENT_GPU_CACHE", -1},
        {"CLXENT_GCACHE", -1},
        {"CLXENT_BATCH", -1},
    };
    for (size_t i = 0; i < sizeof direct / sizeof *direct; ++i) {
        const char *text = env(direct[i].var);
        if (!text || !*text) continue;
        int64_t v;
        int id = direct[i].id;
        if (!parse_int(text, &v) || v < 0 ||
            (id < 0 ? v > 1 : v == 0 && id != CLX_P_regs_ck)) {
            fail(err, err_size, "%s=%s: expected %s", direct[i].var, text,
                 id < 0 ? "0 (off) or 1 (on)" : "a positive whole number");
            return CLXENT_STATUS_INVALID_ARGUMENT;
        }
        if (id == CLX_P_group_size) { /* any size: the power of two below */
            int64_t g = 1;
            while (g * 2 <= v && g < 1024) g *= 2;
            v = g;
        }
        const char *bad = id >= 0 ? clx_param_check(id, v) : NULL;
        if (bad) {
            fail(err, err_size, "%s=%s: %s (%s)", direct[i].var, text, bad,
                 clx_param_infos[id].meaning);
            return CLXENT_STATUS_INVALID_ARGUMENT;
        }
        if (id >= 0) {
            p->v[id] = v;
        } else if (strcmp(direct[i].var, "CLXENT_GPU_CACHE") == 0) {
            CLX_P(p, regs) = v ? 2 : 0;
        } else if (strcmp(direct[i].var, "CLXENT_GCACHE") == 0) {
            CLX_P(p, cached_rows) = v ? 2 : 0;
        } else if (v) { /* CLXENT_BATCH=1: any C */
            CLX_P(p, batch_cmin) = CLX_P(p, batch_softmax_cmin) = 0;
            CLX_P(p, batch_bf16_cmin) = CLX_P(p, batch_f16_cmin) = 0;
            CLX_P(p, batch_cmax) = clx_param_infos[CLX_P_batch_cmax].hi;
        } else {
            CLX_P(p, batch_cmax) = 0;
        }
        clx_appendf(source, source_size, " +%s=%s", direct[i].var, text);
    }
    return CLXENT_STATUS_OK;
}

clxent_status clx_tuning_resolve(const clx_device_key *k, clx_env_fn env,
                                 clx_params *out, char *source,
                                 size_t source_size, char *err,
                                 size_t err_size) {
    clxent_status st =
        clx_tuning_baseline(k, out, source, source_size, err, err_size);
    if (st != CLXENT_STATUS_OK) return st;
    clx_tuning_entry e;
    const char *path = env("CLXENT_TUNING_FILE");
    if (path && *path) {
        char *text = NULL;
        st = read_text(path, &text, err, err_size);
        if (st != CLXENT_STATUS_OK) return st;
        int bad = clx_tuning_parse(text, path, &e, err, err_size);
        free(text);
        if (bad) return CLXENT_STATUS_INVALID_ARGUMENT;
        if (clx_tuning_match(&e, k) < 0) {
            /* a file for another device: said in the source, not applied */
            clx_appendf(source, source_size,
                   " (CLXENT_TUNING_FILE %s is for another device: not "
                   "applied)",
                   path);
        } else {
            apply(out, &e);
            snprintf(source, source_size, "%s", path);
        }
    }
    return apply_env(out, env, source, source_size, err, err_size);
}
