/* engine/copy/receiver.h: the receiver thread of a copy over a real ls_copy_t in a temp dir,
 * generations from genbuild; events polled as the daemon's loop does, after the notify. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "copy/receiver.h"
#include "copy_test_util.h"

typedef struct {
    ls_copy_rx_t *rx;
    ls_copy_t *copy;
    char *dir;
    int notified; /* notify calls (any thread) */
    pthread_mutex_t mu;
    ls_copy_rx_event_t ev[512]; /* polled so far */
    int nev;
} fix_t;

static void notify(void *ctx)
{
    fix_t *f = ctx;
    pthread_mutex_lock(&f->mu);
    f->notified++;
    pthread_mutex_unlock(&f->mu);
}

static void setup(fix_t *f)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
    f->dir = ls_h_tmpdir("copy_receiver");
    ls_copy_rx_options_t ro = {.name = "db1", .notify_cb = notify, .notify_ctx = f};
    f->rx = ls_copy_rx_new(&ro);
    cr_assert_not_null(f->rx);
    ls_copy_options_t o = {.dir = f->dir, .event_cb = ls_copy_rx_event_cb, .event_ctx = f->rx};
    f->copy = copy_open_opts(&o);
    cr_assert_eq(ls_copy_start(f->copy), 0);
    cr_assert_eq(ls_copy_rx_start(f->rx, f->copy), 0);
    cr_assert_eq(ls_copy_rx_start(f->rx, f->copy), LS_ESTATE, "started once");
}

static void teardown(fix_t *f)
{
    ls_copy_rx_free(f->rx);
    ls_h_rmtree_free(f->dir);
}

static void push_gen(fix_t *f, const chain_t *ch, int g, uint64_t tag, size_t chunk)
{
    ls_copy_item_t *it = ls_copy_item_new(LS_COPY_ITEM_BEGIN, 0);
    it->epoch = 1;
    it->generation = (uint64_t) g;
    it->size = ch->len[g];
    it->close_ns = LS_H_GEN_CLOSE_NS;
    ls_copy_rx_push(f->rx, it);
    for (size_t off = 0; off < ch->len[g]; off += chunk) {
        uint32_t n = (uint32_t) LS_MIN(chunk, ch->len[g] - off);
        it = ls_copy_item_new(LS_COPY_ITEM_DATA, n);
        it->generation = (uint64_t) g;
        it->offset = off;
        it->tag = tag;
        memcpy(it->data, ch->buf[g] + off, n);
        ls_copy_rx_push(f->rx, it);
    }
    it = ls_copy_item_new(LS_COPY_ITEM_END, 0);
    it->generation = (uint64_t) g;
    memcpy(it->digest, ch->digest[g], LS_DIGEST_SIZE);
    ls_copy_rx_push(f->rx, it);
}

static void drain(fix_t *f)
{
    ls_copy_rx_event_t e;
    while (f->nev < (int) LS_ARRAY_SIZE(f->ev) && ls_copy_rx_poll(f->rx, &e))
        f->ev[f->nev++] = e;
}

static int count(fix_t *f, int kind, uint64_t gen)
{
    int n = 0;
    for (int i = 0; i < f->nev; i++)
        if (f->ev[i].kind == kind && (!gen || f->ev[i].generation == gen)) n++;
    return n;
}

typedef struct {
    fix_t *f;
    int kind;
    uint64_t gen;
} want_ev_t;

static bool seen(void *ctx)
{
    want_ev_t *w = ctx;
    drain(w->f);
    return count(w->f, w->kind, w->gen) > 0;
}

static void wait_ev(fix_t *f, int kind, uint64_t gen)
{
    want_ev_t w = {f, kind, gen};
    cr_assert(ls_h_wait_for(seen, &w, 10000), "event %d for generation %llu", kind,
              (unsigned long long) gen);
}

static uint64_t consumed(fix_t *f, uint64_t tag)
{
    uint64_t n = 0;
    for (int i = 0; i < f->nev; i++)
        if (f->ev[i].kind == LS_COPY_RX_EV_CONSUMED && f->ev[i].tag == tag) n += f->ev[i].consumed;
    return n;
}

