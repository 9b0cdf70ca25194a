/* Layering probe, the control (tests/CMakeLists.txt): compiled with the include view of copy, its
 * own header and the headers of what it links (store, logfmt, core) must build, so that the other
 * probes fail for the include they add and not for the way they are built. */
#include <logship/logfmt.h>

#include "copy/copy.h"
#include "core/core.h"
#include "store/store.h"

int ls_probe_copy_includes_store(void);
int ls_probe_copy_includes_store(void)
{
    return LS_DBID_LEN;
}
