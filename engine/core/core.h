/*
 * core: the bottom layer every other module uses.
 *
 * Little-endian byte access, assertions, the clock, leveled logging, durable file-system helpers
 * (write/fsync/rename/directory fsync), the two checksums of the generation format and test-only
 * fault points. Nothing here knows about the network, the event loop or LMDB.
 *
 * Threading: everything here is thread-safe; the log sink may be set once at start.
 */
#ifndef LS_CORE_H
#define LS_CORE_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include <logship/error.h>
#include <logship/log.h>

/* ---- assertions ------------------------------------------------------------------------- */
/* LS_ASSERT: debug builds only, for arguments and invariants. LS_CHECK: always on, for
 * invariants whose breach would corrupt a store. Bytes from disk or network are never asserted. */
void ls__panic(const char *file, int line, const char *expr) __attribute__((noreturn));
#define LS_CHECK(e) ((e) ? (void) 0 : ls__panic(__FILE__, __LINE__, #e))
#ifdef NDEBUG
#define LS_ASSERT(e) ((void) sizeof(!(e))) /* not evaluated; its operands still count as used */
#else
#define LS_ASSERT(e) LS_CHECK(e)
#endif

#define LS_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define LS_MIN(a, b)     ((a) < (b) ? (a) : (b))
#define LS_MAX(a, b)     ((a) > (b) ? (a) : (b))

/* ---- little-endian access (unaligned-safe) ---------------------------------------------- */
static inline void ls_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t) v;
    p[1] = (uint8_t) (v >> 8);
}
static inline void ls_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t) (v >> (8 * i));
}
static inline void ls_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t) (v >> (8 * i));
}
static inline uint16_t ls_get16(const uint8_t *p)
{
    return (uint16_t) (p[0] | (p[1] << 8));
}
static inline uint32_t ls_get32(const uint8_t *p)
{
    return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) |
           ((uint32_t) p[3] << 24);
}
static inline uint64_t ls_get64(const uint8_t *p)
{
    return (uint64_t) ls_get32(p) | ((uint64_t) ls_get32(p + 4) << 32);
}

/* ---- clock ------------------------------------------------------------------------------ */
uint64_t ls_now_ns(void);  /* wall clock, UTC, ns since the epoch (what trailers record) */
uint64_t ls_mono_ns(void); /* monotonic clock, ns (for timeouts and durations) */
/* pthread_cond_timedwait until deadline, an ls_mono_ns() time; cond must be on CLOCK_MONOTONIC
 * (pthread_condattr_setclock). Returns its result: 0, or ETIMEDOUT once the deadline passed. */
int ls_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mu, uint64_t deadline);

/* ---- messages --------------------------------------------------------------------------- */
/* The one message helper: formats into out (len bytes, always terminated, cut when too long);
 * out NULL or len 0: nothing. Every module fills its err buffers and reasons through it. */