Test(copy_receiver, receives_in_order_and_reports_events_and_credit)
{
    fix_t f;
    setup(&f);
    chain_t ch;
    chain_build(&ch, 3, 5, 40);
    for (int g = 1; g <= 3; g++)
        push_gen(&f, &ch, g, 7, 1000);
    wait_ev(&f, LS_COPY_EV_INSPECTED, 3);
    cr_assert_eq(count(&f, LS_COPY_EV_DURABLE, 0), 3);
    cr_assert_eq(consumed(&f, 7), ch.len[1] + ch.len[2] + ch.len[3], "every byte's credit back");
    int d1 = -1, i1 = -1;
    for (int i = 0; i < f.nev; i++) {
        if (f.ev[i].kind == LS_COPY_EV_DURABLE && f.ev[i].generation == 1 && d1 < 0) d1 = i;
        if (f.ev[i].kind == LS_COPY_EV_INSPECTED && f.ev[i].generation == 1 && i1 < 0) i1 = i;
    }
    cr_assert(d1 >= 0 && d1 < i1, "DURABLE(1) before INSPECTED(1), in order");
    cr_assert_gt(f.notified, 0, "the loop is notified");
    wait_ev(&f, LS_COPY_EV_REPLAYED, 3); /* the copy's replayer reports through the same queue */
    ls_copy_resume_t r;
    ls_copy_resume_point(f.copy, &r);
    cr_assert_eq(r.next_generation, 4);
    chain_free(&ch);
    teardown(&f);
}

/* The loop's DATA items come from ls_copy_rx_item_new: the thread keeps the ones it has run as
 * spares and hands them out again, stale bytes and all, for pieces of any size up to their room;
 * every generation is still received byte for byte (its digest and records checked, replayed). */
Test(copy_receiver, data_items_reuse_the_ones_the_thread_has_run)
{
    fix_t f;
    setup(&f);
    chain_t ch;
    chain_build(&ch, 3, 20, 40);
    ls_copy_item_t *ran[256];
    size_t nran = 0;
    for (int g = 1; g <= 3; g++) {
        ls_copy_item_t *begin = ls_copy_rx_item_new(f.rx, LS_COPY_ITEM_BEGIN, 0), *it;
        cr_assert_eq(begin->cap, 0, "not a DATA item: its own room");
        begin->epoch = 1;
        begin->generation = (uint64_t) g;
        begin->size = ch.len[g];
        begin->close_ns = LS_H_GEN_CLOSE_NS;
        size_t chunk = (size_t) (4 - g) * 100; /* smaller pieces into the spares of larger ones */
        /* Every DATA item of the generation is taken before the first is pushed, so none of them
         * is a spare the thread returned meanwhile: once the generation is inspected, all have
         * run and the thread keeps LS_COPY_RX_SPARES of them (taken and pushed in turn, the
         * thread keeping pace would leave one or two). */
        ls_copy_item_t *data[256];
        size_t nd = 0;
        for (size_t off = 0; off < ch.len[g]; off += chunk) {
            uint32_t n = (uint32_t) LS_MIN(chunk, ch.len[g] - off);
            cr_assert_lt(nd, LS_ARRAY_SIZE(data));
            it = data[nd++] = ls_copy_rx_item_new(f.rx, LS_COPY_ITEM_DATA, n);
            cr_assert_eq(it->len, n);
            cr_assert_eq(it->cap, LS_COPY_RX_SPARE_LEN);
            cr_assert_eq(it->generation, 0, "a spare's fields are reset");
            if (g == 1 && nran < LS_ARRAY_SIZE(ran)) ran[nran++] = it;
            it->generation = (uint64_t) g;
            it->offset = off;
            it->tag = 3;
            memcpy(it->data, ch.buf[g] + off, n);
        }
        cr_assert_gt(nd, LS_COPY_RX_SPARES, "more pieces than spares");
        ls_copy_rx_push(f.rx, begin);
        for (size_t i = 0; i < nd; i++)
            ls_copy_rx_push(f.rx, data[i]);
        it = ls_copy_rx_item_new(f.rx, LS_COPY_ITEM_END, 0);
        it->generation = (uint64_t) g;
        memcpy(it->digest, ch.digest[g], LS_DIGEST_SIZE);
        ls_copy_rx_push(f.rx, it);
        wait_ev(&f, LS_COPY_EV_INSPECTED, (uint64_t) g);
        if (g > 1) continue;
        /* generation 1's items have all run: the next ones are among them (its spares) */
        ls_copy_item_t *again[LS_COPY_RX_SPARES];
        for (int k = 0; k < LS_COPY_RX_SPARES; k++) {
            again[k] = ls_copy_rx_item_new(f.rx, LS_COPY_ITEM_DATA, 1);
            bool among = false;
            for (size_t i = 0; i < nran; i++)
                among = among || again[k] == ran[i];
            cr_assert(among, "spare %d is an item the thread ran", k);
        }
        for (int k = 0; k < LS_COPY_RX_SPARES; k++) { /* generation 1 again: refused */
            again[k]->generation = 1;
            again[k]->tag = 3;
            again[k]->data[0] = ch.buf[1][0];
            ls_copy_rx_push(f.rx, again[k]);
        }
    }
    ls_copy_item_t *big = ls_copy_rx_item_new(f.rx, LS_COPY_ITEM_DATA, LS_COPY_RX_SPARE_LEN + 1);
    cr_assert_eq(big->cap, LS_COPY_RX_SPARE_LEN + 1, "larger than a spare: its own room");
    free(big);
    wait_ev(&f, LS_COPY_EV_REPLAYED, 3);
    cr_assert_eq(count(&f, LS_COPY_EV_DURABLE, 0), 3);
    cr_assert_eq(consumed(&f, 3), ch.len[1] + ch.len[2] + ch.len[3] + LS_COPY_RX_SPARES,
                 "every byte's credit back, the refused ones' too");
    ls_copy_resume_t r;
    ls_copy_resume_point(f.copy, &r);
    cr_assert_eq(r.next_generation, 4);
    chain_free(&ch);
    teardown(&f);
}

