/*
 * seed: the network-free core of seeding (issue 7, docs/SEED.md) — building or rebuilding a
 * passive copy from a snapshot of the active's store.
 *
 * Active side (snapshot.c, snapshot_direct.c, handoff.c): ls_seed_snapshot_new() copies the active
 * store's LMDB environment into <db>/seed-tmp/<unique>/data.mdb with mdb_env_copy2(MDB_CP_COMPACT)
 * under one read transaction held only for that local copy (a long network stream never pins pages
 * of the live map; the cost is disk: about the live data size, on the active's file system, until
 * ls_seed_snapshot_free). It reads the copy's meta record (last LSN L), finds in <db>/logs/ the
 * generation N holding L (closed or the current log) and the digest of N-1 (N's header), then
 * streams the copy in chunks with a running check (XXH3-128, or SHA-256 for an older peer).
 *
 * Passive side (install.c, swap.c): ls_seed_install_begin() refuses to replace a copy holding
 * data unless told to, then writes the stream into <copy>.seed-new/store/data.mdb (+ empty
 * inspect/ and logs/); ls_seed_install_end() checks the whole-stream digest, opens the new store
 * (database id, meta names L) and rewrites its meta record for the hand-off (generation N,
 * digest_generation N-1, lsn L: engine/copy then asks for N and replays only records > L);
 * ls_seed_install_commit() swaps it in with one rename (renameat2 RENAME_EXCHANGE; two renames
 * with a recovery rule where the file system lacks it). ls_seed_recover() finishes or undoes a
 * swap a crash interrupted (the crash table is in docs/SEED.md).
 *
 * The seed connection's protocol (the server and client sessions, the snapshot worker, the swap
 * around the open copy) is in session.h, built on these.
 *
 * Lifecycle: snapshot: ls_seed_snapshot_new -> ls_seed_snapshot_info -> ls_seed_snapshot_read
 * until it returns 0 bytes -> ls_seed_snapshot_digest -> ls_seed_snapshot_free (removes the local
 * copy). Install: ls_seed_recover (at daemon start, before ls_copy_open) ... ls_seed_install_begin
 * -> ls_seed_install_data ... -> ls_seed_install_end -> (close the ls_copy_t of this copy) ->
 * ls_seed_install_commit -> ls_seed_install_free -> ls_copy_open. Freeing an install that was not
 * committed removes the partial new copy; the old copy is never touched before the swap.
 * Errors are sticky: after a failed call on an install only ls_seed_install_free is allowed.
 *
 * Threading: every call does disk I/O and hashing, so none belongs on the event loop's thread:
 * the daemon runs a snapshot on a worker thread of its own and an install on its receiver
 * thread. One object is used by one thread at a time; different objects are independent.
 * ls_seed_progress_* is pure (no I/O but the FILE it is given).
 *
 * Fault points (test builds): seed.install.half_data (after the chunk that crosses half the
 * stream), seed.install.before_swap (ready marker durable, nothing renamed),
 * seed.install.no_exchange (behave as if RENAME_EXCHANGE were unsupported),
 * seed.install.between_renames (fallback only: old copy renamed away, new not yet in),
 * seed.install.after_swap (new copy in place, old not yet removed), seed.snapshot.corrupt
 * ("fail": flips a byte of the chunk after hashing it, so the stream fails verification);
 * seed.sha256 (in the daemon: neither offer nor accept LS_FEAT_SEEDXXH, as an older node).
 */
#ifndef LS_SEED_H
#define LS_SEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <logship/logfmt.h>

/* What a snapshot holds and where the copy resumes: the fields of SEED_BEGIN (proto/PROTOCOL.md)
 * plus the transaction id. */
typedef struct {
    uint8_t dbid[LS_DBID_LEN];           /* database id */
    uint64_t total_bytes;                /* stream size, bytes (the compacted data.mdb) */
    uint64_t last_lsn;                   /* L: last LSN the snapshot holds (0: empty store) */
    uint64_t generation;                 /* N: the copy asks for N next and replays records > L
                                            of it; N holds L, or starts at L + 1 when the one
                                            holding L was already removed from logs/ */
    uint8_t prev_digest[LS_DIGEST_SIZE]; /* digest of N-1; zeros when N is 1 */
    uint32_t epoch;                      /* epoch of N */
    uint64_t txid;                       /* txid of L's transaction (not on the wire for a
                                            seed: the snapshot's own meta record carries it) */
    /* an incremental resync (docs/SEED.md, "Incremental resync"): the stream is key entries */
    bool resync;               /* RESYNC_BEGIN: the stream is the keys read at L, not a store */
    uint64_t split_generation; /* resync: the split the keys start from */
    uint64_t keys;             /* resync: entries in the stream */
    uint64_t store_bytes;      /* resync: the server's store size, bytes (what a seed moves) */
    char fallback[160];        /* a resync asked for but a full seed taken: why ("" else) */
    bool xxh; /* the stream's check (SEED_END) is XXH3-128, not SHA-256: both sides negotiated
                 LS_FEAT_SEEDXXH (not on the wire: the snapshot takes it from its options, the
                 client from the WELCOME) */
} ls_seed_info_t;

