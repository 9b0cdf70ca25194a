/* Waiting for a writer's store to hold everything durable (tests only). */
#ifndef LS_TEST_DB_WAIT_H
#define LS_TEST_DB_WAIT_H

#include <stdbool.h>
#include <unistd.h>

#include <logship/db.h>

#include "core/core.h"

/* True once the store holds everything durable (applied_lsn == last_lsn), false after
 * timeout_ms. A commit is acknowledged once durable; the store follows. */
static inline bool wait_applied(ls_db_t *db, int timeout_ms)
{
    for (uint64_t end = ls_mono_ns() + (uint64_t) timeout_ms * 1000000u; ls_mono_ns() < end;) {
        ls_db_stats_t st;
        ls_db_stats(db, &st);
        if (st.applied_lsn == st.last_lsn) return true;
        usleep(1000);
    }
    return false;
}

#endif
