/*
 * `logship dump FILE [--records]`: prints a generation's header, records, trailer and verdict,
 * like eseutil /ml. The verdict comes from ls_gen_scan, the same validation the inspector and the
 * writer's recovery use. Exit 0 only for a valid closed generation, 1 for a damaged or open one
 * or an unreadable file, 2 for bad usage.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <logship/logfmt.h>

#include "cmds.h"
#include "core/core.h"

#define USAGE    "usage: logship dump FILE [--records]\n"
#define KEY_SHOW 64 /* key bytes printed per record */

typedef struct {
    uint64_t off; /* offset of the next record the scan will report */
} dump_ctx_t;

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "logship dump: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n" USAGE);
    return 2;
}

/* "2026-11-18T11:06:40.000000000Z" */
static void iso8601(uint64_t ns, char *out, size_t outlen)
{
    time_t secs = (time_t) (ns / 1000000000u);
    struct tm tm;
    if (!gmtime_r(&secs, &tm)) {
        snprintf(out, outlen, "(invalid: %llu ns)", (unsigned long long) ns);
        return;
    }
    char day[32];
    strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, outlen, "%s.%09lluZ", day, (unsigned long long) (ns % 1000000000u));
}

static void print_key(const uint8_t *k, uint32_t n)
{
    uint32_t show = LS_MIN(n, KEY_SHOW);
    bool printable = true;
    for (uint32_t i = 0; i < show; i++)
        if (k[i] < 0x20 || k[i] > 0x7e || k[i] == '"' || k[i] == '\\') printable = false;
    if (printable) {
        printf("\"%.*s\"", (int) show, (const char *) k);
    } else {
        char hex[2 * KEY_SHOW + 1];
        ls_hex(k, show, hex);
        printf("0x%s", hex);
    }
    if (show < n) printf("... (%u bytes)", n);
}

static const char *type_name(uint8_t type)
{
    switch (type) {
    case LS_REC_PUT:
        return "PUT";
    case LS_REC_DEL:
        return "DEL";
    case LS_REC_COMMIT:
        return "COMMIT";
    default:
        return "?";
    }
}

static int print_record(void *ctx, const ls_record_t *r)
{
    dump_ctx_t *d = ctx;
    printf("  offset %llu: %-6s lsn %llu txid %llu", (unsigned long long) d->off,
           type_name(r->type), (unsigned long long) r->lsn, (unsigned long long) r->txid);
    if (r->type != LS_REC_COMMIT) {
        printf(" key ");
        print_key(r->key, r->key_len);
    }
    if (r->type == LS_REC_PUT) printf(" value %u bytes", r->value_len);
    printf("\n");
    d->off += ls_record_size(r->key_len, r->value_len);
    return 0;
}

static void print_header(const uint8_t *buf, size_t len)
{
    ls_gen_header_t h;
    if (ls_gen_header_decode(buf, len, &h) != 0) {
        printf("header: invalid (see verdict)\n");
        return;
    }
    char dbid[2 * LS_DBID_LEN + 1], prev[2 * LS_DIGEST_SIZE + 1], when[64];
    ls_hex(h.dbid, LS_DBID_LEN, dbid);
    ls_hex(h.prev_digest, LS_DIGEST_SIZE, prev);
    iso8601(h.create_ns, when, sizeof(when));
    printf("header:\n");
    printf("  format version: %d\n", LS_GEN_VERSION);
    printf("  database id:    %s\n", dbid);
    printf("  epoch:          %u\n", h.epoch);
    printf("  generation:     %llu\n", (unsigned long long) h.generation);
    printf("  first lsn:      %llu\n", (unsigned long long) h.first_lsn);
    printf("  created:        %s\n", when);
    printf("  prev digest:    %s\n", prev);
}

static void print_trailer(const ls_gen_info_t *in, const ls_gen_verdict_t *v)
{
    if (!in->closed) {
        if (v->code == 0 || v->code == LS_ENOTRAILER || v->code == LS_ETRUNCATED)
            printf("trailer: missing\n");
        else
            printf("trailer: not verified (scan stopped at offset %llu)\n",
                   (unsigned long long) v->offset);
        return;
    }
    char digest[2 * LS_DIGEST_SIZE + 1], when[64];
    ls_hex(in->trailer.digest, LS_DIGEST_SIZE, digest);
    iso8601(in->trailer.close_ns, when, sizeof(when));
    printf("trailer:\n");
    printf("  record count:   %llu\n", (unsigned long long) in->trailer.record_count);
    printf("  last lsn:       %llu\n", (unsigned long long) in->trailer.last_lsn);
    printf("  payload length: %llu\n", (unsigned long long) in->trailer.payload_len);
    printf("  closed:         %s\n", when);
    printf("  digest:         %s\n", digest);
}

/* For a file without a valid trailer: where its last whole transaction ends (recovery's view). */
static void print_open_view(const uint8_t *buf, size_t len)
{
    ls_gen_expect_t ex = {.allow_open = true};
    ls_gen_info_t in;
    ls_gen_verdict_t v;
    if (ls_gen_scan(buf, len, &ex, NULL, NULL, &in, &v) != 0 || in.closed) return;
    printf("as an open log: last whole transaction (txid %llu, lsn %llu) ends at offset %llu; "
           "%llu bytes after it\n",
           (unsigned long long) in.last_txid, (unsigned long long) in.commit_lsn,
           (unsigned long long) in.commit_end, (unsigned long long) (len - in.commit_end));
}

static int dump(const char *path, bool records)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = ls_read_file(path, LS_GEN_HARD_CAP, &buf, &len);
    if (rc) {
        fprintf(stderr, "logship dump: cannot read '%s': %s\n", path,
                rc == LS_ETOOBIG ? "larger than the generation size cap" : ls_strerror(rc));
        return 1;
    }
    printf("file: %s (%zu bytes)\n", path, len);
    print_header(buf, len);
    dump_ctx_t ctx = {.off = LS_GEN_HEADER_SIZE};
    if (records) printf("records:\n");
    ls_gen_info_t in;
    ls_gen_verdict_t v;
    rc = ls_gen_scan(buf, len, NULL, records ? print_record : NULL, &ctx, &in, &v);
    if (in.header_ok) {
        printf("record count: %llu (%llu commits), last lsn %llu, %llu bytes of records\n",
               (unsigned long long) in.record_count, (unsigned long long) in.commit_count,
               (unsigned long long) in.last_lsn,
               (unsigned long long) (in.valid_end - LS_GEN_HEADER_SIZE));
        print_trailer(&in, &v);
        if (!in.closed) print_open_view(buf, len);
    }
    if (rc == 0)
        printf("verdict: ok\n");
    else
        printf("verdict: %s: %s\n", ls_err_name(v.code), v.msg);
    free(buf);
    return rc == 0 ? 0 : 1;
}

int ls_cmd_dump(int argc, char **argv)
{
    const char *path = NULL;
    bool records = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--records")) {
            records = true;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf(USAGE);
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return usage_error("unknown option '%s'", argv[i]);
        } else if (path) {
            return usage_error("unexpected argument '%s' (dump takes one FILE)", argv[i]);
        } else {
            path = argv[i];
        }
    }
    if (!path) return usage_error("missing FILE (the generation to dump)");
    return dump(path, records);
}
