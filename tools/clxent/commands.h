/* The clxent subcommands and the small helpers they share (cli.c).
 * Every command takes argv[0] = its own name and returns the process exit
 * status: 0 success, 1 runtime error (reason on stderr), 2 usage error. */
#ifndef CLXENT_TOOL_COMMANDS_H
#define CLXENT_TOOL_COMMANDS_H

#include <clxent/clxent.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

int clxent_cmd_devices(int argc, char **argv);
int clxent_cmd_demo(int argc, char **argv);
int clxent_cmd_run(int argc, char **argv);
int clxent_cmd_check(int argc, char **argv);
int clxent_cmd_bench(int argc, char **argv);
int clxent_cmd_tune(int argc, char **argv);

#define CLI_OK 0
#define CLI_RUNTIME 1
#define CLI_USAGE 2

/* If argv[*i] is `name` or `name=VALUE`, sets *value (taking the next
 * argument in the first form) and returns 1; returns 0 for any other
 * argument and CLI_USAGE (after a message) when the value is missing. */
int cli_option(const char *cmd, int argc, char **argv, int *i,
               const char *name, const char **value);
/* 1 when argv[i] is --help or -h. */
int cli_is_help(const char *arg);
/* Prints "clxent CMD: message" and the --help hint; returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prints "clxent CMD: message" on stderr; returns CLI_RUNTIME. */
int cli_fail(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* As cli_fail, appending the status name and the context's message. */
int cli_fail_status(const char *cmd, const clxent_context *ctx,
                    clxent_status status, const char *what);

/* Number parsers: 0 on success, else CLI_USAGE after naming the flag. */
int cli_parse_size(const char *cmd, const char *flag, const char *text,
                   size_t *out);
int cli_parse_int64(const char *cmd, const char *flag, const char *text,
                    int64_t *out);
int cli_parse_float(const char *cmd, const char *flag, const char *text,
                    float *out);
/* "f32" | "f16" | "bf16". */
int cli_parse_dtype(const char *cmd, const char *flag, const char *text,
                    clxent_dtype *out);
/* Whether v, a double, rounds to a finite float (non-finite v: yes, it
 * stays what it is). */
int cli_fits_f32(double v);
/* "NxC[,NxC...]" into at most capacity pairs, each within the library's
 * limits (cli_shape_fits). */
int cli_parse_shapes(const char *cmd, const char *flag, const char *text,
                     size_t *rows, size_t *cols, size_t capacity,
                     size_t *count);

/* The library's limit on rows and on classes (host/src/api/validate.c). */
#define CLI_MAX_DIM ((size_t)INT32_MAX)
/* 1 when an outer x classes x inner shape has at most CLI_MAX_DIM rows
 * (outer x inner) and classes, and its float32 values' bytes fit size_t:
 * then every buffer the commands allocate for it can be sized. */
int cli_shape_fits(size_t outer, size_t classes, size_t inner);
/* 0 when path can be written (an existing file, or a new one in an
 * existing directory), else CLI_RUNTIME after a message naming flag:
 * checked before a long run whose result would be lost. */
int cli_check_writable(const char *cmd, const char *flag, const char *path);

/* Creates a context for spec (NULL: CLXENT_DEVICE or the default rule);
 * 0, or CLI_RUNTIME after printing the library's message. */
int cli_open_context(const char *cmd, const char *spec, clxent_context **ctx);
/* The device context for spec, the host reference context and the
 * device's description, as check and demo compare the two. 0, or
 * CLI_RUNTIME with nothing left open. */
int cli_open_pair(const char *cmd, const char *spec, clxent_context **dev,
                  clxent_context **host, clxent_device_info *info);

/* One device as a JSON object on f (cmd_devices.c; also used by bench). */
void cli_device_json(FILE *f, const clxent_device_info *d);

/* Writes s as a JSON string literal (quotes and escapes included). */
void cli_json_string(FILE *f, const char *s);

/* Storage types, through the library's own conversions (the one path the
 * command and the tests use): element i of a dtype array as f32 and back
 * (16-bit types as uint16_t bits). */
void cli_store(void *base, size_t i, clxent_dtype dtype, float value);
float cli_load(const void *base, size_t i, clxent_dtype dtype);
/* Whole arrays of n values; malloc'd, NULL when out of memory. */
void *cli_from_f32(const float *values, size_t n, clxent_dtype dtype);
float *cli_to_f32(const void *values, size_t n, clxent_dtype dtype);

/* Deterministic random numbers (xorshift64*), shared with the tests so
 * that `clxent check` and they draw from one generator. */
typedef struct cli_rng { uint64_t s; } cli_rng;
cli_rng cli_rng_seed(uint64_t seed);
uint64_t cli_rng_next(cli_rng *rng);
double cli_rng_uniform(cli_rng *rng, double lo, double hi); /* [lo, hi) */

#endif