Test(copy_receiver, a_generation_past_the_wanted_one_is_behind_and_skipped)
{
    fix_t f;
    setup(&f);
    chain_t ch;
    chain_build(&ch, 3, 3, 20);
    push_gen(&f, &ch, 2, 1, 500); /* wants 1 */
    push_gen(&f, &ch, 1, 1, 500);
    wait_ev(&f, LS_COPY_EV_INSPECTED, 1);
    cr_assert_eq(count(&f, LS_COPY_RX_EV_BEHIND, 2), 1, "BEHIND once, for generation 2");
    for (int i = 0; i < f.nev; i++)
        if (f.ev[i].kind == LS_COPY_RX_EV_BEHIND)
            cr_assert_str_eq(f.ev[i].message, "got generation 2, want 1");
    cr_assert_eq(count(&f, LS_COPY_EV_DURABLE, 2), 0, "its data and end were dropped");
    cr_assert_eq(consumed(&f, 1), ch.len[1] + ch.len[2], "dropped bytes' credit comes back too");
    /* an old generation again is refused without BEHIND */
    push_gen(&f, &ch, 1, 1, 500);
    push_gen(&f, &ch, 2, 1, 500);
    wait_ev(&f, LS_COPY_EV_INSPECTED, 2);
    cr_assert_eq(count(&f, LS_COPY_RX_EV_BEHIND, 0), 1);
    chain_free(&ch);
    teardown(&f);
}

Test(copy_receiver, abort_drops_the_half_received_generation)
{
    fix_t f;
    setup(&f);
    chain_t ch;
    chain_build(&ch, 1, 6, 40);
    ls_copy_item_t *it = ls_copy_item_new(LS_COPY_ITEM_BEGIN, 0);
    it->epoch = 1;
    it->generation = 1;
    it->size = ch.len[1];
    ls_copy_rx_push(f.rx, it);
    it = ls_copy_item_new(LS_COPY_ITEM_DATA, 100);
    it->generation = 1;
    memcpy(it->data, ch.buf[1], 100);
    ls_copy_rx_push(f.rx, it);
    ls_copy_rx_push(f.rx, ls_copy_item_new(LS_COPY_ITEM_ABORT, 0));
    push_gen(&f, &ch, 1, 0, 333); /* from the start again: accepted */
    wait_ev(&f, LS_COPY_EV_INSPECTED, 1);
    chain_free(&ch);
    teardown(&f);
}

Test(copy_receiver, damage_on_the_wire_is_asked_again, .init = NULL)
{
    setenv("LS_FAULTS", "receiver.flip_bit=fail@2", 1);
    fix_t f;
    setup(&f);
    chain_t ch;
    chain_build(&ch, 1, 6, 40);
    push_gen(&f, &ch, 1, 0, 256);
    wait_ev(&f, LS_COPY_EV_ASK_AGAIN, 1);
    push_gen(&f, &ch, 1, 0, 256); /* the fault fired once: the resend is clean */
    wait_ev(&f, LS_COPY_EV_INSPECTED, 1);
    chain_free(&ch);
    teardown(&f);
}

typedef struct {
    int runs;
    bool had_copy;
} run_t;

/* Closes the thread's copy as a seed's swap does, leaving none. */
static void close_it(void *ctx, ls_copy_t **copy, ls_copy_item_t *it)
{
    run_t *r = ctx;
    r->runs++;
    r->had_copy = *copy != NULL;
    cr_assert_eq(it->sub, 42);
    cr_assert_eq(it->len, 3);
    cr_assert_eq(memcmp(it->data, "abc", 3), 0);
    ls_copy_close(*copy);
    *copy = NULL;
}

typedef struct {
    fix_t *f;
    uint64_t want; /* bytes of tag 9 consumed */
} want_bytes_t;

static bool all_consumed(void *ctx)
{
    want_bytes_t *w = ctx;
    drain(w->f);
    return consumed(w->f, 9) == w->want;
}

