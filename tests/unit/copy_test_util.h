/*
 * Helpers shared by the copy tests (copy_test.c, copy_crash_test.c, copy_paths_test.c, ...): a
 * chain of valid generations with the key/value state they describe (the model), sending a
 * generation in chunks of varied sizes, an event recorder, one test's fixture (copy_fix_t: its
 * directory, chain, events and copy; fix_catch_up), waiting on the copy's figures, and comparing
 * the copy store with the model.
 * Static functions: each test program includes this once.
 */
#ifndef LS_COPY_TEST_UTIL_H
#define LS_COPY_TEST_UTIL_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "copy/copy.h"
#include "core/core.h"
#include "genbuild.h"
#include "harness.h"

/* helpers a test program may leave unused */
#define UTIL static __attribute__((unused))

#define CH_MAX 64 /* generations in a chain */
#define KEYS   48 /* key space of the model */
#define EV_MAX 4096

/* A chain of closed generations 1..n and the state they leave. */
typedef struct {
    int n;                          /* generations built */
    uint8_t *buf[CH_MAX + 1];       /* bytes of generation g (1-based) */
    size_t len[CH_MAX + 1];         /* their lengths */
    uint8_t digest[CH_MAX + 1][32]; /* their digests */
    uint64_t last_lsn[CH_MAX + 1];  /* their last LSNs */
    char model[KEYS][40];           /* value of key i after the whole chain */
    bool present[KEYS];             /* key i exists after the whole chain */
} chain_t;

/* Builds generations 1..n: each has txns transactions of puts (values padded to vsize bytes)
 * and a delete now and then; the model follows. */
UTIL void chain_build(chain_t *ch, int n, int txns, size_t vsize)
{
    memset(ch, 0, sizeof(*ch));
    uint64_t lsn = 1, txid = 1;
    char *val = malloc(vsize + 64);
    for (int g = 1; g <= n; g++) {
        ls_h_gen_spec_t spec;
        ls_h_gen_spec_default(&spec, (uint64_t) g, lsn);
        spec.prev_digest = g > 1 ? ch->digest[g - 1] : NULL;
        spec.first_txid = txid;
        ls_h_gen_t *b = ls_h_gen_new(&spec);
        for (int t = 0; t < txns; t++) {
            for (int k = 0; k < 3; k++) {
                int key = (g * 7 + t * 5 + k * 11) % KEYS;
                char kb[16];
                int kl = snprintf(kb, sizeof(kb), "key%02d", key);
                int vl = snprintf(val, vsize + 64, "g%d-t%d-k%d", g, t, k);
                memset(val + vl, '.', vsize > (size_t) vl ? vsize - (size_t) vl : 0);
                size_t vlen = LS_MAX(vsize, (size_t) vl);
                ls_h_gen_put(b, kb, (size_t) kl, val, vlen);
                snprintf(ch->model[key], sizeof(ch->model[key]), "g%d-t%d-k%d", g, t, k);
                ch->present[key] = true;
            }
            if ((g + t) % 4 == 0) {
                int key = (g * 3 + t) % KEYS;
                char kb[16];
                int kl = snprintf(kb, sizeof(kb), "key%02d", key);
                ls_h_gen_del(b, kb, (size_t) kl);
                ch->present[key] = false;
            }
            ls_h_gen_commit(b);
            txid++;
        }
        ls_h_gen_close(b);
        ch->buf[g] = ls_h_gen_copy(b, &ch->len[g]);
        memcpy(ch->digest[g], ls_h_gen_digest(b), 32);
        lsn += ls_h_gen_count(b);
        ch->last_lsn[g] = lsn - 1;
        ls_h_gen_free(b);
    }
    free(val);
    ch->n = n;
}

UTIL void chain_free(chain_t *ch)
{
    for (int g = 1; g <= ch->n; g++)
        free(ch->buf[g]);
}

/* Sends bytes of generation g in chunks of varied sizes; returns recv_end's code (or the first
 * failing call's). */
