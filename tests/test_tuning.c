/* Per-context tuning (docs/tuning.md): the tuning file format (errors name
 * the file and line, a wrong version is refused), database matching, the
 * order a context resolves its parameters in (class defaults, database,
 * CLXENT_TUNING_FILE, experiment variables), the public calls that read,
 * set, reset and save them, and the trace: a parameter a file changes
 * changes the kernel the trace names. */
#define _POSIX_C_SOURCE 200809L /* setenv, mkstemp */
#include "fixtures.h"

#include "opencl/tuning/tuning.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the format ---- */

static const char good[] = "# a comment\n"
                           "clxent-tuning 1\n"
                           "name test-entry\n"
                           "match.platform Portable Computing\n"
                           "match.class cpu\n"
                           "note measured by hand\n"
                           "\n"
                           "param lanes_cmax 64\n"
                           "param vec 8\r\n";

static void test_parse(void **state) {
    (void)state;
    clx_tuning_entry e;
    char err[512];
    assert_int_equal(clx_tuning_parse(good, "good.tuning", &e, err, sizeof err),
                     0);
    assert_string_equal(e.name, "test-entry");
    assert_string_equal(e.platform, "Portable Computing");
    assert_int_equal(e.cls, 0);
    assert_string_equal(e.note, "measured by hand");
    assert_true(e.set[CLX_P_lanes_cmax] && e.value[CLX_P_lanes_cmax] == 64);
    assert_true(e.set[CLX_P_vec] && e.value[CLX_P_vec] == 8);
    assert_false(e.set[CLX_P_kt]);
    /* no name: the file's */
    assert_int_equal(clx_tuning_parse("clxent-tuning 1\n", "dir/x.tuning", &e,
                                      err, sizeof err),
                     0);
    assert_string_equal(e.name, "x.tuning");
}

