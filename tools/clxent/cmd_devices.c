/* clxent devices: a clinfo -l style listing of what clxent can run on,
 * as text or JSON, and --select to see what a device spec resolves to. */
#include "commands.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char *cmd = "devices";

static void help(void) {
    printf("Usage: clxent devices [--device SPEC] [--json] [--select SPEC]\n\n"
           "Lists every OpenCL device and the host backend, each with the\n"
           "spec that selects it. --select SPEC prints the device SPEC\n"
           "resolves to and why, or exits 1 listing the choices.\n"
           "--device is accepted for uniformity and ignored here.\n");
}

static void print_mem(cl_ulong bytes) {
    if (bytes >= (1ull << 30)) printf("%.1f GiB", (double)bytes / (1 << 30));
    else if (bytes >= (1ull << 20)) printf("%.1f MiB", (double)bytes / (1 << 20));
    else printf("%.0f KiB", (double)bytes / 1024);
}

static void print_text(const clxent_device_info *infos, size_t n) {
    const char *platform = NULL;
    for (size_t i = 0; i < n; i++) {
        const clxent_device_info *d = &infos[i];
        if (d->backend == CLXENT_BACKEND_HOST) {
            printf("Host backend\n `-- %-6s %-6s %s\n", d->spec, d->type,
                   d->name);
            continue;
        }
        if (!platform || strcmp(platform, d->platform) != 0) {
            printf("Platform #%d: %s\n", d->platform_index, d->platform);
            platform = d->platform;
        }
        printf(" `-- %-6s %-6s %s\n", d->spec, d->type, d->name);
        printf("       vendor %s, driver %s, %s\n", d->vendor,
               d->driver_version, d->c_version);
        printf("       %u compute units, work-group <= %zu, global ",
               d->compute_units, d->max_work_group_size);
        print_mem(d->global_mem_bytes);
        printf(", local ");
        print_mem(d->local_mem_bytes);
        printf(", fp16 %s, fp64 %s\n", d->fp16 ? "yes" : "no",
               d->fp64 ? "yes" : "no");
        if (d->errors[0]) printf("       errors: %s\n", d->errors);
    }
}


void cli_device_json(FILE *f, const clxent_device_info *d) {
    fprintf(f, "{\"spec\": ");
    cli_json_string(f, d->spec);
    fprintf(f, ", \"backend\": \"%s\", \"platform_index\": %d, "
            "\"device_index\": %d",
            d->backend == CLXENT_BACKEND_HOST ? "host" : "opencl",
            d->platform_index, d->device_index);
    const struct { const char *k; const char *v; } strs[] = {
        {"type", d->type}, {"platform", d->platform}, {"name", d->name},
        {"vendor", d->vendor}, {"driver_version", d->driver_version},
        {"device_version", d->device_version}, {"c_version", d->c_version},
        {"errors", d->errors}, {"reason", d->reason}};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        fprintf(f, ", \"%s\": ", strs[i].k);
        cli_json_string(f, strs[i].v);
    }
    fprintf(f, ", \"compute_units\": %u, \"max_work_group_size\": %zu, "
            "\"global_mem_bytes\": %" PRIu64 ", \"local_mem_bytes\": %" PRIu64
            ", \"max_alloc_bytes\": %" PRIu64 ", \"fp16\": %s, \"fp64\": %s}",
            d->compute_units, d->max_work_group_size,
            (uint64_t)d->global_mem_bytes, (uint64_t)d->local_mem_bytes,
            (uint64_t)d->max_alloc_bytes, d->fp16 ? "true" : "false",
            d->fp64 ? "true" : "false");
}

static int select_device(const char *spec, int json) {
    clxent_device_info info;
    char message[2048] = "";
    clxent_status st = clxent_device_resolve(spec, &info, message,
                                             sizeof message);
    if (st != CLXENT_STATUS_OK)
        return cli_fail(cmd, "--select '%s': %s (%s)%s%s", spec,
                        clxent_status_string(st), clxent_status_name(st),
                        message[0] ? ": " : "", message);
    if (json) {
        cli_device_json(stdout, &info);
        putchar('\n');
    } else {
        printf("%s: %s (%s)\n", info.spec, info.name,
               info.backend == CLXENT_BACKEND_HOST ? "host backend"
                                                   : info.platform);
        if (info.reason[0]) printf("reason: %s\n", info.reason);
    }
    return CLI_OK;
}

int clxent_cmd_devices(int argc, char **argv) {
    const char *select = NULL, *device = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        int r;
        if (cli_is_help(argv[i])) { help(); return CLI_OK; }
        if (strcmp(argv[i], "--json") == 0) { json = 1; continue; }
        if ((r = cli_option(cmd, argc, argv, &i, "--select", &select))) {
            if (r != 1) return r;
            continue;
        }
        if ((r = cli_option(cmd, argc, argv, &i, "--device", &device))) {
            if (r != 1) return r;
            continue;
        }
        return cli_usage_error(cmd, "unknown argument '%s'", argv[i]);
    }
    if (select) return select_device(select, json);

    size_t n = 0;
    clxent_status st = clxent_devices_list(NULL, 0, &n);
    if (st != CLXENT_STATUS_OK)
        return cli_fail_status(cmd, NULL, st, "listing devices");
    clxent_device_info *infos = calloc(n ? n : 1, sizeof *infos);
    if (!infos) return cli_fail(cmd, "out of memory");
    size_t total = n;
    st = clxent_devices_list(infos, n, &total);
    if (st != CLXENT_STATUS_OK) {
        free(infos);
        return cli_fail_status(cmd, NULL, st, "listing devices");
    }
    if (total < n) n = total; /* a device vanished between the two calls */
    if (json) {
        printf("{\"devices\": [");
        for (size_t i = 0; i < n; i++) {
            printf(i ? ",\n  " : "\n  ");
            cli_device_json(stdout, &infos[i]);
        }
        printf("\n]}\n");
    } else {
        print_text(infos, n);
    }
    free(infos);
    return CLI_OK;
}
