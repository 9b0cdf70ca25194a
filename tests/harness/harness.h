/*
 * Test harness shared by the Criterion tests: scratch directories, running the programs under
 * test, waiting on a condition with a deadline (never a fixed sleep), and small file helpers.
 * Every process a test starts it stops by pid (ls_h_spawn / ls_h_kill / ls_h_wait).
 */
#ifndef LS_TEST_HARNESS_H
#define LS_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A fresh directory under $TMPDIR (or /tmp), removed by ls_h_rmtree. Returns a malloc'd path. */
char *ls_h_tmpdir(const char *tag);
void ls_h_rmtree(const char *path);
void ls_h_rmtree_free(char *path); /* ls_h_rmtree, then free(path) (ls_h_tmpdir's) */
/* Reader slots in an LMDB environment's lock file (mdb_reader_list's header line excluded);
 * env is an MDB_env * (void * so that this header needs no lmdb.h). */
int ls_h_reader_slots(void *env);
/* Path of a program in build/bin ("logship", "logshipd", ...), static storage per call site. */
const char *ls_h_bin(const char *name);

/* Runs argv (argv[0] is a path) to completion; stdout and stderr captured into malloc'd strings
 * (NULL to discard). Returns the exit status, or 128+signal. Gives up after timeout_ms (killing
 * the child) and returns -1. */
int ls_h_run(char *const argv[], char **out, char **err, int timeout_ms);
/* Same with a shell command line (sh -c). */
int ls_h_sh(const char *cmd, char **out, char **err, int timeout_ms);
/* Starts argv in the background with stdout/stderr appended to logpath (NULL: /dev/null),
 * extra environment entries "K=V" (NULL-terminated, may be NULL). Returns the pid or -1. */
pid_t ls_h_spawn(char *const argv[], const char *logpath, char *const env[]);
/* Sends sig to pid. */
void ls_h_kill(pid_t pid, int sig);
/* Waits for pid up to timeout_ms; returns its exit status (128+signal) or -1 on timeout. */
int ls_h_wait(pid_t pid, int timeout_ms);
/* Runs fn(ctx) in a forked child with LS_FAULTS=faults (NULL: none; the variable is read once
 * per process, so the parent must not have hit a fault point) and waits for it; returns its exit
 * status (0 when fn returns, 128+signal when killed) or -1 when the fork or the wait failed.
 * fn must not call Criterion: it reports through its exit status (LS_H_CHILD_CHECK). */
int ls_h_in_child(void (*fn)(void *ctx), void *ctx, const char *faults);

/* Kills (SIGCONT, then SIGKILL, then waits up to 10 s) every process of this user whose command
 * line holds needle as one of its arguments, found by pid in /proc: for processes a test started
 * through another program (a resource agent) whose pid file may be gone. Returns how many. */
int ls_h_kill_by_arg(const char *needle);

/* Lines (newlines) in the file at path, 0 when it cannot be read (an --ack-log's acknowledged
 * ids); waits until it has at least want of them, false after timeout_ms. */
size_t ls_h_file_lines(const char *path);
bool ls_h_wait_file_lines(const char *path, size_t want, int timeout_ms);

/* A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, read back, closed). */
int ls_h_free_port(void);

/* Polls cond(ctx) every few ms until it is true (returns true) or timeout_ms passes (false). */
bool ls_h_wait_for(bool (*cond)(void *ctx), void *ctx, int timeout_ms);

/* Out of descriptors on purpose: RLIMIT_NOFILE of pid (0: this process) lowered to its lowest
 * free descriptor + spare, so that the (spare+1)-th descriptor it makes next is refused with
 * EMFILE; *old_soft: the soft limit to put back with ls_h_fd_unlimit. False when /proc or
 * prlimit fails. */
bool ls_h_fd_limit(pid_t pid, int spare, uint64_t *old_soft);
bool ls_h_fd_unlimit(pid_t pid, uint64_t old_soft);

/* Entries of dir other than . and .. (hidden ones count), -1 when it cannot be opened. */
int ls_h_dir_entries(const char *dir);

/* Criterion tests: text (an error message) holds s, else the test fails saying which. */
#define LS_H_ASSERT_HAS(text, s)                                                                   \
    cr_assert(strstr((text), (s)) != NULL, "message \"%s\" lacks \"%s\"", (text), (s))

/* In a forked child, where Criterion's assertions do not belong (they are the test process's):
 * a failed check prints where and exits with status 3 (needs <stdio.h> and <unistd.h>). */
#define LS_H_CHILD_CHECK(e)                                                                        \
    do {                                                                                           \
        if (!(e)) {                                                                                \
            fprintf(stderr, "child: %s:%d: %s\n", __FILE__, __LINE__, #e);                         \
            _exit(3);                                                                              \
        }                                                                                          \
    } while (0)

/* Whole-file helpers. */
/* XORs the byte at off of the file at path with mask (damage on disk); false when the file
 * cannot be read or written or is not longer than off. */
bool ls_h_flip_byte(const char *path, size_t off, uint8_t mask);
int ls_h_write_file(const char *path, const void *buf, size_t len);
uint8_t *ls_h_read_file(const char *path, size_t *len); /* malloc'd, NULL on error */
bool ls_h_contains(const char *haystack, const char *needle);

#endif
