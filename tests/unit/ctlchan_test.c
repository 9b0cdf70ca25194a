/*
 * The control page's channel (engine/writer/ctlpage.h, docs/BLOCKMODE.md "The channel"): the
 * three seqlocked areas read back what was published, a sleeper wakes on a publish from another
 * thread and from another process, a timeout is LS_ETIMEDOUT, and the writer publishes its
 * durable position after each batch and each roll; the doorbell: the writer rings it once per
 * arming and never unarmed, a daemon in another process polling it wakes, a name that is no FIFO
 * is no doorbell.
 */
#include <criterion/criterion.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/core.h"
#include "writer/ctlpage.h"
#include "writer_util.h"

static ls_ctlpage_t *open_page(const char *dir)
{
    char err[512] = "";
    ls_ctlpage_t *p = NULL;
    cr_assert_eq(ls_ctlpage_open(dir, true, &p, err, sizeof(err)), 0, "%s", err);
    return p;
}

Test(ctlchan, areas_read_back_what_was_published)
{
    char *dir = ls_h_tmpdir("ctlchan");
    ls_ctlpage_t *p = open_page(dir);
    ls_ctl_durable_t d = {.generation = 7, .offset = 4096, .lsn = 99, .time_ns = 5, .epoch = 2};
    d.pid = 1234;
    uint32_t s0 = ls_ctlpage_read_durable(p, &(ls_ctl_durable_t){0});
    ls_ctlpage_publish_durable(p, &d);
    ls_ctl_durable_t got;
    uint32_t s1 = ls_ctlpage_read_durable(p, &got);
    cr_assert_eq(s1, s0 + 2, "one publish moves the sequence by two (odd while writing)");
    cr_assert_eq(got.generation, 7);
    cr_assert_eq(got.offset, 4096);
    cr_assert_eq(got.lsn, 99);
    cr_assert_eq(got.time_ns, 5);
    cr_assert_eq(got.epoch, 2);
    cr_assert_eq(got.pid, 1234);

    ls_ctl_copy_t c[LS_CTL_COPIES_MAX + 2];
    for (uint32_t i = 0; i < LS_CTL_COPIES_MAX + 2; i++)
        c[i] = (ls_ctl_copy_t){.durable_lsn = 100 + i, .applied_lsn = 50 + i, .flags = i, .id = i};
    ls_ctlpage_publish_copies(p, c, LS_CTL_COPIES_MAX + 2);
    ls_ctl_copy_t out[LS_CTL_COPIES_MAX];
    uint32_t n = 0;
    ls_ctlpage_read_copies(p, out, &n);
    cr_assert_eq(n, LS_CTL_COPIES_MAX, "more than the page holds are cut");
    for (uint32_t i = 0; i < n; i++) {
        cr_assert_eq(out[i].durable_lsn, 100 + i);
        cr_assert_eq(out[i].applied_lsn, 50 + i);
        cr_assert_eq(out[i].id, i);
    }

    ls_ctl_sync_t sy = {.state = LS_CTL_SYNC_DEGRADED, .level = 1, .copies = 1, .switches = 3};
    sy.since_ns = 77;
    memset(sy.reason, 'r', sizeof(sy.reason) - 1); /* the longest reason */
    ls_ctlpage_publish_sync(p, &sy);
    ls_ctl_sync_t sg;
    ls_ctlpage_read_sync(p, &sg);
    cr_assert_eq(sg.state, LS_CTL_SYNC_DEGRADED);
    cr_assert_eq(sg.switches, 3);
    cr_assert_eq(sg.since_ns, 77);
    cr_assert_eq(strlen(sg.reason), LS_CTL_REASON_MAX);
    strcpy(sy.reason, "short");
    ls_ctlpage_publish_sync(p, &sy);
    ls_ctlpage_read_sync(p, &sg);
    cr_assert_str_eq(sg.reason, "short", "a shorter reason leaves no tail of the longer one");

    /* A second mapping (another process's view) sees the same. */
    ls_ctlpage_t *q = open_page(dir);
    ls_ctlpage_read_durable(q, &got);
    cr_assert_eq(got.lsn, 99);
    ls_ctlpage_close(q);
    ls_ctlpage_close(p);
    free(dir);
}