/* An incremental resync asked by an old active (the RESYNC frames, assembled). */
typedef struct {
    uint64_t split_generation;            /* the last generation both sides hold the same */
    uint32_t split_epoch;                 /* its epoch */
    uint8_t split_digest[LS_DIGEST_SIZE]; /* its digest */
    const uint8_t *keys;                  /* the keys the client touched after the split: u16
                                             length + bytes each (PROTOCOL.md, RESYNC) */
    size_t keys_len;                      /* bytes */
    bool too_many;                        /* more keys than the server takes: a full seed */
} ls_seed_resync_req_t;

/* ---- active side: snapshot ------------------------------------------------------------- */

typedef struct ls_seed_snapshot ls_seed_snapshot_t;

/* Zero means the default for every field except db_dir. Strings are copied. */
typedef struct {
    const char *db_dir; /* the active database directory (<db>/store, <db>/logs); required */
    const char *prefix; /* generation file name prefix; "E00" */
    size_t chunk_max;   /* largest chunk ls_seed_snapshot_read returns; 1 MiB (the SEED_DATA
                           maximum) */
    const ls_seed_resync_req_t *resync; /* NULL: a seed (the compacted store). Else the stream
                           is the resync's key entries read under one read transaction at L, and
                           info.resync is set; falls back to a seed (info.fallback says why)
                           when logs/ no longer holds every generation after the split or the
                           request has too_many keys. LS_ELINEAGE when the split's digest is not
                           this node's */
    bool direct; /* a seed streamed from the compacting copy (docs/SEED.md, "Streaming
                    from the compaction"): no local copy unless ls_seed_snapshot_spill;
                    the read transaction and the store's shared lock are held until the
                    stream ends or spills. Falls back to the local copy when the store
                    keeps committing while the copy begins. Not for a resync */
    bool xxh;    /* the stream's check is XXH3-128 (the connection negotiated LS_FEAT_SEEDXXH);
                    false: SHA-256, for a peer without it (docs/SEED.md, "The stream's check") */
} ls_seed_snapshot_options_t;

/* Takes a snapshot of <db>/store without stopping its writers (another process may hold it) and
 * works out the hand-off (ls_seed_info_t). *out is owned by the caller until
 * ls_seed_snapshot_free. err (errlen bytes, may be NULL) receives a message naming the path and
 * values. Errors: LS_EINVAL, LS_ENOENT (no store), LS_ENOSPC (not enough room for the local
 * copy: the message gives both figures), LS_ESTORE, LS_EGAP (the generation holding L is no
 * longer in logs/), LS_ELINEAGE/LS_EDBID (the log and the store disagree), LS_EIO, LS_ENOMEM.
 * Do not call it in a process that holds the same store open through ls_db_open while another
 * process uses it too: LMDB's POSIX locks are per process (as for ls_store_peek_meta). */
int ls_seed_snapshot_new(const ls_seed_snapshot_options_t *opts, ls_seed_snapshot_t **out,
                         char *err, size_t errlen);
/* The snapshot's figures. Borrowed, valid until ls_seed_snapshot_free. */
const ls_seed_info_t *ls_seed_snapshot_info(const ls_seed_snapshot_t *snap);
/* Reads the next chunk of the stream into buf (up to LS_MIN(cap, chunk_max) bytes), hashes it
 * and sets *offset (stream offset of buf[0]) and *len; *len is 0 at the end. 0 or LS_EIO (the
 * local copy changed size or cannot be read), LS_ESTATE after an earlier error. */
int ls_seed_snapshot_read(ls_seed_snapshot_t *snap, void *buf, size_t cap, uint64_t *offset,
                          size_t *len);
/* True while the stream is read from the compacting copy itself (direct, not spilled, not at
 * its end): the store's read transaction is still open. */
bool ls_seed_snapshot_direct(const ls_seed_snapshot_t *snap);
/* Writes the rest of a direct stream to the local copy at disk speed (hashing it), ending the
 * read transaction; the following reads come from that file. 0 (also when not direct),
 * LS_ENOSPC (not enough room: nothing changed, the stream stays direct), LS_EIO, LS_ESTORE. */
int ls_seed_snapshot_spill(ls_seed_snapshot_t *snap, char *err, size_t errlen);
/* The check of the whole stream (what SEED_END carries): XXH3-128 in the first 16 bytes, the
 * rest zero, with opts->xxh, else SHA-256. LS_ESTATE until every byte was read. */
