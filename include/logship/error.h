/*
 * logship error codes.
 *
 * Every fallible logship function returns 0 or a negative LS_E* code from the table below.
 * The band -30000..-30999 stays clear of libuv's (-4095..-1, errno-like) and LMDB's
 * (-30800..-30780: LMDB uses MDB_KEYEXIST = -30799 etc., so we start below it at -31000).
 * Each code is classed transient (retrying the same operation later can succeed: a reset
 * connection, a full disk) or fatal (stop and tell the operator: a checksum, a lineage, a gap).
 *
 * Threading: the functions here are pure and thread-safe.
 */
#ifndef LOGSHIP_ERROR_H
#define LOGSHIP_ERROR_H

#include <stdbool.h>

/* X(name, value, transient?, message) */
#define LS_ERRNO_MAP(X)                                                                            \
    X(IO, -31000, 1, "input/output error")                                                         \
    X(NOSPC, -31001, 1, "no space left on device")                                                 \
    X(NOMEM, -31002, 1, "out of memory")                                                           \
    X(INVAL, -31003, 0, "invalid argument")                                                        \
    X(NOENT, -31004, 0, "no such file or directory")                                               \
    X(EXIST, -31005, 0, "already exists")                                                          \
    X(BADMAGIC, -31010, 0, "bad magic number")                                                     \
    X(BADVERSION, -31011, 0, "unsupported format version")                                         \
    X(HDRCKSUM, -31012, 0, "header checksum mismatch")                                             \
    X(RECCKSUM, -31013, 0, "record checksum mismatch")                                             \
    X(TRUNCATED, -31014, 0, "truncated data")                                                      \
    X(NOTRAILER, -31015, 0, "missing trailer")                                                     \
    X(BADTRAILER, -31016, 0, "bad trailer")                                                        \
    X(DIGEST, -31017, 0, "digest mismatch")                                                        \
    X(LSNORDER, -31018, 0, "LSN not increasing")                                                   \
    X(BADRECORD, -31019, 0, "malformed record")                                                    \
    X(DBID, -31020, 0, "database id mismatch")                                                     \
    X(LINEAGE, -31021, 0, "generation does not chain to the previous one")                         \
    X(GAP, -31022, 0, "generation missing")                                                        \
    X(TOOBIG, -31023, 0, "too large")                                                              \
    X(CORRUPT, -31024, 0, "corrupt data")                                                          \
    X(STORE, -31025, 0, "store error")                                                             \
    X(CLOSED, -31026, 0, "object is closed")                                                       \
    X(BUSY, -31027, 1, "resource busy")                                                            \
    X(PROTO, -31030, 0, "protocol violation")                                                      \
    X(FRAMETRUNC, -31031, 0, "truncated frame")                                                    \
    X(FRAMETOOBIG, -31032, 0, "frame too large")                                                   \
    X(UNSUPPORTED, -31033, 0, "unsupported protocol version or feature")                           \
    X(AUTH, -31034, 0, "peer authentication failed")                                               \
    X(TLS, -31035, 0, "TLS error")                                                                 \
    X(CONNRESET, -31036, 1, "connection reset")                                                    \
    X(TIMEDOUT, -31037, 1, "timed out")                                                            \
    X(CONNREFUSED, -31038, 1, "connection refused")                                                \
    X(COMPRESS, -31039, 0, "compression error")                                                    \
    X(CONFIG, -31040, 0, "configuration error")                                                    \
    X(STATE, -31041, 0, "operation not allowed in this state")                                     \
    X(DIVERGED, -31042, 0, "histories diverged")                                                   \
    X(ADDRINUSE, -31043, 1, "address already in use")                                              \
    X(ADDRNOTAVAIL, -31044, 0, "address not available on this host")                               \
    X(UNREACH, -31045, 1, "network or host unreachable")                                           \
    X(ACCES, -31046, 0, "permission denied")                                                       \
    X(FENCED, -31047, 0, "database fenced: another node is active")

typedef enum {
#define LS__ERR_ENUM(name, val, tr, msg) LS_E##name = val,
    LS_ERRNO_MAP(LS__ERR_ENUM)
#undef LS__ERR_ENUM
} ls_errno_t;

/* Message for code (also for negative errno values and LMDB codes). Never NULL; static storage. */
const char *ls_strerror(int code);
/* Symbolic name ("LS_EDIGEST", "EIO", ...). Never NULL; static storage. */
const char *ls_err_name(int code);
/* True when retrying later may succeed (LS_ENOSPC, LS_ECONNRESET, -EINTR, ...). */
bool ls_err_is_transient(int code);
/* Maps a positive errno value to an LS_E* code (ENOSPC -> LS_ENOSPC, others -> LS_EIO ...). */
int ls_err_from_errno(int err);

#endif