Test(ctlchan, wait_times_out_when_nothing_is_published)
{
    char *dir = ls_h_tmpdir("ctlchan");
    ls_ctlpage_t *p = open_page(dir);
    ls_ctl_durable_t d;
    uint32_t s = ls_ctlpage_read_durable(p, &d);
    cr_assert_eq(ls_ctlpage_wait_durable(p, s, 20 * 1000000ull), LS_ETIMEDOUT);
    cr_assert_eq(ls_ctlpage_wait_durable(p, s + 2, 20 * 1000000ull), 0,
                 "a sequence other than the one seen returns at once");
    ls_ctlpage_close(p);
    free(dir);
}

typedef struct {
    ls_ctlpage_t *p;
    uint32_t seen;
    int rc;
    uint64_t lsn;
} waiter_t;

static void *wait_copies(void *arg)
{
    waiter_t *w = arg;
    w->rc = ls_ctlpage_wait_copies(w->p, w->seen, 30ull * 1000000000ull);
    ls_ctl_copy_t c[LS_CTL_COPIES_MAX];
    uint32_t n = 0;
    ls_ctlpage_read_copies(w->p, c, &n);
    w->lsn = n ? c[0].durable_lsn : 0;
    return NULL;
}

Test(ctlchan, a_sleeper_wakes_on_publish_and_on_wake)
{
    char *dir = ls_h_tmpdir("ctlchan");
    ls_ctlpage_t *p = open_page(dir);
    ls_ctl_copy_t c[LS_CTL_COPIES_MAX];
    uint32_t n;
    waiter_t w = {.p = p, .seen = ls_ctlpage_read_copies(p, c, &n)};
    pthread_t t;
    pthread_create(&t, NULL, wait_copies, &w);
    usleep(20000); /* most likely asleep by now; either way it must return with the value */
    ls_ctlpage_publish_copies(p, &(ls_ctl_copy_t){.durable_lsn = 42}, 1);
    pthread_join(t, NULL);
    cr_assert_eq(w.rc, 0);
    cr_assert_eq(w.lsn, 42);

    /* wake: the sequence moves on, the fields stay */
    w.seen = ls_ctlpage_read_copies(p, c, &n);
    pthread_create(&t, NULL, wait_copies, &w);
    usleep(20000);
    ls_ctlpage_wake_copies(p);
    pthread_join(t, NULL);
    cr_assert_eq(w.rc, 0);
    cr_assert_eq(w.lsn, 42, "a wake changes no field");
    ls_ctlpage_close(p);
    free(dir);
}

Test(ctlchan, a_quiet_publication_moves_the_sequence_and_the_fields)
{
    char *dir = ls_h_tmpdir("ctlchan");
    ls_ctlpage_t *p = open_page(dir);
    ls_ctl_copy_t c[LS_CTL_COPIES_MAX];
    uint32_t n;
    uint32_t s = ls_ctlpage_read_copies(p, c, &n);
    ls_ctlpage_publish_copies_quiet(p, &(ls_ctl_copy_t){.durable_lsn = 7, .applied_lsn = 5}, 1);
    uint32_t s2 = ls_ctlpage_read_copies(p, c, &n);
    cr_assert_eq(n, 1);
    cr_assert_eq(c[0].durable_lsn, 7);
    cr_assert_eq(c[0].applied_lsn, 5);
    cr_assert_neq(s2, s);
    cr_assert_eq(s2 % 2, 0, "the sequence is even again");
    cr_assert_eq(ls_ctlpage_wait_copies(p, s, 20 * 1000000ull), 0,
                 "whoever read before it does not sleep on the old sequence");
    ls_ctlpage_close(p);
    free(dir);
}

Test(ctlchan, a_sleeper_in_another_process_wakes)
{
    char *dir = ls_h_tmpdir("ctlchan");
    ls_ctlpage_t *p = open_page(dir);
    ls_ctl_durable_t d;
    uint32_t seen = ls_ctlpage_read_durable(p, &d);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) { /* the daemon's side: its own mapping, sleeping on the shared futex */
        ls_ctlpage_t *q = NULL;
        char err[256];
        if (ls_ctlpage_open(dir, false, &q, err, sizeof(err)) != 0) _exit(2);
        int rc = ls_ctlpage_wait_durable(q, seen, 30ull * 1000000000ull);
        ls_ctlpage_read_durable(q, &d);
        _exit(rc == 0 && d.lsn == 555 ? 0 : 1);
    }
    usleep(50000);
    ls_ctlpage_publish_durable(p, &(ls_ctl_durable_t){.generation = 1, .lsn = 555});
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child saw the publish (status %d)", st);
    ls_ctlpage_close(p);
    free(dir);
}

