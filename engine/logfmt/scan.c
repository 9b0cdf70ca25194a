/*
 * ls_gen_scan: validation of a generation held in memory, in one pass. It is one feed of the
 * incremental walk (stream.c), so the receiver's streaming check and every whole-buffer reader
 * (inspector at restart, writer recovery, `logship dump`, the source) share one implementation.
 */
#include <stdio.h>
#include <stdlib.h>

#include "logfmt/internal.h"

int ls_gen_scan(const uint8_t *buf, size_t len, const ls_gen_expect_t *expect, ls_record_cb cb,
                void *ctx, ls_gen_info_t *info, ls_gen_verdict_t *verdict)
{
    if (len > LS_GEN_HARD_CAP) {
        ls_gen_verdict_t v_tmp;
        ls_gen_verdict_t *v = verdict ? verdict : &v_tmp;
        if (info) memset(info, 0, sizeof(*info));
        memset(v, 0, sizeof(*v));
        v->code = LS_ETOOBIG;
        v->offset = LS_GEN_HARD_CAP;
        snprintf(v->msg, sizeof(v->msg), "generation of %zu bytes exceeds the cap of %u", len,
                 LS_GEN_HARD_CAP);
        return LS_ETOOBIG;
    }
    struct ls_gen_stream s;
    ls__gen_stream_init(&s, expect, 0);
    ls_gen_stream_feed(&s, buf, len, cb, ctx); /* in place: no unit straddles, nothing is copied */
    int rc = ls_gen_stream_end(&s, info, verdict);
    ls__gen_stream_release(&s);
    return rc;
}

int ls_gen_scan_file(const char *path, const ls_gen_expect_t *expect, ls_record_cb cb, void *ctx,
                     ls_gen_info_t *info, ls_gen_verdict_t *verdict)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = ls_read_file(path, LS_GEN_HARD_CAP, &buf, &len);
    if (rc) {
        ls_gen_verdict_t v_tmp;
        ls_gen_verdict_t *v = verdict ? verdict : &v_tmp;
        if (info) memset(info, 0, sizeof(*info));
        memset(v, 0, sizeof(*v));
        v->code = rc;
        if (rc == LS_ETOOBIG)
            snprintf(v->msg, sizeof(v->msg), "cannot read %s: larger than the cap of %u bytes",
                     path, LS_GEN_HARD_CAP);
        else
            snprintf(v->msg, sizeof(v->msg), "cannot read %s: %s", path, ls_strerror(rc));
        return rc;
    }
    rc = ls_gen_scan(buf, len, expect, cb, ctx, info, verdict);
    free(buf);
    return rc;
}