static void test_parse_errors(void **state) {
    (void)state;
    static const struct {
        const char *text, *where, *what;
    } bad[] = {
        {"", "f:1", "no version line"},
        {"param vec 8\n", "f:1", "expected the version line"},
        {"clxent-tuning 2\n", "f:1", "version \"2\" is not supported"},
        {"# c\nclxent-tuning one\n", "f:2", "is not supported"},
        {"clxent-tuning 1\nparam vec 3\n", "f:2", "must be 1, 4, 8 or 16"},
        {"clxent-tuning 1\n\nparam kt 3\n", "f:3", "power of two"},
        {"clxent-tuning 1\nparam lanes_cmax 129\n", "f:2", "out of range"},
        {"clxent-tuning 1\nparam nosuch 1\n", "f:2", "unknown parameter"},
        {"clxent-tuning 1\nparam vec 8x\n", "f:2", "not a whole number"},
        {"clxent-tuning 1\nparam vec\n", "f:2", "not a whole number"},
        {"clxent-tuning 1\nparam vec 8\nparam vec 4\n", "f:3", "set twice"},
        {"clxent-tuning 1\nname a\nname b\n", "f:3", "given twice"},
        {"clxent-tuning 1\nmatch.class tpu\n", "f:2", "not cpu or gpu"},
        {"clxent-tuning 1\nmatch.device\n", "f:2", "has no value"},
        {"clxent-tuning 1\nweight 3\n", "f:2", "unknown key"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; ++i) {
        clx_tuning_entry e;
        char err[512] = "";
        if (clx_tuning_parse(bad[i].text, "f", &e, err, sizeof err) == 0)
            fail_msg("case %zu parsed: %s", i, bad[i].text);
        assert_contains(err, bad[i].where);
        assert_contains(err, bad[i].what);
    }
    /* a line too long for the reader is an error, not a truncation */
    char longline[700] = "clxent-tuning 1\nnote ";
    memset(longline + strlen(longline), 'x', 600);
    longline[sizeof longline - 1] = '\0';
    clx_tuning_entry e;
    char err[512];
    assert_int_equal(clx_tuning_parse(longline, "f", &e, err, sizeof err), -1);
    assert_contains(err, "f:2: line longer");
}

static void test_match(void **state) {
    (void)state;
    clx_device_key cpu = {"Portable Computing Language", "AuthenticAMD",
                          "cpu-haswell-AMD EPYC", "3.1+debian", 0};
    clx_tuning_entry e;
    char err[256];
    assert_int_equal(clx_tuning_parse("clxent-tuning 1\n", "f", &e, err,
                                      sizeof err),
                     0);
    assert_int_equal(clx_tuning_match(&e, &cpu), 0);
    clx_tuning_parse("clxent-tuning 1\nmatch.platform portable\n"
                     "match.device EPYC\nmatch.driver 3.1\nmatch.class cpu\n",
                     "f", &e, err, sizeof err);
    assert_int_equal(clx_tuning_match(&e, &cpu), 4);
    clx_tuning_parse("clxent-tuning 1\nmatch.driver 3.2\n", "f", &e, err,
                     sizeof err);
    assert_int_equal(clx_tuning_match(&e, &cpu), -1);
    clx_tuning_parse("clxent-tuning 1\nmatch.class gpu\n", "f", &e, err,
                     sizeof err);
    assert_int_equal(clx_tuning_match(&e, &cpu), -1);
    /* the embedded database parses, and every entry says what it is for */
    for (size_t i = 0; i < clx_tuning_db_count; ++i) {
        assert_int_equal(clx_tuning_parse(clx_tuning_db[i].text,
                                          clx_tuning_db[i].name, &e, err,
                                          sizeof err),
                         0);
        assert_true(e.platform[0] || e.vendor[0] || e.device[0]);
    }
}

/* ---- resolution, with a made-up environment ---- */

static const char *env_vals[8][2];

static const char *fake_env(const char *name) {
    for (int i = 0; i < 8 && env_vals[i][0]; ++i)
        if (strcmp(env_vals[i][0], name) == 0) return env_vals[i][1];
    return NULL;
}

static void set_fake_env(const char *a, const char *av, const char *b,
                         const char *bv) {
    memset(env_vals, 0, sizeof env_vals);
    env_vals[0][0] = a;
    env_vals[0][1] = av;
    env_vals[1][0] = b;
    env_vals[1][1] = bv;
}

static char *write_file(const char *text) {
    char *path = strdup("/tmp/clxent_tuning_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_resolve(void **state) {
    (void)state;
    /* a device no database entry names: the class defaults */
    clx_device_key gpu = {"Nobody's OpenCL", "Nobody", "gpu-0", "1.0", 1};
    clx_params p;
    char source[256], err[512];
    set_fake_env(NULL, NULL, NULL, NULL);
    assert_int_equal(clx_tuning_resolve(&gpu, fake_env, &p, source,
                                        sizeof source, err, sizeof err),
                     CLXENT_STATUS_OK);
    assert_string_equal(source, "defaults (gpu)");
    assert_int_equal(CLX_P(&p, vec), 1);
    assert_int_equal(CLX_P(&p, batch_cmax), 0);
    /* the user's file, then the variables on top */
    char *path = write_file("clxent-tuning 1\nmatch.class gpu\n"
                            "param row_group 64\nparam vec 4\n");
    set_fake_env("CLXENT_TUNING_FILE", path, "CLXENT_VEC", "16");
    assert_int_equal(clx_tuning_resolve(&gpu, fake_env, &p, source,
                                        sizeof source, err, sizeof err),
                     CLXENT_STATUS_OK);
    assert_int_equal(CLX_P(&p, row_group), 64);
    assert_int_equal(CLX_P(&p, vec), 16);
    assert_contains(source, path);
    assert_contains(source, "+CLXENT_VEC=16");
    /* a file for another class is not applied, and the source says so */
    clx_device_key cpu = gpu;
    cpu.gpu = 0;
    set_fake_env("CLXENT_TUNING_FILE", path, NULL, NULL);
    assert_int_equal(clx_tuning_resolve(&cpu, fake_env, &p, source,
                                        sizeof source, err, sizeof err),
                     CLXENT_STATUS_OK);
    assert_int_equal(CLX_P(&p, row_group), 16);
    assert_contains(source, "for another device: not applied");
    unlink(path);
    free(path);
    /* the on/off variables */
    set_fake_env("CLXENT_BATCH", "1", "CLXENT_GCACHE", "0");
    assert_int_equal(clx_tuning_resolve(&cpu, fake_env, &p, source,
                                        sizeof source, err, sizeof err),
                     CLXENT_STATUS_OK);
    assert_int_equal(CLX_P(&p, batch_cmin), 0);
    assert_int_equal(CLX_P(&p, batch_f16_cmin), 0);
    assert_true(CLX_P(&p, batch_cmax) >= 1 << 20);
    assert_int_equal(CLX_P(&p, cached_rows), 0);
    /* bad values are errors naming the variable */
    static const char *const bad[][2] = {{"CLXENT_VEC", "3"},
                                         {"CLXENT_KT", "x"},
                                         {"CLXENT_BATCH", "2"},
                                         {"CLXENT_SPLIT_CHUNKS", "999"},
                                         {"CLXENT_TUNING_FILE", "/no/such"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; ++i) {
        set_fake_env(bad[i][0], bad[i][1], NULL, NULL);
        assert_int_not_equal(clx_tuning_resolve(&cpu, fake_env, &p, source,
                                                sizeof source, err,
                                                sizeof err),
                             CLXENT_STATUS_OK);
        assert_contains(err, bad[i][0]);
    }
}

/* ---- contexts ---- */

/* A context on the test device created with CLXENT_TUNING_FILE = path
 * (NULL: unset); *st gets the status. */
static clxent_context *with_file(const char *path, clxent_status *st) {
    const char *spec = fx_device_spec();
    if (!spec) return NULL;
    if (path)
        setenv("CLXENT_TUNING_FILE", path, 1);
    else
        unsetenv("CLXENT_TUNING_FILE");
    clxent_context *ctx = NULL;
    *st = clxent_context_create(spec, &ctx);
    unsetenv("CLXENT_TUNING_FILE");
    return ctx;
}

/* A fused 64 x 10 loss on ctx; returns the trace of the call. */
static const char *fused_trace(clxent_context *ctx) {
    float x[64 * 10];
    int32_t y[64];
    for (int i = 0; i < 64 * 10; ++i) x[i] = (float)(i % 7) - 3.0f;
    for (int r = 0; r < 64; ++r) y[r] = r % 10;
    float loss, grad[64 * 10];
    fx_assert_status(ctx,
                     clxent_cross_entropy_host(ctx, 64, 10, CLXENT_F32, x,
                                               CLXENT_I32, y, NULL, NULL,
                                               &loss, NULL, grad),
                     CLXENT_STATUS_OK);
    return clxent_context_last_trace(ctx);
}

static void test_context_files(void **state) {
    (void)state;
    clxent_status st;
    clxent_context *ctx = with_file(NULL, &st);
    if (!ctx) return;
    fx_assert_status(ctx, st, CLXENT_STATUS_OK);
    char before[1024];
    snprintf(before, sizeof before, "%s", fused_trace(ctx));
    assert_contains(before, "clxent: cross_entropy");
    assert_contains(before, "64x10 f32 -> ");
    assert_contains(before, "[tuning: ");
    long long vec = 0;
    fx_assert_status(ctx, clxent_context_get_param(ctx, "vec", &vec),
                     CLXENT_STATUS_OK);
    /* PoCL: the driver's database entry first, a device's on top */
    clxent_device_info info;
    fx_assert_status(ctx, clxent_context_info(ctx, &info), CLXENT_STATUS_OK);
    if (strstr(info.platform, "Portable Computing Language")) {
        long long disk = 1;
        assert_contains(clxent_context_tuning(ctx), "db:pocl");
        fx_assert_status(ctx, clxent_context_get_param(ctx, "disk_cache",
                                                       &disk),
                         CLXENT_STATUS_OK);
        assert_int_equal(disk, 0);
    }
    clxent_context_destroy(ctx);

    /* a file that closes the lanes kernels changes the kernel the trace
     * shows (the CPU mapping: the lanes kernels are its default here) */
    char *path = write_file("clxent-tuning 1\nparam lanes_xent_cmax 0\n"
                            "param batch_cmax 0\n");
    ctx = with_file(path, &st);
    fx_assert_status(ctx, st, CLXENT_STATUS_OK);
    const char *after = fused_trace(ctx);
    assert_contains(after, path);
    if (vec > 1) {
        assert_contains(before, "xent_lanes_fused");
        assert_true(strstr(after, "xent_lanes_fused") == NULL);
    }
    assert_contains(clxent_context_tuning(ctx), path);
    clxent_context_destroy(ctx);
    unlink(path);
    free(path);

    /* corrupt and wrong-version files fail the creation, naming the file
     * and the line */
    static const char *const bad[] = {"clxent-tuning 1\nparam vec 5\n",
                                      "clxent-tuning 9\nparam vec 4\n"};
    for (int i = 0; i < 2; ++i) {
        path = write_file(bad[i]);
        ctx = with_file(path, &st);
        assert_int_equal(st, CLXENT_STATUS_INVALID_ARGUMENT);
        char where[300];
        snprintf(where, sizeof where, "%s:%d", path, i == 0 ? 2 : 1);
        assert_contains(clxent_context_message(ctx), where);
        assert_contains(clxent_context_message(ctx), "clxent_context_create");
        clxent_context_destroy(ctx);
        unlink(path);
        free(path);
    }
    path = strdup("/tmp/clxent_no_such_tuning_file");
    unlink(path); /* what a killed run may have left */
    ctx = with_file(path, &st);
    assert_int_equal(st, CLXENT_STATUS_IO_ERROR);
    assert_contains(clxent_context_message(ctx), path);
    clxent_context_destroy(ctx);
    /* a FIFO: refused at once, where reading it waited for a writer */
    assert_int_equal(mkfifo(path, 0600), 0);
    ctx = with_file(path, &st);
    assert_int_equal(st, CLXENT_STATUS_IO_ERROR);
    assert_contains(clxent_context_message(ctx), "not a regular file");
    clxent_context_destroy(ctx);
    unlink(path);
    free(path);
}

/* A file's bytes (at most size). */
static size_t read_text(const char *path, char *buf, size_t size) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, size, f);
    fclose(f);
    return n;
}

static void test_set_get_save(void **state) {
    (void)state;
    clxent_status st;
    clxent_context *ctx = with_file(NULL, &st);
    if (!ctx) return;
    long long v = 0, lanes = 0;
    fx_assert_status(ctx, clxent_context_get_param(ctx, "lanes_cmax", &lanes),
                     CLXENT_STATUS_OK);
    fx_assert_status(ctx, clxent_context_set_param(ctx, "lanes_cmax", 7),
                     CLXENT_STATUS_OK);
    fx_assert_status(ctx, clxent_context_get_param(ctx, "lanes_cmax", &v),
                     CLXENT_STATUS_OK);
    assert_int_equal(v, 7);
    assert_contains(clxent_context_tuning(ctx), "+set");
    /* refused: no such name, out of range; nothing changes */
    fx_assert_status(ctx, clxent_context_set_param(ctx, "nosuch", 1),
                     CLXENT_STATUS_INVALID_ARGUMENT);
    assert_contains(clxent_context_message(ctx), "nosuch");
    fx_assert_status(ctx, clxent_context_set_param(ctx, "lanes_cmax", 500),
                     CLXENT_STATUS_INVALID_ARGUMENT);
    assert_contains(clxent_context_message(ctx), "lanes_cmax = 500");
    fx_assert_status(ctx, clxent_context_set_param(ctx, NULL, 1),
                     CLXENT_STATUS_NULL_POINTER);
    fx_assert_status(ctx, clxent_context_get_param(ctx, "lanes_cmax", &v),
                     CLXENT_STATUS_OK);
    assert_int_equal(v, 7);
    /* saved and loaded back: the same parameters */
    char *path = write_file("");
    fx_assert_status(ctx,
                     clxent_context_save_tuning(ctx, path, "roundtrip",
                                                "by test_tuning"),
                     CLXENT_STATUS_OK);
    clxent_context *again = with_file(path, &st);
    fx_assert_status(again, st, CLXENT_STATUS_OK);
    const char *name;
    for (size_t i = 0; (name = clxent_param_name(i, NULL)); ++i) {
        long long a = -1, b = -2;
        fx_assert_status(ctx, clxent_context_get_param(ctx, name, &a),
                         CLXENT_STATUS_OK);
        fx_assert_status(again, clxent_context_get_param(again, name, &b),
                         CLXENT_STATUS_OK);
        if (a != b) fail_msg("%s: %lld saved, %lld loaded", name, a, b);
    }
    clxent_context_destroy(again);
    /* a name or note the file could not give back: refused, the file as
     * it was (a newline would have added "param vec 4" to it) */
    char long_note[300];
    memset(long_note, 'n', sizeof long_note - 1);
    long_note[sizeof long_note - 1] = '\0';
    const char *names[] = {"x\nparam vec 4", "roundtrip", "tab\there"};
    const char *notes[] = {NULL, long_note, NULL};
    char saved[4096], now[4096];
    size_t n_saved = read_text(path, saved, sizeof saved);
    for (int i = 0; i < 3; ++i) {
        fx_assert_status(ctx,
                         clxent_context_save_tuning(ctx, path, names[i],
                                                    notes[i]),
                         CLXENT_STATUS_INVALID_ARGUMENT);
        assert_contains(clxent_context_message(ctx), i == 1 ? "note" : "name");
    }
    assert_int_equal(read_text(path, now, sizeof now), n_saved);
    assert_memory_equal(now, saved, n_saved);
    unlink(path);
    free(path);
    /* reset: back to what was resolved */
    fx_assert_status(ctx, clxent_context_reset_params(ctx), CLXENT_STATUS_OK);
    fx_assert_status(ctx, clxent_context_get_param(ctx, "lanes_cmax", &v),
                     CLXENT_STATUS_OK);
    assert_int_equal(v, lanes);
    assert_true(strstr(clxent_context_tuning(ctx), "+set") == NULL);
    fx_assert_status(ctx,
                     clxent_context_save_tuning(ctx, "/no/such/dir/f", NULL,
                                                NULL),
                     CLXENT_STATUS_IO_ERROR);
    clxent_context_destroy(ctx);

    /* the host backend has no parameters */
    clxent_context *host = fx_host();
    fx_assert_status(host, clxent_context_set_param(host, "vec", 4),
                     CLXENT_STATUS_UNSUPPORTED);
    fx_assert_status(host, clxent_context_get_param(host, "vec", &v),
                     CLXENT_STATUS_UNSUPPORTED);
    assert_string_equal(clxent_context_tuning(host), "host");
    assert_null(clxent_param_name(1000, NULL));
    const char *meaning = NULL;
    assert_string_equal(clxent_param_name(0, &meaning), "vec");
    assert_non_null(meaning);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_context_files),
        cmocka_unit_test(test_set_get_save),
    };
    return cmocka_run_group_tests(tests, NULL, fx_group_teardown);
}
