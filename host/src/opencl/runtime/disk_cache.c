/* The disk cache of compiled programs (as CLBlast's binary cache): a
 * program's binary, after a build from source, stored in the folder the
 * context chose at creation ($CLXENT_CACHE_DIR, else
 * $XDG_CACHE_HOME/clxent, else ~/.cache/clxent; none with CLXENT_CACHE=0),
 * under a name hashed from its identity: the source as built (includes
 * resolved), the build options, the platform and device names, the
 * driver version and clxent's version. The identity is also written into
 * the entry and compared on load, so a hash collision is a miss, never a
 * wrong program. Writes go to a temporary file renamed into place: a
 * reader never sees half an entry, whatever other processes or a crash
 * do. Nothing here is an error to the caller: a folder that cannot be
 * written, or an entry that is corrupt, only means a build from source. */
#define _POSIX_C_SOURCE 200809L /* mkdir, getpid */
#include "opencl/runtime/runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define ENTRY_MAGIC "CLXENT-PROGRAM 1\n"
#define ENTRY_MAX ((size_t)256 << 20) /* larger files are not ours */

/* 64-bit FNV-1a with a seed folded in, finished by a 64-bit mixer: two
 * seeds give the 128 bits of an entry's name. */
static uint64_t hash64(const void *data, size_t n, uint64_t seed) {
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull ^ (seed * 0x9e3779b97f4a7c15ull);
    for (size_t i = 0; i < n; ++i) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

char *clx_disk_cache_identity(const clx_opencl_state *s,
                              const char *options, const char *source) {
    size_t len = strlen(source);
    uint64_t a = hash64(source, len, 1), b = hash64(source, len, 2);
    const char *fmt = "clxent %s\nplatform %s\ndevice %s\ndriver %s\n"
                      "options %s\nsource %016llx%016llx %zu\n";
    int n = snprintf(NULL, 0, fmt, CLXENT_VERSION_STRING, s->platform_name,
                     s->device_name, s->driver, options,
                     (unsigned long long)a, (unsigned long long)b, len);
    char *id = n > 0 ? malloc((size_t)n + 1) : NULL;
    if (id)
        snprintf(id, (size_t)n + 1, fmt, CLXENT_VERSION_STRING,
                 s->platform_name, s->device_name, s->driver, options,
                 (unsigned long long)a, (unsigned long long)b, len);
    return id;
}

/* dir/<hash of identity>.bin (malloc'd). */
static char *entry_path(const char *dir, const char *identity) {
    size_t n = strlen(identity);
    unsigned long long a = hash64(identity, n, 3), b = hash64(identity, n, 4);
    size_t size = strlen(dir) + 48;
    char *path = malloc(size);
    if (path) snprintf(path, size, "%s/%016llx%016llx.bin", dir, a, b);
    return path;
}

static int read_u64(const unsigned char **p, const unsigned char *end,
                    uint64_t *v) {
    if ((size_t)(end - *p) < 8) return 0;
    memcpy(v, *p, 8);
    *p += 8;
    return 1;
}

int clx_disk_cache_load(const char *dir, const char *identity,
                        unsigned char **binary, size_t *size) {
    *binary = NULL;
    *size = 0;
    char *path = entry_path(dir, identity);
    /* a regular file only: opening a FIFO planted at the name would wait
     * for a writer forever */
    int fd = path ? open(path, O_RDONLY | O_NONBLOCK) : -1;
    free(path);
    struct stat sb;
    FILE *f = fd >= 0 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode)
                  ? fdopen(fd, "rb")
                  : NULL;
    if (!f && fd >= 0) close(fd);
    if (!f) return 0;
    unsigned char *buf = NULL;
    size_t n = 0;
    if (fseek(f, 0, SEEK_END) == 0) {
        long end = ftell(f);
        if (end > 0 && (size_t)end <= ENTRY_MAX && fseek(f, 0, SEEK_SET) == 0) {
            buf = malloc((size_t)end);
            n = buf ? fread(buf, 1, (size_t)end, f) : 0;
            if (n != (size_t)end) n = 0;
        }
    }
    fclose(f);
    /* magic, identity (length, bytes), binary (length, bytes, hash) */
    const unsigned char *p = buf, *end = buf + n;
    size_t magic = strlen(ENTRY_MAGIC), id_len = strlen(identity);
    uint64_t len = 0, bin_len = 0, check = 0;
    int ok = n > magic && memcmp(p, ENTRY_MAGIC, magic) == 0;
    if (ok) p += magic;
    ok = ok && read_u64(&p, end, &len) && len == id_len &&
         (size_t)(end - p) >= len && memcmp(p, identity, len) == 0;
    if (ok) p += len;
    /* the rest is the binary and its hash (subtracted, not added: a
     * stored length near 2^64 would wrap the sum) */
    ok = ok && read_u64(&p, end, &bin_len) && bin_len > 0 &&
         (size_t)(end - p) >= 8 && bin_len == (uint64_t)(end - p) - 8;
    if (ok) {
        memcpy(&check, p + bin_len, 8);
        ok = check == hash64(p, (size_t)bin_len, 5);
    }
    if (ok) {
        *binary = malloc((size_t)bin_len);
        ok = *binary != NULL;
        if (ok) {
            memcpy(*binary, p, (size_t)bin_len);
            *size = (size_t)bin_len;
        }
    }
    free(buf);
    return ok;
}

/* mkdir -p, 0700 for the folders it makes. */
static int make_dirs(const char *dir) {
    char *path = malloc(strlen(dir) + 1);
    if (!path) return 0;
    strcpy(path, dir);
    for (char *p = path + 1;; ++p) {
        if (*p != '/' && *p != '\0') continue;
        char c = *p;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            free(path);
            return 0;
        }
        *p = c;
        if (!c) break;
    }
    free(path);
    return 1;
}

void clx_disk_cache_store(const char *dir, const char *identity,
                          const unsigned char *binary, size_t size) {
    if (!make_dirs(dir)) return;
    char *path = entry_path(dir, identity);
    if (!path) return;
    /* with the pid: a name no other thread or process uses */
    static atomic_uint counter;
    size_t tsize = strlen(path) + 48;
    char *tmp = malloc(tsize);
    if (!tmp) {
        free(path);
        return;
    }
    snprintf(tmp, tsize, "%s.%ld.%u.tmp", path, (long)getpid(),
             atomic_fetch_add(&counter, 1u));
    FILE *f = fopen(tmp, "wb");
    int bad = !f;
    uint64_t id_len = strlen(identity), bin_len = size;
    uint64_t check = hash64(binary, size, 5);
    if (f) {
        bad |= fwrite(ENTRY_MAGIC, 1, strlen(ENTRY_MAGIC), f) !=
               strlen(ENTRY_MAGIC);
        bad |= fwrite(&id_len, 8, 1, f) != 1;
        bad |= fwrite(identity, 1, (size_t)id_len, f) != id_len;
        bad |= fwrite(&bin_len, 8, 1, f) != 1;
        bad |= fwrite(binary, 1, size, f) != size;
        bad |= fwrite(&check, 8, 1, f) != 1;
        bad |= fclose(f) != 0;
    }
    if (bad || rename(tmp, path) != 0) remove(tmp);
    free(tmp);
    free(path);
}
