/* Device enumeration and the device-spec grammar (device_select.c), shared
 * with context.c and the tests. */
#ifndef CLXENT_DEVICE_SELECT_H
#define CLXENT_DEVICE_SELECT_H

#include "core/internal.h"

/* Classifies a spec: "default", "host", "index" (platform, device set),
 * "type" (type set) or "name"; NULL with the reason in error when
 * malformed. */
const char *clx_spec_parse(const char *spec, int *platform, int *device,
                           cl_device_type *type, char *error,
                           size_t error_size);
/* Resolves a spec to a device (platform/device NULL for host). */
clxent_status clx_device_select(const char *spec, clxent_device_info *info,
                                cl_platform_id *platform,
                                cl_device_id *device, char *message,
                                size_t message_size);
clxent_status clx_device_describe(cl_device_id device,
                                  clxent_device_info *info, char *message,
                                  size_t message_size);

#endif
