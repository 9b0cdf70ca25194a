/* Layering probe (tests/CMakeLists.txt): compiled with the include view of core (layer 0), this
 * include of the writer's public header must fail to build. */
#include <logship/db.h>