int ls_seed_snapshot_digest(const ls_seed_snapshot_t *snap, uint8_t out[LS_DIGEST_SIZE]);
/* Removes the local copy and frees snap. NULL: no-op. */
void ls_seed_snapshot_free(ls_seed_snapshot_t *snap);
/* Removes every leftover of <db>/seed-tmp/ (a crash during a snapshot): call at daemon start,
 * before any snapshot of this database. 0 or LS_EIO. */
int ls_seed_snapshot_cleanup(const char *db_dir);

/* ---- passive side: install ------------------------------------------------------------- */

typedef struct ls_seed_install ls_seed_install_t;

/* Zero means the default for every field except copy_dir. Strings are copied. */
typedef struct {
    const char *copy_dir;  /* the copy's directory (what ls_copy_open is given); required */
    const uint8_t *dbid;   /* expected database id (LS_DBID_LEN bytes) or NULL: the stream's */
    bool delete_existing;  /* the operator's --delete-existing: replace a copy holding data */
    bool copy_failed;      /* the caller says the copy is Failed or Diverged: may be replaced */
    uint64_t max_bytes;    /* refuse a larger stream; 0: only the free space limits it */
    uint64_t store_map_mb; /* map size to open the new store with, MiB; at least (and by
                              default) 1.5 x the stream + 64 MiB */
    const char *prefix;    /* resync: generation file prefix; "E00" */
} ls_seed_install_options_t;

/* Starts installing the stream described by info beside the copy, in <copy>.seed-new/. Borrows
 * info. *out owned by the caller until ls_seed_install_free. Errors: LS_EINVAL (bad options or
 * info), LS_EDBID (info names another database than opts->dbid), LS_EEXIST (the copy holds data
 * and neither delete_existing nor copy_failed: the message says why and what to do), LS_EBUSY (a
 * seed of this copy is under way, or an interrupted one awaits ls_seed_recover), LS_ETOOBIG
 * (beyond max_bytes), LS_ENOSPC (less free space than total_bytes), LS_EIO, LS_ENOMEM. */
int ls_seed_install_begin(const ls_seed_install_options_t *opts, const ls_seed_info_t *info,
                          ls_seed_install_t **out, char *err, size_t errlen);
/* Writes len bytes at offset (must equal the bytes received so far) and hashes them. Borrows
 * data. LS_EPROTO (not contiguous, empty, or past total_bytes), LS_ENOSPC, LS_EIO, LS_ESTATE. */
int ls_seed_install_data(ls_seed_install_t *in, uint64_t offset, const void *data, size_t len,
                         char *err, size_t errlen);
/* The stream is complete: size reached, digest (SEED_END's) equal to the one computed, data
 * fdatasynced, the new store opened and checked (database id; meta names L), its meta record
 * rewritten for the hand-off and synced. Nothing of the old copy is touched. LS_ETRUNCATED
 * (fewer bytes than announced), LS_EDIGEST, LS_EDBID, LS_ECORRUPT (meta does not name L),
 * LS_ESTORE, LS_EIO, LS_ESTATE. */
int ls_seed_install_end(ls_seed_install_t *in, const uint8_t digest[LS_DIGEST_SIZE], char *err,
                        size_t errlen);
/* Swaps the verified new copy in (after ls_seed_install_end; the copy must be closed: no
 * ls_copy_t open on it) and removes the old one. From the moment the ready marker is durable a
 * crash is finished by ls_seed_recover (the new copy wins). LS_EIO, LS_ESTATE. */
int ls_seed_install_commit(ls_seed_install_t *in, char *err, size_t errlen);
/* ls_seed_install_commit in its two halves, so that the new copy can be opened before the old one
 * is removed (ls_seed_copy_swap_open, session.h). _swap: the ready marker, then the swap: the new
 * copy is in place (an incremental resync: its whole commit). _finish (after _swap): removes the
 * replaced copy and the marker. A crash between them is finished by ls_seed_recover (rules 3
 * and 4); the copy may be open meanwhile (neither touches its files). LS_EIO, LS_ESTATE. */
int ls_seed_install_swap(ls_seed_install_t *in, char *err, size_t errlen);
int ls_seed_install_finish(ls_seed_install_t *in, char *err, size_t errlen);
/* Whether the copy in copy_dir holds data as ls_seed_install_begin judges it (a store file, or a
 * file in logs/ or inspect/), with what in what (len bytes). Only looks: the store is never
 * opened (opening an LMDB environment rewrites its lock file). */
bool ls_seed_copy_holds_data(const char *copy_dir, char *what, size_t len);
/* Bytes received so far (for progress). */
uint64_t ls_seed_install_done(const ls_seed_install_t *in);
/* The directory a full seed's commit puts in place of the copy (<copy>.seed-new; valid while in
 * is), where a caller may add files that must arrive with the new copy in the same rename (a
 * role file); NULL for an incremental resync, whose stream is applied in place. */
