/* Layering probe (tests/CMakeLists.txt): compiled with the include view of logfmt (layer 1), this
 * upward include of the copy module (layer 3) must fail to build. */
#include "copy/copy.h"