UTIL int send_bytes(ls_copy_t *c, uint64_t g, const uint8_t *buf, size_t len,
                    const uint8_t *sender_digest, char *err, size_t errlen)
{
    static const size_t sizes[] = {1, 7, 100, 127, 4096, 333, 65536, 9, 20000};
    int rc = ls_copy_recv_begin(c, 1, g, len, LS_H_GEN_CLOSE_NS, err, errlen);
    if (rc) return rc;
    size_t off = 0;
    for (size_t i = 0; off < len; i++) {
        size_t n = LS_MIN(sizes[i % LS_ARRAY_SIZE(sizes)], len - off);
        if ((rc = ls_copy_recv_data(c, g, off, buf + off, n, err, errlen))) return rc;
        off += n;
    }
    return ls_copy_recv_end(c, g, sender_digest, err, errlen);
}

UTIL int send_gen(ls_copy_t *c, const chain_t *ch, int g)
{
    char err[1024] = "";
    int rc = send_bytes(c, (uint64_t) g, ch->buf[g], ch->len[g], ch->digest[g], err, sizeof(err));
    if (rc) cr_log_info("send of generation %d: %s (%s)", g, ls_err_name(rc), err);
    return rc;
}

UTIL void send_range(ls_copy_t *c, const chain_t *ch, int from, int to)
{
    for (int g = from; g <= to; g++)
        cr_assert_eq(send_gen(c, ch, g), 0, "generation %d received and inspected", g);
}

/* Events seen, from any thread. */
typedef struct {
    pthread_mutex_t mu;
    int n;
    ls_copy_event_kind_t kind[EV_MAX];
    uint64_t gen[EV_MAX];
    int code[EV_MAX];
    char last_msg[1024]; /* message of the last ASK_AGAIN or STATE */
} events_t;

UTIL void on_event(void *ctx, const ls_copy_event_t *ev)
{
    events_t *e = ctx;
    pthread_mutex_lock(&e->mu);
    if (e->n < EV_MAX) {
        e->kind[e->n] = ev->kind;
        e->gen[e->n] = ev->generation;
        e->code[e->n] = ev->code;
        e->n++;
    }
    if (ev->kind == LS_COPY_EV_ASK_AGAIN || ev->kind == LS_COPY_EV_STATE)
        snprintf(e->last_msg, sizeof(e->last_msg), "%s", ev->message);
    pthread_mutex_unlock(&e->mu);
}

UTIL void events_init(events_t *e)
{
    memset(e, 0, sizeof(*e));
    pthread_mutex_init(&e->mu, NULL);
}

/* Events of kind (for generation gen, or any when gen is 0). */
UTIL int events_count(events_t *e, ls_copy_event_kind_t kind, uint64_t gen)
{
    int n = 0;
    pthread_mutex_lock(&e->mu);
    for (int i = 0; i < e->n; i++)
        if (e->kind[i] == kind && (gen == 0 || e->gen[i] == gen)) n++;
    pthread_mutex_unlock(&e->mu);
    return n;
}

UTIL ls_copy_t *copy_open_opts(ls_copy_options_t *o)
{
    ls_copy_t *c = NULL;
    char err[1024] = "";
    int rc = ls_copy_open(o, &c, err, sizeof(err));
    cr_assert_eq(rc, 0, "open %s: %s (%s)", o->dir, ls_err_name(rc), err);
    return c;
}

UTIL ls_copy_t *copy_open(const char *dir, events_t *ev)
{
    ls_copy_options_t o = {.dir = dir, .event_cb = ev ? on_event : NULL, .event_ctx = ev};
    return copy_open_opts(&o);
}

/* One test's copy: a scratch directory, the chain it is sent and the events it reports. */
typedef struct {
    char *dir;    /* the copy's directory (the test's scratch directory) */
    chain_t ch;   /* the generations it is sent */
    events_t ev;  /* what it reported, when opened with the recorder */
    ls_copy_t *c; /* the copy, once fix_open opened it (the test closes it) */
} copy_fix_t;

