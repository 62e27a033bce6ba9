/* clxent: the command-line front end. Each subcommand lives in its own
 * file (cmd_*.c) and is callable from the tests through commands.h. */
#include "commands.h"
#include "shard.h"

#include <stdio.h>
#include <string.h>

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"devices", clxent_cmd_devices, "list OpenCL devices and the host backend"},
    {"demo", clxent_cmd_demo, "walk through softmax cross-entropy step by step"},
    {"run", clxent_cmd_run, "cross-entropy loss and gradient on .npy files"},
    {"check", clxent_cmd_check, "compare a device against the host reference"},
    {"bench", clxent_cmd_bench, "measure throughput against copy bandwidth"},
    {"tune", clxent_cmd_tune, "measure the kernel choices, write a tuning file"},
};

static void usage(FILE *f) {
    fprintf(f,
            "Usage: clxent [--version] [--help] SUBCOMMAND [--help] ...\n\n"
            "Softmax cross-entropy loss and gradient on OpenCL devices.\n\n"
            "Subcommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\nEvery subcommand takes --device SPEC:\n"
            "  host        the built-in C reference backend\n"
            "  P:D         OpenCL platform P, device D (see 'clxent devices')\n"
            "  gpu|cpu|accelerator  the first OpenCL device of that type\n"
            "  TEXT        the first device whose platform or name contains "
            "TEXT\n"
            "  (unset)     $CLXENT_DEVICE, else the first GPU, else the first\n"
            "              OpenCL device, else host\n"
            "Exit status: 0 success, 1 runtime error, 2 usage error.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("clxent %s (library %s), %s\n", CLXENT_VERSION_STRING,
               clxent_version(),
               shard_available() ? "with MPI (--shard)" : "without MPI");
        return CLI_OK;
    }
    if (cli_is_help(argv[1])) {
        usage(stdout);
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "clxent: unknown subcommand '%s'\nTry 'clxent --help'.\n",
            argv[1]);
    return CLI_USAGE;
}