void ls_msgf(char *out, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The same with a va_list, formatted apart first so that an argument may be out itself (a state's
 * reason rebuilt from the previous one); at most 1023 bytes of the message are kept. */
void ls_vmsgf(char *out, size_t len, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
/* The same, returning code: `return ls_errf(err, errlen, LS_EIO, "cannot read %s", path);` */
int ls_errf(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- logging ---------------------------------------------------------------------------- */
/* Levels, the handler and ls_log_stderr are public (logship/log.h): the library only hands
 * messages to the handler the application installed. */
void ls_log(ls_log_level_t level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define LS_LOGE(comp, ...) ls_log(LS_LOG_ERROR, comp, __VA_ARGS__)
#define LS_LOGW(comp, ...) ls_log(LS_LOG_WARN, comp, __VA_ARGS__)
#define LS_LOGI(comp, ...) ls_log(LS_LOG_INFO, comp, __VA_ARGS__)
#define LS_LOGD(comp, ...) ls_log(LS_LOG_DEBUG, comp, __VA_ARGS__)

/* ---- files (all return 0 or a negative LS_E* code; errno-derived) ------------------------ */
/* write/pwrite/read/pread the whole buffer, retrying on EINTR and short transfers.
 * ls_read_full/ls_pread_full return the bytes read (short only at end of file) or an error. */
int ls_write_full(int fd, const void *buf, size_t len);
int ls_pwrite_full(int fd, const void *buf, size_t len, off_t off);
ssize_t ls_read_full(int fd, void *buf, size_t len);
ssize_t ls_pread_full(int fd, void *buf, size_t len, off_t off);
int ls_fsync(int fd);     /* fsync, mapping errors */
int ls_fdatasync(int fd); /* fdatasync, mapping errors */
int ls_fsync_dir(const char *dir);
/* rename(from, to) then fsync of the directory of `to` (both must be in the same directory). */
int ls_rename_durable(const char *from, const char *to);
/* mkdir -p with mode 0700 for created directories; fsyncs each parent it created an entry in. */
int ls_mkdir_p(const char *path);
/* Reads a whole (small) file into a malloc'd buffer, refusing files larger than max. */
int ls_read_file(const char *path, size_t max, uint8_t **out, size_t *len);
/* Writes a small file durably: tmp file, fsync, rename, directory fsync. */
int ls_write_file_durable(const char *path, const void *buf, size_t len);
/* Directory part of path into out (size outlen). */
void ls_path_dirname(const char *path, char *out, size_t outlen);

/* ---- checksums ---------------------------------------------------------------------------- */
/* The per-record checksum: XXH3-64 seeded, folded to 32 bits. See docs/FORMAT.md for the
 * choice and the figures measured on this machine. */
uint64_t ls_hash64(const void *buf, size_t len, uint64_t seed);
uint32_t ls_cksum32(const void *buf, size_t len, uint64_t seed);

/* The generation digest: SHA-256 through OpenSSL's EVP, incremental. */
#define LS_DIGEST_LEN 32
typedef struct ls_sha256 ls_sha256_t;
ls_sha256_t *ls_sha256_new(void); /* NULL on allocation failure */
void ls_sha256_reset(ls_sha256_t *h);
void ls_sha256_update(ls_sha256_t *h, const void *buf, size_t len);
/* Writes the digest of everything updated so far without disturbing the running state. */
void ls_sha256_peek(const ls_sha256_t *h, uint8_t out[LS_DIGEST_LEN]);
void ls_sha256_final(ls_sha256_t *h, uint8_t out[LS_DIGEST_LEN]);
void ls_sha256_free(ls_sha256_t *h);
void ls_sha256(const void *buf, size_t len, uint8_t out[LS_DIGEST_LEN]);
/* The whole-file seal: XXH3-128 of every byte of a file, incremental. Not part of the format:
 * the passive computes it over a generation's bytes as it writes them, so that reading the file
 * back can prove it unchanged at ~20 GB/s instead of checking each record again (docs/COPY.md). */
#define LS_SEAL_LEN 16
typedef struct ls_seal ls_seal_t;
ls_seal_t *ls_seal_new(void); /* NULL on allocation failure */
void ls_seal_reset(ls_seal_t *h);
void ls_seal_update(ls_seal_t *h, const void *buf, size_t len);
/* Writes the seal of everything updated so far (canonical big-endian bytes). */
void ls_seal_final(const ls_seal_t *h, uint8_t out[LS_SEAL_LEN]);
void ls_seal_free(ls_seal_t *h);
void ls_seal(const void *buf, size_t len, uint8_t out[LS_SEAL_LEN]);
/* Lowercase hex of n bytes into out (2n+1 bytes). */
void ls_hex(const uint8_t *buf, size_t n, char *out);

/* ---- fault points (test builds only) ------------------------------------------------------ */
/* LS_FAULT("name") evaluates to true when the fault point is armed with the action "fail"; it
 * never returns when armed with "exit" (_exit(LS_FAULT_EXIT_CODE)) or "abort" (SIGABRT);
 * "sleep:MS" sleeps then returns false; "hold:PATH" waits until the file PATH exists (checked
 * every millisecond, at most 60 s, then says so on stderr) and returns false, so a test holds a
 * thread at a point for exactly as long as it needs, not for a guessed time. Points are armed by
 * the LS_FAULTS environment variable, read once: "name=action[@N][,name=action...]" where @N fires
 * only at the N-th hit (1-based). In builds without LS_FAULTS_ENABLED the macro is the constant
 * false. */
#define LS_FAULT_EXIT_CODE 86
#ifdef LS_FAULTS_ENABLED
bool ls__fault_hit(const char *name);
#define LS_FAULT(name) ls__fault_hit(name)
#else
#define LS_FAULT(name) false
#endif

#endif
