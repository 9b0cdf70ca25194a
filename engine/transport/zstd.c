/*
 * zstd: per-frame body compression (LS_FRAME_FLAG_ZSTD, proto/proto.h): each compressed body
 * is one complete zstd frame, made with a reused streaming context (ZSTD_CStream, ended at the
 * frame boundary with ZSTD_e_end) and read back with a reused ZSTD_DStream into a buffer bounded
 * by LS_FRAME_MAX_BODY, so a hostile body cannot expand beyond one frame.
 *
 * Runs on the loop thread today (see transport.h): at level 1, ~3 ms per 1 MiB chunk on this
 * machine. A body is compressed only when it is at least LS_CONN_ZSTD_MIN_BODY bytes and shrinks.
 */
#include <stdlib.h>

#include <zstd_errors.h>

#include "transport/internal.h"

int ls__zstd_enable(ls_conn_t *c, int level)
{
    if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel()) return LS_EINVAL;
    if (!c->zc) c->zc = ZSTD_createCStream();
    if (!c->zd) c->zd = ZSTD_createDStream();
    if (!c->ztx) c->ztx = malloc(LS__FRAME_WIRE_MAX);
    if (!c->dbuf) c->dbuf = malloc(LS__FRAME_WIRE_MAX);
    if (!c->zc || !c->zd || !c->ztx || !c->dbuf) return LS_ENOMEM;
    size_t r = ZSTD_CCtx_setParameter(c->zc, ZSTD_c_compressionLevel, level);
    if (ZSTD_isError(r)) return LS_EINVAL;
    ZSTD_CCtx_setParameter(c->zc, ZSTD_c_checksumFlag, 0); /* TLS or our checksum covers it */
    ZSTD_CCtx_setParameter(c->zc, ZSTD_c_contentSizeFlag, 1);
    /* A body is at most LS_FRAME_MAX_BODY (just over 1 MiB): a 2 MiB window is all a valid peer
     * needs, and the bound keeps a hostile one from making us allocate more. */
    ZSTD_DCtx_setParameter(c->zd, ZSTD_d_windowLogMax, 21);
    c->zstd_level = level;
    c->zstd_rx_ok = true;
    return 0;
}

int ls__zstd_compress(ls_conn_t *c, const uint8_t *src, size_t len, uint8_t *dst, size_t cap,
                      size_t *out_len)
{
    *out_len = 0;
    ZSTD_CCtx_reset(c->zc, ZSTD_reset_session_only);
    ZSTD_CCtx_setPledgedSrcSize(c->zc, len);
    ZSTD_inBuffer in = {src, len, 0};
    ZSTD_outBuffer out = {dst, cap, 0};
    size_t left = ZSTD_compressStream2(c->zc, &out, &in, ZSTD_e_end);
    if (ZSTD_isError(left)) {
        if (ZSTD_getErrorCode(left) == ZSTD_error_dstSize_tooSmall) return 0;
        return LS_ECOMPRESS;
    }
    if (left != 0) return 0; /* did not fit in cap: it would not shrink, send it plain */
    *out_len = out.pos;
    return 0;
}

int ls__zstd_decompress(ls_conn_t *c, const uint8_t *src, size_t len, uint8_t *dst, size_t cap,
                        size_t *out_len)
{
    *out_len = 0;
    unsigned long long declared = ZSTD_getFrameContentSize(src, len);
    if (declared == ZSTD_CONTENTSIZE_ERROR) return LS_ECORRUPT;
    if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared > cap) return LS_EFRAMETOOBIG;
    ZSTD_DCtx_reset(c->zd, ZSTD_reset_session_only);
    ZSTD_inBuffer in = {src, len, 0};
    ZSTD_outBuffer out = {dst, cap, 0};
    size_t r = ZSTD_decompressStream(c->zd, &out, &in);
    if (ZSTD_isError(r)) return LS_ECORRUPT;
    if (r != 0 && out.pos == cap) return LS_EFRAMETOOBIG; /* more than a frame's worth */
    /* r == 0: the frame is complete. Anything else means a truncated frame, a body larger than
     * cap, or trailing bytes after the frame: all corrupt. */
    if (r != 0 || in.pos != in.size) return LS_ECORRUPT;
    *out_len = out.pos;
    return 0;
}

void ls__zstd_free(ls_conn_t *c)
{
    ZSTD_freeCStream(c->zc);
    ZSTD_freeDStream(c->zd);
    c->zc = NULL;
    c->zd = NULL;
}
