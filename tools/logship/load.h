/* `logship load`: its options and run state shared by cmd_load.c (the workload, the threads, the
 * ack log) and load_opts.c (parsing, the report). */
#ifndef LS_TOOLS_LOAD_H
#define LS_TOOLS_LOAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <logship/db.h>

typedef struct {
    uint64_t transactions;      /* total transactions */
    uint64_t records;           /* records per transaction */
    uint64_t key_space;         /* distinct keys */
    uint64_t value_size;        /* bytes per value */
    uint64_t seed;              /* base seed */
    double rate;                /* transactions per second overall; 0: unpaced */
    uint64_t threads;           /* committing threads */
    double compressibility;     /* target zstd -1 ratio of the values */
    uint64_t target_size;       /* generation target size, bytes; 0: the writer's default (1 MiB) */
    ls_db_commit_level_t level; /* --sync: commit level */
    uint64_t sync_copies;       /* --sync-copies: copies a commit waits for (0: the default 1) */
    uint64_t sync_timeout_ms;   /* --sync-timeout: ms a batch waits for them (0: forever) */
    const char *ack_log;        /* file acknowledged commits are appended to (NULL: none) */
    int ack_fd;                 /* its descriptor (-1: none) */
    uint64_t run;               /* this run's number against the database (--ack-log only) */
    atomic_uint_fast64_t next_txn; /* last transaction number handed out in this run */
    bool pregenerate;              /* draw every record before the clock starts */
    pthread_mutex_t mu;            /* --pregenerate: guards ready and go */
    pthread_cond_t cond;           /* signalled when ready grows and when go is set */
    uint64_t ready;                /* threads done generating */
    bool go;                       /* the clock started: commit */
} load_opts_t;

/* Parses argv into o and *dir; returns 0 or the exit code 2 after a message. */
int ls_load_parse_args(int argc, char **argv, load_opts_t *o, const char **dir);

/* Prints the run's figures on stdout: s from ls_db_stats, records and bytes committed, secs
 * until the last commit returned, closed_secs until the close returned. */
void ls_load_report(const load_opts_t *o, const ls_db_stats_t *s, uint64_t records, uint64_t bytes,
                    double secs, double closed_secs);

#endif
