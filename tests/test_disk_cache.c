/* The disk cache of compiled programs: a miss compiles and stores, a hit
 * builds nothing (the trace says so) and computes the same bits;
 * CLXENT_CACHE=0 writes nothing; a corrupt, truncated or rejected entry
 * is rebuilt from source and replaced; a folder that cannot be written is
 * no error; two processes filling one folder at once leave only whole
 * entries. */
#define _POSIX_C_SOURCE 200809L /* setenv, mkdtemp, truncate */
#include "fixtures.h"

#include "opencl/runtime/runtime.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

/* A context on the test device with the cache in `folder` (NULL: the
 * cache off). */
static clxent_context *open_ctx(const char *folder) {
    const char *spec = fx_device_spec();
    if (!spec) return NULL;
    if (folder) {
        unsetenv("CLXENT_CACHE");
        setenv("CLXENT_CACHE_DIR", folder, 1);
    } else {
        setenv("CLXENT_CACHE", "0", 1);
    }
    clxent_context *ctx = NULL;
    clxent_status st = clxent_context_create(spec, &ctx);
    unsetenv("CLXENT_CACHE");
    unsetenv("CLXENT_CACHE_DIR");
    fx_assert_status(ctx, st, CLXENT_STATUS_OK);
    /* on, whatever the driver's database entry says (PoCL's is off) */
    fx_assert_status(ctx, clxent_context_set_param(ctx, "disk_cache", 1),
                     CLXENT_STATUS_OK);
    return ctx;
}

/* A softmax of 4 x 37 on ctx (softmax.cl: one program); its output and
 * the trace's programs part. */
static void softmax_on(clxent_context *ctx, float *out, char *programs,
                       size_t size) {
    float x[4 * 37];
    for (int i = 0; i < 4 * 37; ++i) x[i] = (float)(i % 11) * 0.37f - 2.0f;
    clxent_buffer *bx = fx_upload(ctx, x, sizeof x);
    clxent_buffer *by = fx_upload(ctx, NULL, sizeof x);
    clxent_matrix mx = clxent_matrix_of(bx, 4, 37, CLXENT_F32);
    clxent_matrix my = clxent_matrix_of(by, 4, 37, CLXENT_F32);
    fx_assert_status(ctx, clxent_softmax(ctx, &mx, &my, NULL),
                     CLXENT_STATUS_OK);
    fx_assert_status(ctx, clxent_buffer_read(ctx, by, 0, sizeof x, out),
                     CLXENT_STATUS_OK);
    const char *t = strstr(clxent_context_last_trace(ctx), "[programs: ");
    snprintf(programs, size, "%s", t ? t : "");
    clxent_buffer_release(bx);
    clxent_buffer_release(by);
}

/* The number of files in folder ending in suffix. */
static int count(const char *folder, const char *suffix) {
    DIR *d = opendir(folder);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t a = strlen(e->d_name), b = strlen(suffix);
        n += a > b && strcmp(e->d_name + a - b, suffix) == 0;
    }
    closedir(d);
    return n;
}

/* Applies f to every entry file of folder. */
static void each_entry(const char *folder, void (*f)(const char *path)) {
    DIR *d = opendir(folder);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t a = strlen(e->d_name);
        if (a < 4 || strcmp(e->d_name + a - 4, ".bin") != 0) continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", folder, e->d_name);
        f(path);
    }
    closedir(d);
}

static void garble(const char *path) {
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 40, SEEK_SET);
    fputs("not what was stored", f);
    fclose(f);
}

static void truncate_half(const char *path) {
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size / 2), 0);
}

/* The entry's identity (malloc'd), read back from its header. */
static char *identity_of(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char magic[64];
    assert_non_null(fgets(magic, sizeof magic, f));
    uint64_t len = 0;
    assert_int_equal(fread(&len, 8, 1, f), 1);
    char *identity = malloc((size_t)len + 1);
    assert_int_equal(fread(identity, 1, (size_t)len, f), (size_t)len);
    identity[len] = '\0';
    fclose(f);
    return identity;
}

/* A well-formed entry under the same identity whose binary the driver
 * refuses. */
static void plant_rejected(const char *path) {
    char *identity = identity_of(path);
    static const unsigned char junk[] = "\x7f" "ELF not a program at all";
    clx_disk_cache_store(dir, identity, junk, sizeof junk);
    free(identity);
}

/* The same header, then a binary length of 2^64 - 1 and 7 bytes: the
 * length plus its hash's 8 wraps to what is left. */
static void huge_length(const char *path) {
    char *identity = identity_of(path);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint64_t len = strlen(identity), huge = UINT64_MAX;
    fputs("CLXENT-PROGRAM 1\n", f);
    fwrite(&len, 8, 1, f);
    fwrite(identity, 1, (size_t)len, f);
    fwrite(&huge, 8, 1, f);
    fputs("ABCDEFG", f);
    fclose(f);
    free(identity);
}

/* A FIFO with the entry's name: opening it to read would wait for a
 * writer forever. */
static void plant_fifo(const char *path) {
    assert_int_equal(remove(path), 0);
    assert_int_equal(mkfifo(path, 0600), 0);
}

static void expect(const char *programs, const char *how) {
    if (!strstr(programs, how))
        fail_msg("programs \"%s\" do not say \"%s\"", programs, how);
}

