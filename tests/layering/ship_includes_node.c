/* Layering probe (tests/CMakeLists.txt): compiled with the include view of ship, this upward
 * include of the replication node (the top engine layer, which hosts the shipping machines) must
 * fail to build. */
#include "node/node.h"
