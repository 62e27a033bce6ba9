/* Tuning files and their resolution into a context's parameters. The
 * format (docs/tuning.md) is line-based text, versioned by its first line:
 *
 *   clxent-tuning 1
 *   name pocl-cpu-haswell          the entry's name (trace, errors)
 *   match.platform Portable        case-insensitive substrings of the
 *   match.vendor Intel             device's platform name, vendor and
 *   match.device haswell           device name; match.driver a prefix of
 *   match.driver 3.1               the driver version; match.class cpu|gpu
 *   note free text                 how it was measured (kept, not used)
 *   param lanes_cmax 120           a parameter of params.h
 *
 * '#' starts a comment line. An unknown key or parameter, a value out of
 * range, a repeated key or a missing version line is an error naming the
 * file and line: a tuning file is never half applied. */
#ifndef CLXENT_OPENCL_TUNING_H
#define CLXENT_OPENCL_TUNING_H

#include "params.h"

#include <clxent/clxent.h>

#include <stdio.h>

#define CLX_TUNING_VERSION 1

/* What identifies a device to the database. */
typedef struct clx_device_key {
    const char *platform, *vendor, *name, *driver;
    int gpu;
} clx_device_key;

/* One parsed tuning file. */
typedef struct clx_tuning_entry {
    char name[96];
    char platform[128], vendor[128], device[128], driver[64];
    int cls; /* -1 any, 0 cpu, 1 gpu */
    char note[256];
    unsigned char set[CLX_PARAM_COUNT];
    int64_t value[CLX_PARAM_COUNT];
} clx_tuning_entry;

/* Parses text (the file's content; `path` names it in messages). 0, or
 * -1 with "path:line: reason" in err. */
int clx_tuning_parse(const char *text, const char *path, clx_tuning_entry *e,
                     char *err, size_t err_size);
/* How specifically e matches the device: -1 not at all, else the number of
 * match keys it has (all of which match). */
int clx_tuning_match(const clx_tuning_entry *e, const clx_device_key *k);
/* Whether name and note (either may be NULL) can be written as a tuning
 * file gives them back: nonzero, with the reason in err, for a control
 * character (a newline would add lines) or a value longer than its
 * field. */
int clx_tuning_check_text(const char *name, const char *note, char *err,
                          size_t err_size);
/* Writes p as a tuning file for the device k: the parameters that differ
 * from baseline (what the device resolves without a file), so the file
 * read back over the database gives p. */
int clx_tuning_write(FILE *f, const char *name, const clx_device_key *k,
                     const char *note, const clx_params *p,
                     const clx_params *baseline);

/* The embedded database (the .tuning files of host/tuning, generated at
 * build time). */
typedef struct clx_tuning_db_file {
    const char *name; /* file name */
    const char *text;
} clx_tuning_db_file;
extern const clx_tuning_db_file clx_tuning_db[];
extern const size_t clx_tuning_db_count;

/* Environment lookups go through this, so tests can give their own. */
typedef const char *(*clx_env_fn)(const char *name);

/* The class defaults of device k with every matching database entry on
 * top, the least specific first (a driver's, then a device's). */
clxent_status clx_tuning_baseline(const clx_device_key *k, clx_params *out,
                                  char *source, size_t source_size,
                                  char *err, size_t err_size);
/* Resolves the parameters of device k: the baseline, the tuning file
 * named by CLXENT_TUNING_FILE, then the experiment variables (CLXENT_VEC,
 * CLXENT_KT, ...). source gets what applied ("db:NAME+NAME", the file's
 * path, "+CLXENT_VEC=16"). On an error (a corrupt database entry or
 * tuning file, a bad variable): the status and the reason in err. */
clxent_status clx_tuning_resolve(const clx_device_key *k, clx_env_fn env,
                                 clx_params *out, char *source,
                                 size_t source_size, char *err,
                                 size_t err_size);

#endif /* CLXENT_OPENCL_TUNING_H */