const char *ls_seed_install_new_dir(const ls_seed_install_t *in);
/* Frees in; an install not committed has its partial new copy removed. NULL: no-op. */
void ls_seed_install_free(ls_seed_install_t *in);

/* ---- incremental resync (resync.c, keys.c) ---------------------------------------------- */

/* The keys an old active must have fetched from the new active after the split: every key a
 * record of the files in <dir>/diverged/<epoch>/ touched (PUT, DEL; scanned with logfmt, a
 * damaged file up to the damage), and those of the records in <dir>/logs/ after the store's LSN
 * (a store behind its log). Sorted, distinct, as a RESYNC key sequence (u16 length + bytes) in
 * *keys (malloc'd, the caller frees; NULL when none), *count keys. LS_EIO, LS_ENOMEM. */
int ls_seed_resync_keys(const char *dir, const char *prefix, uint32_t epoch, uint8_t **keys,
                        size_t *keys_len, uint64_t *count, char *err, size_t errlen);

/* With info.resync, the install writes the stream in <copy>/resync/stream (the copy's store
 * stays in place) and ls_seed_install_end checks size, digest and every entry; commit writes
 * <copy>/resync/READY durably, then applies every entry to <copy>/store in ONE LMDB write
 * transaction whose meta record is the hand-off (lsn L, generation N, digest of N-1, epoch,
 * txid, checkpoint L), syncs, removes an empty current log left in logs/ and the resync
 * directory. A crash before the commit of that transaction leaves the store untouched and the
 * marked stream, which ls_seed_recover applies again (idempotent: the same puts and deletes). */

/* What ls_seed_recover found and did. */
typedef enum {
    LS_SEED_RECOVER_NOTHING = 0, /* no seed leftovers */
    LS_SEED_RECOVER_REMOVED,     /* an unfinished new copy was removed; the old one stands */
    LS_SEED_RECOVER_UNDONE,      /* the old copy was renamed back into place */
    LS_SEED_RECOVER_FINISHED     /* the verified new copy was (or had been) swapped in; the old
                                    one and the marker were removed */
} ls_seed_recover_t;

/* Finishes or undoes an install a crash interrupted, from the directories alone (docs/SEED.md:
 * the crash table). Call at daemon start, before ls_copy_open on copy_dir, with no seed of it
 * running. *what (may be NULL) says what it did. 0, LS_EIO, LS_EINVAL, LS_ESTATE (<copy> and
 * <copy>.seed-old both exist with no marker: no install leaves that; the message asks for a hand).
 */
int ls_seed_recover(const char *copy_dir, ls_seed_recover_t *what, char *err, size_t errlen);

/* ---- progress -------------------------------------------------------------------------- */

/* Progress of one seed, for the command line and status. Zero-initialised by
 * ls_seed_progress_init. Times are monotonic ns given by the caller (tests pass their own). */
typedef struct {
    uint64_t total;       /* bytes in the stream */
    uint64_t done;        /* bytes so far */
    uint64_t start_ns;    /* when it began */
    uint64_t now_ns;      /* time of the last update */
    double rate;          /* bytes/s, smoothed (exponential, ~2 s) */
    uint64_t rate_ns;     /* time of the last rate sample */
    uint64_t rate_done;   /* done at the last rate sample */
    uint64_t printed_ns;  /* time of the last line printed (0: none yet) */
    uint64_t printed_pct; /* percent printed last (plain lines) */
} ls_seed_progress_t;

void ls_seed_progress_init(ls_seed_progress_t *p, uint64_t total, uint64_t now_ns);
void ls_seed_progress_update(ls_seed_progress_t *p, uint64_t done, uint64_t now_ns);
/* Percent done, 0..100 (100 for an empty stream). */
unsigned ls_seed_progress_percent(const ls_seed_progress_t *p);
/* Seconds left at the current rate; -1 when unknown (no rate yet). */
double ls_seed_progress_eta(const ls_seed_progress_t *p);
/* Formats one line without a newline: a bar (tty) "[#####.....]  45%  45.0/100.0 MiB  12.3 MiB/s
 * 00:04 left", or a plain line "seed 45% 47185920/104857600 bytes 12.3 MiB/s 4 s left". */
void ls_seed_progress_format(const ls_seed_progress_t *p, bool tty, char *out, size_t outlen);
/* Prints when due: on a tty the bar, redrawn in place ("\r") at most 10 times a second; else a
 * plain line every interval_s seconds (0: 10) or every 10 percent, whichever comes first. final
 * forces a last line (ended with a newline). Returns true when it printed. */
bool ls_seed_progress_print(ls_seed_progress_t *p, FILE *f, bool tty, unsigned interval_s,
                            bool final);

#endif
