/* Atomic file replacement shared by libaxon's writers (cache files,
 * safetensors): the data goes to a temporary name next to the target,
 * which is fsynced, renamed over it, and the folder fsynced, so a crash
 * leaves the old file or the new one, never a torn one. */
#ifndef AXON_FILE_INTERNAL_H
#define AXON_FILE_INTERNAL_H

#include <stdbool.h>

#include "axon/status.h"

/* Finish a write to `tmp` on fd: when `ok` (every write succeeded; errno
 * still holds the failed write's reason otherwise), fsync, close, rename
 * to `path` and fsync the folder; else close and unlink tmp. Always closes
 * fd. The error names path, the failed step and tmp. */
ax_status ax_file_commit(int fd, const char *tmp, const char *path, bool ok);

#endif
