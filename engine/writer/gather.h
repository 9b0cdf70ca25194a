/*
 * The applier's gathering rule (applier.c's gather()), kept apart from the applier's locks and
 * clock so that tests can drive it with a fake clock (tests/unit/writer_gather_test.c). The
 * caller holds db->mu and passes what it sees: whether a batch is queued or being written, the
 * batches handed over so far, and the committers inside ls_txn_commit.
 *
 * Why gathering pays: each LMDB commit writes every B-tree page its transaction dirtied, and with
 * random keys an apply of a few batches dirties about as many leaves as one of many, so fewer,
 * larger applies write far less (docs/WRITER.md "Commit path", stage 2). Two shapes:
 *  - long (level local; a remote level while many committers wait): gathers while batches keep
 *    coming, until GATHER_LONG_NS after the first, ending once no batch was queued, written or
 *    handed over for GATHER_IDLE_NS (the commits paused);
 *  - short (a remote level with few committers): ends as soon as nothing is queued or being
 *    written, within GATHER_SHORT_NS: a lone committer waits for its copies between its batches,
 *    and a long apply's data.mdb fdatasync beside its next commit stalled it for milliseconds
 *    (bench/README.md "the applier gathering for a fixed time at remote levels").
 * At a remote level the shape follows the committers, with hysteresis: a gather turns long once
 * GATHER_MANY committers are inside a commit at one look, and a long one ends once there were at
 * most GATHER_FEW at every look for GATHER_FEW_NS (the next gather starts short then).
 */
#ifndef LS_WRITER_GATHER_H
#define LS_WRITER_GATHER_H

#include <stdbool.h>
#include <stdint.h>

#define GATHER_LONG_NS  (1000ull * 1000000ull) /* longest a durable batch waits for company */
#define GATHER_IDLE_NS  (2ull * 1000000ull)    /* no batch this long: the commits paused */
#define GATHER_SHORT_NS (100ull * 1000000ull)  /* the bound of a short gather */
#define GATHER_MANY     3u                     /* committers at one look: gather long */
#define GATHER_FEW      1u                     /* at most this many ...  */
#define GATHER_FEW_NS   (10ull * 1000000ull)   /* ... at every look this long: end a long one */

typedef struct {
    bool busy;           /* a batch is queued or being written */
    uint64_t handed;     /* batches handed over to the applier since open */
    unsigned committers; /* threads inside ls_txn_commit (queued, written or waiting for copies) */
} ls__gather_look_t;

typedef struct {
    bool local;         /* commit level local: always long */
    bool lng;           /* this gather is long */
    uint64_t start;     /* when it began (monotonic ns) */
    uint64_t last;      /* the last look that saw a batch coming */
    uint64_t seen;      /* handed at that look */
    uint64_t few_since; /* long at a remote level: since when every look saw few committers
                           (0: the last one saw more) */
} ls__gather_t;

/* Begins a gather at now with the first look. */
void ls__gather_begin(ls__gather_t *g, bool local, const ls__gather_look_t *look, uint64_t now);
/* One look at now: false to apply now, true to go on gathering; then *wake is the latest time
 * to look again (the caller also looks at each batch handed over). */
bool ls__gather_next(ls__gather_t *g, const ls__gather_look_t *look, uint64_t now, uint64_t *wake);

#endif