/* Many publishes against a reader: every snapshot it takes is one that was published whole. */
typedef struct {
    ls_ctlpage_t *p;
    volatile bool stop;
} pub_t;

static void *publisher(void *arg)
{
    pub_t *x = arg;
    for (uint64_t i = 1; !x->stop; i++)
        ls_ctlpage_publish_durable(
            x->p, &(ls_ctl_durable_t){.generation = i, .offset = i * 3, .lsn = i * 7});
    return NULL;
}

Test(ctlchan, reads_are_never_torn)
{
    char *dir = ls_h_tmpdir("ctlchan");
    pub_t x = {.p = open_page(dir)};
    pthread_t t;
    pthread_create(&t, NULL, publisher, &x);
    for (int i = 0; i < 200000; i++) {
        ls_ctl_durable_t d;
        ls_ctlpage_read_durable(x.p, &d);
        cr_assert(d.offset == d.generation * 3 && d.lsn == d.generation * 7,
                  "torn read: generation %llu offset %llu lsn %llu",
                  (unsigned long long) d.generation, (unsigned long long) d.offset,
                  (unsigned long long) d.lsn);
    }
    x.stop = true;
    pthread_join(t, NULL);
    ls_ctlpage_close(x.p);
    free(dir);
}

Test(ctlchan, the_writer_publishes_after_each_batch_and_roll)
{
    char *dir = ls_h_tmpdir("ctlchan");
    ls_db_t *db = open_sized(dir, 0);
    ls_ctlpage_t *p = open_page(dir);
    ls_ctl_durable_t d;
    ls_ctlpage_read_durable(p, &d);
    cr_assert_eq(d.pid, (uint32_t) getpid(), "an open writer names its process");
    cr_assert_eq(d.offset, 0, "nothing of the current log published before a batch");
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(commit_tx(db, i, 3, 100), 0);
        ls_db_stats_t st;
        cr_assert_eq(ls_db_stats(db, &st), 0);
        ls_ctlpage_read_durable(p, &d);
        cr_assert_eq(d.lsn, st.last_lsn, "durable lsn after commit %d", i);
        cr_assert_eq(d.generation, st.current_generation);
        char cur[PATHLEN];
        snprintf(cur, sizeof(cur), "%s/logs/E00.log", dir);
        struct stat sb;
        cr_assert_eq(stat(cur, &sb), 0);
        cr_assert(d.offset > 0 && d.offset <= (uint64_t) sb.st_size,
                  "offset %llu within the current log (%lld bytes)", (unsigned long long) d.offset,
                  (long long) sb.st_size);
    }
    uint64_t gen = d.generation, lsn = d.lsn;
    cr_assert_eq(ls_db_roll(db), 0);
    ls_ctlpage_read_durable(p, &d);
    cr_assert_eq(d.generation, gen + 1, "a roll publishes the new generation");
    cr_assert_eq(d.offset, 0);
    cr_assert_eq(d.lsn, lsn);
    cr_assert_eq(ls_db_close(db), 0);
    ls_ctlpage_read_durable(p, &d);
    cr_assert_eq(d.pid, 0, "a closed writer says so");
    ls_ctlpage_close(p);
    free(dir);
}

/* ---- the doorbell (ctlpage.h, docs/BLOCKMODE.md "The doorbell") ---- */

/* Bytes the doorbell holds (read non-blocking, so drained). */
static int bell_bytes(int fd)
{
    char buf[64];
    int n = 0;
    for (ssize_t r; (r = read(fd, buf, sizeof(buf))) > 0;)
        n += (int) r;
    return n;
}

