#include "axon/version.h"

const char *ax_version(void) { return AX_VERSION_STRING; }