/* The scratch directory (tag names it), generations 1..n built (chain_build), no copy open. */
UTIL void fix_init(copy_fix_t *f, const char *tag, int n, int txns, size_t vsize)
{
    memset(f, 0, sizeof(*f));
    f->dir = ls_h_tmpdir(tag);
    cr_assert_not_null(f->dir);
    chain_build(&f->ch, n, txns, vsize);
    events_init(&f->ev);
}

/* Opens the copy on f->dir, with the event recorder f->ev or without one. */
UTIL void fix_open(copy_fix_t *f, bool events)
{
    f->c = copy_open(f->dir, events ? &f->ev : NULL);
}

/* fix_open, then the copy started, its replay paused first when asked. */
UTIL void fix_start(copy_fix_t *f, bool events, bool paused)
{
    fix_open(f, events);
    if (paused) ls_copy_pause_replay(f->c, true);
    cr_assert_eq(ls_copy_start(f->c), 0);
}

/* Frees the chain and removes the directory (the copy is closed by then). */
UTIL void fix_fini(copy_fix_t *f)
{
    chain_free(&f->ch);
    ls_h_rmtree_free(f->dir);
}

/* Waiting on the copy's figures. */
typedef struct {
    ls_copy_t *c;
    uint64_t replayed, synced;
} want_t;

UTIL bool reached(void *ctx)
{
    want_t *w = ctx;
    ls_copy_stats_t st;
    ls_copy_stats(w->c, &st);
    return st.last_replayed >= w->replayed && st.last_synced >= w->synced;
}

UTIL void wait_replayed(ls_copy_t *c, uint64_t gen, bool synced)
{
    want_t w = {c, gen, synced ? gen : 0};
    ls_copy_stats_t st;
    bool ok = ls_h_wait_for(reached, &w, 10000);
    ls_copy_stats(c, &st);
    cr_assert(ok, "replayed %llu (want %llu), synced %llu; state %d %s",
              (unsigned long long) st.last_replayed, (unsigned long long) gen,
              (unsigned long long) st.last_synced, st.state, st.reason);
}

/* Compares the copy store key by key with the model. */
UTIL int cmp_key(void *ctx, const void *k, size_t kl, const void *v, size_t vl)
{
    const chain_t *ch = ctx;
    char key[16] = "";
    cr_assert(kl == 5 && !memcmp(k, "key", 3), "unexpected key %.*s", (int) kl, (const char *) k);
    memcpy(key, k, kl);
    int i = atoi(key + 3);
    cr_assert(ch->present[i], "key %s present in the store but deleted by the log", key);
    size_t ml = strlen(ch->model[i]);
    bool same =
        vl >= ml && !memcmp(v, ch->model[i], ml) && (vl == ml || ((const char *) v)[ml] == '.');
    cr_assert(same, "key %s: store has %.*s, log says %s", key, (int) LS_MIN(vl, 30),
              (const char *) v, ch->model[i]);
    return 0;
}

UTIL void store_matches(ls_copy_t *c, const chain_t *ch)
{
    ls_store_t *s = ls_copy_store(c);
    cr_assert_not_null(s);
    cr_assert_eq(ls_store_iterate(s, cmp_key, (void *) ch), 0);
    ls_store_stats_t st;
    cr_assert_eq(ls_store_stats(s, &st), 0);
    uint64_t want = 0;
    for (int i = 0; i < KEYS; i++)
        want += ch->present[i];
    cr_assert_eq(st.entries, want, "store holds %llu keys, the log leaves %llu",
                 (unsigned long long) st.entries, (unsigned long long) want);
}

/* Sends generations from..to to f's copy (started), waits until it replayed and synced them and
 * compares its store with the chain's model. */
UTIL void fix_catch_up(copy_fix_t *f, int from, int to)
{
    send_range(f->c, &f->ch, from, to);
    wait_replayed(f->c, (uint64_t) to, true);
    store_matches(f->c, &f->ch);
}

