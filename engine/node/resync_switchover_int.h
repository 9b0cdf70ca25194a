/*
 * The node's resync and switchover internals (engine/node/resync*.c, switchover*.c): an old
 * active rebuilt as a copy of the new active (full or incremental, docs/ACTIVATION.md
 * "Incremental resync") and the planned switchover (docs/ACTIVATION.md "Planned switchover").
 * Split from node_int.h, whose types these use; included by the files that call them.
 */
#ifndef LS_NODE_RESYNC_SWITCHOVER_INT_H
#define LS_NODE_RESYNC_SWITCHOVER_INT_H

#include "node/node_int.h"

/* resync.c: the control command "resync": an old active rebuilt as a copy of the new active */
int ls__node_resync_cmd(ls_node_t *n, const cJSON *req, cJSON *resp, char *err, size_t errlen);
void ls__node_resync_retire(active_t *a); /* its shipping stops for good */
/* resync_job.c: the diverged generations a full-seed fall-back set aside as <db>.diverged, put
 * back into <db>/diverged after a crash (at start, after the seed's recovery). */
void ls__rsi_recover_diverged(const char *db_dir, const char *name);
/* db (its role file saved as a copy following follows) opens as a copy: its active retired, a
 * copy slot taken, the new active's ship connections closed (they offer it again); *at: where
 * the copy resumes. The caller reserved the slot (ls__node_resync_reserve) before saving the
 * role file: this cannot fail then. */
void ls__node_resync_open_copy(ls_node_t *n, node_db_t *db, const char *follows,
                               ls_copy_resume_t *at);
bool ls__node_resync_has_slot(ls_node_t *n, node_db_t *db);
/* A copy slot for db with its wake-up made (ls__node_pcopy_reserve), before the caller's
 * durable step: 0, LS_ENOMEM when no slot is left, or out of descriptors; err names db and the
 * reason. ls__node_resync_unreserve undoes it when that step fails. */
int ls__node_resync_reserve(ls_node_t *n, node_db_t *db, char *err, size_t errlen);
void ls__node_resync_unreserve(ls_node_t *n, node_db_t *db);
/* resync_inc.c: the incremental resync of a diverged (or demoted) old active from the split
 * (docs/ACTIVATION.md, "Incremental resync"): started by "resync", followed by "resync_status";
 * auto_resync starts it from the housekeeping timer. */
int ls__node_resync_inc_start(ls_node_t *n, node_db_t *db, cJSON *resp, char *err, size_t errlen);
int ls__node_resync_status_cmd(ls_node_t *n, const cJSON *req, cJSON *resp, char *err,
                               size_t errlen);
void ls__node_resync_auto(ls_node_t *n);      /* housekeeping: auto_resync databases */
void ls__node_resync_inc_stop(ls_node_t *n);  /* at stop */
void ls__node_resync_inc_free(node_db_t *db); /* after the loop ended */

/* switchover.c, switchover_hold.c, switchover_cmd.c (the active's side) and switchover_peer.c
 * (NODE's): `logship switchover DB --to NODE` (docs/ACTIVATION.md, "Planned switchover") */
int ls__node_switchover_cmd(ls_node_t *n, const cJSON *req, bool status_only, cJSON *resp,
                            char *err, size_t errlen); /* "switchover" and "switchover_status" */
/* The active's side: SWITCHOVER_DONE from the copy on l's connection. */
void ls__node_switchover_done(link_t *l, const ls_proto_switchover_done_t *d);
/* The copy's side: SWITCHOVER on an accepted connection. */
void ls__node_switchover_frame(peer_t *p, const ls_proto_switchover_t *f);
const char *ls__node_switchover_state(const node_db_t *d); /* the last one's; NULL: none */
void ls__node_switchover_stop(ls_node_t *n);               /* at stop */
/* A switchover of d asked who to activate (it handles the fence and the role: epoch.c). */
bool ls__node_switchover_expects(const node_db_t *d, const char *who);
/* At start, db active: a hold an earlier run left before asking the new active is released. */
void ls__node_switchover_recover(ls_node_t *n, node_db_t *db);
void ls__node_switchover_free(node_db_t *d); /* after the loop ended */

#endif
