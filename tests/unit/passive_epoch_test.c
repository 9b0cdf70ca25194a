/* engine/passive and epochs (passive.h, "epochs"; proto/PROTOCOL.md, EPOCH): a copy that knows its
 * database's history moved on to a newer epoch refuses an old active's EPOCH announcement and
 * every GEN_BEGIN whose epoch is older than the one its generation belongs to (a test tries:
 * nothing of the refused generation reaches the copy), learns newer epochs from what sources
 * announce and ship, and waits quietly once a source says it was fenced. */
#include <dirent.h>

#include "passive_test_util.h"

static void begin(pt_t *t, uint32_t epoch, uint64_t gen, uint64_t size)
{
    ls_frame_t f = {.type = LS_FRAME_GEN_BEGIN};
    memcpy(f.gen_begin.dbid, t->dbid, LS_DBID_LEN);
    f.gen_begin.epoch = epoch;
    f.gen_begin.generation = gen;
    f.gen_begin.size = size;
    f.gen_begin.close_ns = LS_H_GEN_CLOSE_NS;
    cr_assert_eq(ls_passive_on_frame(t->m, &f, t->now), 0);
}

static void announce(pt_t *t, uint32_t epoch, uint64_t first, const char *active)
{
    ls_frame_t f = {.type = LS_FRAME_EPOCH};
    memcpy(f.epoch.dbid, t->dbid, LS_DBID_LEN);
    f.epoch.epoch = epoch;
    f.epoch.first_generation = first;
    f.epoch.active = ls_proto_str(active);
    cr_assert_eq(ls_passive_on_frame(t->m, &f, t->now), 0);
}

/* Files of the copy (logs/ and inspect/) whose name holds needle. */
static int files_named(pt_t *t, const char *needle)
{
    int n = 0;
    const char *sub[] = {"logs", "inspect"};
    for (int i = 0; i < 2; i++) {
        char path[4200];
        snprintf(path, sizeof(path), "%s/%s", t->dir, sub[i]);
        DIR *d = opendir(path);
        if (!d) continue;
        for (struct dirent *e; (e = readdir(d));)
            n += strstr(e->d_name, needle) != NULL;
        closedir(d);
    }
    return n;
}

Test(passive_epoch, a_generation_of_an_older_epoch_is_refused_once_the_history_moved_on)
{
    pt_t t;
    pt_setup(&t);
    const ls_layout_hist_t h[] = {{1, 1}, {2, 3}};
    ls_passive_set_epochs(t.m, h, 2, "node-b");
    cr_assert_eq(ls_passive_epoch(t.m), 2);
    pt_connect(&t);
    pt_skip(&t);
    chain_t ch;
    chain_build(&ch, 3, 8, 60);
    pt_ship(&t, &ch, 1, 700, NULL); /* generation 1 is of epoch 1 by the history: accepted */
    pt_wait(&t, LS_FRAME_INSPECTED, 1);
    pt_skip(&t);
    /* The old active goes on in epoch 1 past the point where epoch 2 began. */
    ls_frame_t f = {.type = LS_FRAME_GEN_BEGIN};
    memcpy(f.gen_begin.dbid, t.dbid, LS_DBID_LEN);
    f.gen_begin.epoch = 1;
    f.gen_begin.generation = 3;
    f.gen_begin.size = ch.len[3];
    cr_assert_eq(ls_passive_on_frame(t.m, &f, t.now), 0);
    pt_frame_t *e = pt_take(&t, LS_FRAME_ERROR);
    cr_assert_eq(e->code, LS_EFENCED);
    cr_assert(ls_h_contains(e->text, "database db1: generation 3 of epoch 1 from node-a refused") &&
                  ls_h_contains(e->text, "moved on to epoch 2 at generation 3 (activated by "
                                         "node-b)"),
              "%s", e->text);
    cr_assert_eq(pt_state(&t), LS_PASSIVE_DISCONNECTED);
    cr_assert(ls_h_contains(ls_passive_reason(t.m), "older epoch are never accepted"), "%s",
              ls_passive_reason(t.m));
    /* Its data and end are dropped, their credit given back at once. */
    uint64_t before = ls_credit_rx_outstanding(t.credit, t.idx);
    for (size_t off = 0; off < ch.len[3]; off += 700) {
        memset(&f, 0, sizeof(f));
        f.type = LS_FRAME_GEN_DATA;
        memcpy(f.gen_data.dbid, t.dbid, LS_DBID_LEN);
        f.gen_data.generation = 3;
        f.gen_data.offset = off;
        f.gen_data.len = (uint32_t) LS_MIN(700, ch.len[3] - off);
        f.gen_data.data = ch.buf[3] + off;
        cr_assert_eq(ls_passive_on_frame(t.m, &f, t.now), 0);
    }
    memset(&f, 0, sizeof(f));
    f.type = LS_FRAME_GEN_END;
    f.gen_end.generation = 3;
    memcpy(f.gen_end.digest, ch.digest[3], LS_DIGEST_SIZE);
    cr_assert_eq(ls_passive_on_frame(t.m, &f, t.now), 0);
    cr_assert_eq(ls_credit_rx_outstanding(t.credit, t.idx), before, "every byte granted back");
    cr_assert_gt(pt_count(&t, LS_FRAME_CREDIT), 0);
    /* Generation 2 (still epoch 1 by the history) is accepted after it; once it is inspected
     * the receiver has handled everything queued before: nothing of generation 3 is there. */
    pt_ship(&t, &ch, 2, 700, NULL);
    pt_wait(&t, LS_FRAME_INSPECTED, 2);
    cr_assert_eq(files_named(&t, "0000000000000002"), 1);
    cr_assert_eq(files_named(&t, "0000000000000003"), 0, "the refused generation never landed");
    chain_free(&ch);
    pt_teardown(&t);
}