Test(ctlchan, the_writer_rings_once_per_arming_and_never_unarmed)
{
    char *dir = ls_h_tmpdir("ctlchan");
    ls_db_t *db = open_sized(dir, 0);
    ls_ctlpage_t *p = open_page(dir);
    int bell = ls_ctlpage_bell_open(dir); /* the daemon's side */
    cr_assert_geq(bell, 0, "the writer made <db>/doorbell a FIFO both sides open");
    cr_assert_eq(ls_ctlpage_bell(p), (uint32_t) getpid(), "the writer says it rings");
    cr_assert_eq(commit_tx(db, 0, 2, 50), 0);
    cr_assert_eq(bell_bytes(bell), 0, "not armed: no ring");
    ls_ctlpage_arm_bell(p, true);
    for (int i = 1; i <= 3; i++)
        cr_assert_eq(commit_tx(db, i, 2, 50), 0);
    cr_assert_eq(bell_bytes(bell), 1, "one ring for three batches after one arming");
    cr_assert_eq(commit_tx(db, 4, 2, 50), 0);
    cr_assert_eq(bell_bytes(bell), 0, "the ring disarmed it");
    ls_ctlpage_arm_bell(p, true);
    cr_assert_eq(ls_db_roll(db), 0);
    cr_assert_eq(bell_bytes(bell), 1, "a roll's publication rings too");
    ls_ctlpage_arm_bell(p, true);
    cr_assert_eq(ls_db_close(db), 0);
    cr_assert_eq(bell_bytes(bell), 1, "the close's publication (pid 0) rings");
    cr_assert_eq(ls_ctlpage_bell(p), 0, "a closed writer rings no more");
    close(bell);
    ls_ctlpage_close(p);
    free(dir);
}

Test(ctlchan, a_doorbell_name_that_is_no_fifo_means_no_doorbell)
{
    char *dir = ls_h_tmpdir("ctlchan");
    char path[PATHLEN];
    snprintf(path, sizeof(path), "%s/doorbell", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f != NULL);
    fputs("not a fifo", f);
    fclose(f);
    cr_assert_eq(ls_ctlpage_bell_open(dir), -1, "a regular file is not a doorbell");
    ls_db_t *db = open_sized(dir, 0);
    ls_ctlpage_t *p = open_page(dir);
    cr_assert_eq(ls_ctlpage_bell(p), 0, "a writer without a doorbell does not claim one");
    ls_ctlpage_arm_bell(p, true);
    ls_ctl_durable_t d;
    uint32_t seen = ls_ctlpage_read_durable(p, &d);
    cr_assert_eq(commit_tx(db, 0, 2, 50), 0);
    cr_assert_neq(ls_ctlpage_read_durable(p, &d), seen, "it still publishes (the futex path)");
    cr_assert(ls_ctlpage_take_bell(p), "nobody took the arming");
    cr_assert_eq(ls_db_close(db), 0);
    ls_ctlpage_close(p);
    free(dir);
}

Test(ctlchan, a_daemon_in_another_process_polling_the_doorbell_wakes)
{
    char *dir = ls_h_tmpdir("ctlchan");
    ls_db_t *db = open_sized(dir, 0);
    int ready[2];
    cr_assert_eq(pipe(ready), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) { /* the daemon's loop: arm, read the position once more, poll the FIFO */
        ls_ctlpage_t *q = NULL;
        char err[256];
        int bell = ls_ctlpage_bell_open(dir);
        if (bell < 0 || ls_ctlpage_open(dir, false, &q, err, sizeof(err)) != 0) _exit(2);
        ls_ctl_durable_t d;
        ls_ctlpage_arm_bell(q, true);
        ls_ctlpage_read_durable(q, &d);
        uint64_t before = d.lsn;
        if (write(ready[1], "r", 1) != 1) _exit(4);
        struct pollfd pfd = {.fd = bell, .events = POLLIN};
        if (poll(&pfd, 1, 30000) != 1 || !ls_ctlpage_bell_drain(bell)) _exit(5);
        ls_ctlpage_read_durable(q, &d);
        _exit(d.lsn > before ? 0 : 1);
    }
    char c;
    cr_assert_eq(read(ready[0], &c, 1), 1);
    cr_assert_eq(commit_tx(db, 0, 2, 50), 0);
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child was rung (status %d)", st);
    cr_assert_eq(ls_db_close(db), 0);
    close(ready[0]);
    close(ready[1]);
    free(dir);
}
