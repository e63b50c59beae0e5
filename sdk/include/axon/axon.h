/* axon/axon.h — everything a plugin or an embedding program needs.
 *
 *     #include <axon/axon.h>
 *     cc -shared -fPIC my_plugin.c -o my_plugin.so $(pkg-config --cflags --libs axon)
 *
 * See PLUGINS.md for a complete plugin and docs/ARCHITECTURE.md for the
 * house as a whole.
 */
#ifndef AXON_AXON_H
#define AXON_AXON_H

#include "axon/amp.h"
#include "axon/attention.h"
#include "axon/autograd.h"
#include "axon/cache.h"
#include "axon/conv.h"
#include "axon/dataset.h"
#include "axon/kernels.h"
#include "axon/loader.h"
#include "axon/log.h"
#include "axon/loss.h"
#include "axon/nn.h"
#include "axon/norm.h"
#include "axon/ops.h"
#include "axon/optim.h"
#include "axon/params.h"
#include "axon/plugin.h"
#include "axon/pool.h"
#include "axon/preprocess.h"
#include "axon/rng.h"
#include "axon/safetensors.h"
#include "axon/sample.h"
#include "axon/segment.h"
#include "axon/shape.h"
#include "axon/status.h"
#include "axon/tensor.h"
#include "axon/version.h"
#include "axon/volume.h"
#include "axon/warp.h"

#endif