/* Starts f's copy (generations 1..to received), waits until it replayed and synced them and
 * compares its store with the chain's model. */
UTIL void fix_start_replay(copy_fix_t *f, int to)
{
    cr_assert_eq(ls_copy_start(f->c), 0);
    wait_replayed(f->c, (uint64_t) to, true);
    store_matches(f->c, &f->ch);
}

/* Counts files in dir/sub whose name does (suffix true) or does not end in ".part". */
UTIL int count_files(const char *dir, const char *sub)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, sub);
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

UTIL void gen_path(char *out, size_t len, const char *dir, const char *sub, int g,
                   const char *suffix)
{
    char name[LS_GEN_NAME_MAX];
    ls_gen_name(name, sizeof(name), "E00", 1, (uint64_t) g);
    snprintf(out, len, "%s/%s/%s%s", dir, sub, name, suffix);
}

UTIL bool file_exists(const char *dir, const char *sub, int g)
{
    char p[4200];
    gen_path(p, sizeof(p), dir, sub, g, "");
    return access(p, F_OK) == 0;
}

/* Reopens dir's copy after a crash, resends ch from its resume point (whose digest must be the
 * previous generation's), waits until the store matches ch and checks each generation was applied
 * once; returns the resume point's next generation. */
typedef struct {
    events_t *ev;
    uint64_t gen;
} asked_t;

UTIL bool asked_once(void *ctx)
{
    asked_t *a = ctx;
    return events_count(a->ev, LS_COPY_EV_ASK_AGAIN, a->gen) == 1;
}

/* One bit of a value inside logs/ generation g flipped on disk (after its inspection), the
 * paused replay let go: it applies 1..g-1, finds g damaged by its seal, asks for it again and
 * applies nothing of it or later. The stats are left in *st for the caller's own checks. */
UTIL void damaged_stops_replay(copy_fix_t *f, int g, ls_copy_stats_t *st)
{
    char p[4200];
    gen_path(p, sizeof(p), f->dir, "logs", g, "");
    cr_assert(ls_h_flip_byte(p, f->ch.len[g] / 2, 0x10), "%s", p);
    ls_copy_pause_replay(f->c, false);
    wait_replayed(f->c, (uint64_t) g - 1, true);
    asked_t a = {.ev = &f->ev, .gen = (uint64_t) g};
    cr_assert(ls_h_wait_for(asked_once, &a, 5000), "ASK_AGAIN(%d) reported", g);
    cr_assert(ls_h_contains(f->ev.last_msg, "damaged on disk"), "%s", f->ev.last_msg);
    ls_copy_stats(f->c, st);
    cr_assert_eq(st->last_replayed, (uint64_t) g - 1, "nothing of generation %d or later applied",
                 g);
    cr_assert_eq(st->applied_generations, (uint64_t) g - 1);
    cr_assert_eq(st->last_replayed_lsn, f->ch.last_lsn[g - 1]);
}

UTIL uint64_t converge_after_crash(const char *dir, const chain_t *ch)
{
    ls_copy_t *c = copy_open(dir, NULL);
    ls_copy_resume_t r;
    ls_copy_resume_point(c, &r);
    cr_assert_eq(count_files(dir, "inspect"), 0, "no .part or uninspected file left");
    if (r.next_generation > 1) cr_assert_arr_eq(r.digest, ch->digest[r.next_generation - 1], 32);
    send_range(c, ch, (int) r.next_generation, ch->n);
    cr_assert_eq(ls_copy_start(c), 0);
    wait_replayed(c, (uint64_t) ch->n, true);
    store_matches(c, ch);
    ls_copy_stats_t st;
    ls_copy_stats(c, &st);
    cr_assert_eq(st.applied_generations, (uint64_t) ch->n, "each generation applied once: %llu",
                 (unsigned long long) st.applied_generations);
    ls_copy_close(c);
    return r.next_generation;
}

#endif
