/* Layering probe (tests/CMakeLists.txt): compiled with the include view of copy, this upward
 * include of the passive machine (which uses the copy and its receiver) must fail to build. */
#include "passive/passive.h"