Test(copy_receiver, run_items_get_the_threads_copy_and_may_replace_it)
{
    fix_t f;
    setup(&f);
    chain_t ch;
    chain_build(&ch, 1, 2, 20);
    run_t r = {0};
    ls_copy_item_t *it = ls_copy_item_new(LS_COPY_ITEM_RUN, 3);
    it->sub = 42;
    it->run = close_it;
    it->run_ctx = &r;
    memcpy(it->data, "abc", 3);
    ls_copy_rx_push(f.rx, it);
    push_gen(&f, &ch, 1, 9, 100); /* no copy on the thread any more: ignored, credit back */
    ls_copy_rx_push(f.rx, ls_copy_item_new(LS_COPY_ITEM_ABORT, 0)); /* likewise */
    want_bytes_t w = {&f, ch.len[1]};
    cr_assert(ls_h_wait_for(all_consumed, &w, 10000), "every item ran");
    ls_copy_t *left = ls_copy_rx_stop(f.rx);
    cr_assert_eq(r.runs, 1);
    cr_assert(r.had_copy);
    cr_assert_null(left, "the thread's pointer, which the run item cleared");
    drain(&f);
    cr_assert_eq(count(&f, LS_COPY_EV_DURABLE, 0), 0);
    cr_assert_null(ls_copy_rx_stop(f.rx), "stop twice: nothing more");
    ls_copy_rx_push(f.rx, ls_copy_item_new(LS_COPY_ITEM_ABORT, 0)); /* after stop: dropped */
    chain_free(&ch);
    teardown(&f);
}

Test(copy_receiver, stop_returns_the_copy_and_free_without_start)
{
    fix_t f;
    setup(&f);
    ls_copy_t *c = ls_copy_rx_stop(f.rx);
    cr_assert_eq(c, f.copy, "the caller owns the copy again");
    ls_copy_close(c);
    teardown(&f);
    ls_copy_rx_options_t ro = {0};
    ls_copy_rx_t *rx = ls_copy_rx_new(&ro);
    ls_copy_rx_push(rx, ls_copy_item_new(LS_COPY_ITEM_BEGIN, 0)); /* not started: dropped */
    ls_copy_rx_free(rx);
    ls_copy_rx_free(NULL);
}

/* A RUN item that holds the receiver thread until the test has queued everything behind it. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool go;
} gate_t;

static void wait_gate(void *ctx, ls_copy_t **copy, ls_copy_item_t *it)
{
    (void) copy;
    (void) it;
    gate_t *g = ctx;
    pthread_mutex_lock(&g->mu);
    while (!g->go)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

Test(copy_receiver, generations_queued_back_to_back_share_one_fsync_of_logs)
{
    fix_t f;
    setup(&f);
    chain_t ch;
    chain_build(&ch, 5, 4, 40);
    gate_t gate = {.go = false};
    pthread_mutex_init(&gate.mu, NULL);
    pthread_cond_init(&gate.cv, NULL);
    ls_copy_item_t *it = ls_copy_item_new(LS_COPY_ITEM_RUN, 0);
    it->run = wait_gate;
    it->run_ctx = &gate;
    ls_copy_rx_push(f.rx, it);
    for (int g = 1; g <= 5; g++) /* all queued before the thread sees the first */
        push_gen(&f, &ch, g, 7, 1000);
    pthread_mutex_lock(&gate.mu);
    gate.go = true;
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
    wait_ev(&f, LS_COPY_EV_REPLAYED, 5);
    ls_copy_stats_t st;
    ls_copy_stats(f.copy, &st);
    cr_assert_eq(st.last_durable, 5);
    cr_assert_eq(st.logs_syncs, 1, "one fsync of logs/ for five generations, not %llu",
                 (unsigned long long) st.logs_syncs);
    int last = -1; /* DURABLE(g) and INSPECTED(g) once each, in generation order */
    for (uint64_t g = 1; g <= 5; g++) {
        int d = -1, in = -1;
        for (int i = 0; i < f.nev; i++) {
            if (f.ev[i].generation != g) continue;
            if (f.ev[i].kind == LS_COPY_EV_DURABLE) d = i;
            if (f.ev[i].kind == LS_COPY_EV_INSPECTED) in = i;
        }
        cr_assert_eq(count(&f, LS_COPY_EV_DURABLE, g), 1);
        cr_assert_eq(count(&f, LS_COPY_EV_INSPECTED, g), 1);
        cr_assert(last < d && d < in, "generation %llu: DURABLE then INSPECTED, after the last",
                  (unsigned long long) g);
        last = in;
    }
    for (int i = 0; i < f.nev; i++) /* nothing applied before it was durable in logs/ */
        if (f.ev[i].kind == LS_COPY_EV_REPLAYED) cr_assert_gt(i, last);
    ls_copy_t *copy = ls_copy_rx_stop(f.rx);
    store_matches(copy, &ch);
    ls_copy_close(copy);
    pthread_cond_destroy(&gate.cv);
    pthread_mutex_destroy(&gate.mu);
    chain_free(&ch);
    teardown(&f);
}
