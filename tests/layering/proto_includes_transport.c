/* Layering probe (tests/CMakeLists.txt): compiled with the include view of proto (layer 1), this
 * upward include of the transport module (layer 2) must fail to build. */
#include "transport/transport.h"