Test(passive_epoch, an_old_actives_epoch_announcement_is_refused)
{
    pt_t t;
    pt_setup(&t);
    const ls_layout_hist_t h[] = {{1, 1}, {2, 5}};
    ls_passive_set_epochs(t.m, h, 2, "node-b");
    pt_connect(&t);
    pt_skip(&t);
    announce(&t, 2, 5, "node-b"); /* in step: nothing */
    pt_none(&t);
    cr_assert_eq(pt_state(&t), LS_PASSIVE_HEALTHY);
    announce(&t, 1, 1, "node-a");
    pt_frame_t *e = pt_take(&t, LS_FRAME_ERROR);
    cr_assert_eq(e->code, LS_EFENCED);
    cr_assert(ls_h_contains(e->text, "database db1: source node-a announces epoch 1, but this "
                                     "copy's history moved on to epoch 2 at generation 5 "
                                     "(activated by node-b)"),
              "%s", e->text);
    cr_assert_eq(pt_state(&t), LS_PASSIVE_DISCONNECTED);
    /* No back-off, no asking again: the copy waits for the new active. */
    t.now += 120 * PT_SEC;
    ls_passive_tick(t.m, t.now);
    pt_none(&t);
    pt_teardown(&t);
}

Test(passive_epoch, newer_epochs_are_learned_from_what_the_source_announces_and_ships)
{
    pt_t t;
    pt_setup(&t);
    cr_assert_eq(ls_passive_epoch(t.m), 0, "a new copy knows no epoch");
    pt_connect(&t);
    pt_skip(&t);
    int logs = t.logs;
    announce(&t, 2, 3, "node-b");
    cr_assert_eq(ls_passive_epoch(t.m), 2);
    cr_assert_eq(t.logs, logs + 1, "a newer epoch is worth a log line");
    pt_none(&t);
    begin(&t, 1, 4, 100); /* epoch 1 at generation 4, after epoch 2 began at 3 */
    cr_assert_eq(pt_take(&t, LS_FRAME_ERROR)->code, LS_EFENCED);
    /* a new connection (another source, the new active): a GEN_BEGIN of epoch 3 is learned */
    pt_connect_tag(&t, 2);
    pt_skip(&t);
    cr_assert_eq(pt_state(&t), LS_PASSIVE_HEALTHY);
    begin(&t, 3, 9, 100);
    cr_assert_eq(ls_passive_epoch(t.m), 3);
    begin(&t, 2, 9, 100);
    pt_frame_t *e = pt_take(&t, LS_FRAME_ERROR);
    cr_assert(ls_h_contains(e->text, "generation 9 of epoch 2 from node-a refused: this copy's "
                                     "history moved on to epoch 3 at generation 9"),
              "%s", e->text);
    pt_teardown(&t);
}

Test(passive_epoch, a_fenced_source_leaves_the_copy_waiting)
{
    pt_t t;
    pt_setup(&t);
    pt_connect(&t);
    pt_skip(&t);
    ls_frame_t f = {.type = LS_FRAME_ERROR};
    memcpy(f.error.dbid, t.dbid, LS_DBID_LEN);
    f.error.code = LS_EFENCED;
    f.error.message = ls_proto_str("fenced: node-b became active for db1 in epoch 2");
    cr_assert_eq(ls_passive_on_frame(t.m, &f, t.now), 0);
    cr_assert_eq(pt_state(&t), LS_PASSIVE_DISCONNECTED);
    cr_assert(ls_h_contains(ls_passive_reason(t.m),
                            "source node-a was fenced: fenced: node-b became active"),
              "%s", ls_passive_reason(t.m));
    t.now += 120 * PT_SEC;
    ls_passive_tick(t.m, t.now);
    pt_none(&t);
    pt_teardown(&t);
}