static void test_hit_miss_damage(void **state) {
    (void)state;
    if (!fx_device_spec()) return;
    snprintf(dir, sizeof dir, "/tmp/clxent_cache_XXXXXX");
    assert_non_null(mkdtemp(dir));
    float a[4 * 37], b[4 * 37];
    char programs[256];

    clxent_context *ctx = open_ctx(dir);
    softmax_on(ctx, a, programs, sizeof programs);
    expect(programs, "softmax.cl compiled");
    clxent_context_destroy(ctx);
    assert_true(count(dir, ".bin") >= 1);
    assert_int_equal(count(dir, ".tmp"), 0);

    ctx = open_ctx(dir); /* a hit: nothing compiled, the same bits */
    softmax_on(ctx, b, programs, sizeof programs);
    expect(programs, "softmax.cl from the disk cache");
    assert_memory_equal(a, b, sizeof a);
    clxent_context_destroy(ctx);

    void (*damage[])(const char *) = {garble, truncate_half, plant_rejected,
                                      huge_length, plant_fifo};
    for (int i = 0; i < 5; ++i) {
        each_entry(dir, damage[i]);
        ctx = open_ctx(dir); /* rebuilt from source, entry replaced */
        softmax_on(ctx, b, programs, sizeof programs);
        expect(programs, "softmax.cl compiled");
        assert_memory_equal(a, b, sizeof a);
        clxent_context_destroy(ctx);
        ctx = open_ctx(dir);
        softmax_on(ctx, b, programs, sizeof programs);
        expect(programs, "softmax.cl from the disk cache");
        clxent_context_destroy(ctx);
    }

    /* off: nothing read, nothing written */
    char off[128];
    snprintf(off, sizeof off, "%s/off", dir);
    setenv("CLXENT_CACHE_DIR", off, 1);
    ctx = open_ctx(NULL);
    softmax_on(ctx, b, programs, sizeof programs);
    expect(programs, "softmax.cl compiled");
    clxent_context_destroy(ctx);
    unsetenv("CLXENT_CACHE_DIR");
    struct stat st;
    assert_int_not_equal(stat(off, &st), 0);

    /* a value that is neither 0 nor 1 ("off") is refused, not taken as
     * on */
    const char *spec = fx_device_spec();
    setenv("CLXENT_CACHE", "off", 1);
    clxent_context *refused = NULL;
    assert_int_equal(clxent_context_create(spec, &refused),
                     CLXENT_STATUS_INVALID_ARGUMENT);
    if (!strstr(clxent_context_message(refused), "CLXENT_CACHE"))
        fail_msg("CLXENT_CACHE=off: %s", clxent_context_message(refused));
    clxent_context_destroy(refused);
    unsetenv("CLXENT_CACHE");

    /* a folder that cannot be made (a file is in the way): no error */
    char blocked[128];
    snprintf(blocked, sizeof blocked, "%s/file/cache", dir);
    char file[128];
    snprintf(file, sizeof file, "%s/file", dir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    ctx = open_ctx(blocked);
    softmax_on(ctx, b, programs, sizeof programs);
    expect(programs, "softmax.cl compiled");
    assert_memory_equal(a, b, sizeof a);
    clxent_context_destroy(ctx);
    char cleanup[160];
    snprintf(cleanup, sizeof cleanup, "rm -rf %s", dir);
    assert_int_equal(system(cleanup), 0);
}

/* Two processes (the command, started at once) fill one empty folder;
 * then every entry is whole (this process finds what it needs there) and
 * no temporary file is left. */
static void test_two_processes(void **state) {
    (void)state;
    const char *spec = fx_device_spec();
    if (!spec) return;
    snprintf(dir, sizeof dir, "/tmp/clxent_cache_XXXXXX");
    assert_non_null(mkdtemp(dir));
    char command[512];
    snprintf(command, sizeof command,
             "printf 'clxent-tuning 1\\nparam disk_cache 1\\n' > %s/on; "
             "for i in 1 2; do CLXENT_TUNING_FILE=%s/on CLXENT_CACHE_DIR=%s "
             "%s/clxent bench --device "
             "'%s' --shapes 64x1,64x300 --ops fused --repeat 1 --no-host "
             ">/dev/null & done; wait",
             dir, dir, dir, CLXENT_BINARY_DIR, spec);
    assert_int_equal(system(command), 0);
    assert_true(count(dir, ".bin") >= 2);
    assert_int_equal(count(dir, ".tmp"), 0);
    clxent_context *ctx = open_ctx(dir);
    float x[64 * 300], loss;
    int32_t y[64];
    for (int k = 0; k < 64 * 300; ++k) x[k] = (float)(k % 13);
    for (int r = 0; r < 64; ++r) y[r] = 0;
    static float grad[64 * 300];
    for (size_t c = 1; c <= 300; c += 299) {
        fx_assert_status(ctx,
                         clxent_cross_entropy_host(ctx, 64, c, CLXENT_F32, x,
                                                   CLXENT_I32, y, NULL, NULL,
                                                   &loss, NULL, grad),
                         CLXENT_STATUS_OK);
        const char *t = clxent_context_last_trace(ctx);
        if (strstr(t, "compiled"))
            fail_msg("a program was compiled again: %s", t);
    }
    clxent_context_destroy(ctx);
    char cleanup[160];
    snprintf(cleanup, sizeof cleanup, "rm -rf %s", dir);
    assert_int_equal(system(cleanup), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_miss_damage),
        cmocka_unit_test(test_two_processes),
    };
    return cmocka_run_group_tests(tests, NULL, fx_group_teardown);
}
