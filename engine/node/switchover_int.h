/* A planned switchover's state on the active (docs/ACTIVATION.md, "Planned switchover"), shared
 * by switchover.c (steps 3 to 5 on the loop: the wait, whose verdicts switchover_wait.c decides
 * with no I/O, SWITCHOVER, the answer, the old active becoming the new one's copy),
 * switchover_hold.c (step 2 on the libuv pool: the hold set in the control page; and, at start, an
 * interrupted switchover's hold) and switchover_cmd.c (the control commands "switchover" and
 * "switchover_status": the refusals and the report). Internal to engine/node. Threading: every
 * field is the loop's, but while w->work is queued the pool job alone touches ctl, held_ns,
 * self_closed, rc and err. */
#ifndef LS_NODE_SWITCHOVER_INT_H
#define LS_NODE_SWITCHOVER_INT_H

#include "node/node_int.h"
#include "writer/ctlpage.h"

#define SW_POLL_MS            20    /* the hold's progress is looked at this often */
#define SW_RESCAN_MS          200   /* the source rescanned while waiting for the last generation */
#define SW_TIMEOUT_MS_DEFAULT 60000 /* --timeout */
#define SW_ANSWER_GRACE_MS    30000 /* after SWITCHOVER: how long a lost answer is waited for */
#define SW_MSG_MAX            2048
#define SW_OPEN_TRIES         3 /* a writer closing while the hold is set: the hold tried again */

typedef enum {
    SW_HOLDING,  /* the hold is being set (pool) */
    SW_SHIPPING, /* held: the writer's acknowledgement, then NODE replaying the last generation */
    SW_ASKING,   /* SWITCHOVER sent: NODE's answer awaited */
    SW_CLOSING,  /* NODE is active: this node becomes its copy once the application closed */
    SW_DONE,
    SW_REFUSED,
    SW_FAILED
} sw_state_t;

struct node_sw {
    ls_node_t *node;
    node_db_t *db;
    shipper_t *s; /* the machine shipping to NODE */
    char to[LS_CFG_NAME_MAX];
    sw_state_t state;
    uint64_t timeout_ms;
    uint64_t deadline; /* monotonic ns: the hold is undone after it (before SWITCHOVER) */
    uint64_t start_ns, held_ns, released_ns, end_ns; /* UTC ns */
    uint32_t epoch, new_epoch;
    uint64_t last_gen, last_lsn, last_close_ns, first_generation;
    uint64_t replayed; /* NODE's last replayed generation, as last seen */
    bool acked;        /* the writer acknowledged the hold */
    bool self_closed;  /* no writer had it open: the daemon closed the log */
    bool wake_warned;  /* the copy's wake-up could not be made (out of descriptors): said once */
    ls_ctlpage_t *ctl;
    ls_conn_t *asked_conn; /* the connection SWITCHOVER went on */
    uint64_t kick_mono;
    uv_work_t work;
    uv_timer_t timer;
    bool timer_init, timer_closed;
    int rc;
    char err[1024];
    char message[SW_MSG_MAX];
};

/* The state's name in the status ("holding", "shipping", ...). */
const char *ls__sw_state_name(sw_state_t s);
/* How long commits were held, ms (until now while held). */
uint64_t ls__sw_held_ms(const struct node_sw *w);
/* <dir>/lock free: no writer has the database open (switchover_hold.c). */
bool ls__sw_writer_gone(const char *dir);
/* Step 2 on the pool: the hold set in w's control page (switchover_hold.c); w->rc, w->err. */
void ls__sw_hold_work(uv_work_t *work);
/* Its completion on the loop: the wait for NODE begins, or the outcome (switchover.c). */
void ls__sw_hold_done(uv_work_t *work, int status);

#endif
