/*
 * heartbeat: the HEARTBEAT frames (proto/proto.h), the round-trip figures, and the receive
 * deadline that declares a silent peer dead.
 *
 * RTT: a heartbeat carries our wall-clock send time back as echo_ns together with how long the
 * peer held it (echo_delay_ns), so rtt = now - echo_ns - echo_delay_ns, whatever the two
 * intervals. Smoothed as TCP does (srtt = 7/8 srtt + 1/8 sample). The clock offset estimate is
 * peer send_ns + rtt/2 - now.
 *
 * Deadline: one timer. When it fires it compares the time since bytes last arrived (any bytes,
 * not only heartbeats) with dead_ms and either closes the connection (LS_ETIMEDOUT) or re-arms
 * for the remainder, so arrivals cost no timer operation.
 */
#include <stdio.h>

#include "transport/internal.h"

#define MS          1000000ull      /* ns per ms */
#define RTT_SANE_NS (60000ull * MS) /* samples above a minute are clock jumps, ignored */

static void hb_send(ls_conn_t *c)
{
    if (c->state != LS__CONN_READY) return;
    ls_frame_t f = {.type = LS_FRAME_HEARTBEAT};
    f.heartbeat.seq = ++c->hb_seq;
    f.heartbeat.send_ns = ls_now_ns();
    f.heartbeat.echo_ns = c->peer_hb_send_ns;
    f.heartbeat.echo_delay_ns = c->peer_hb_send_ns ? ls_mono_ns() - c->peer_hb_rx_mono : 0;
    uint8_t buf[64];
    ssize_t n = ls_frame_encode(&f, buf, sizeof(buf));
    LS_CHECK(n > LS_FRAME_HEADER_SIZE); /* ahead of the frame queue: a backlog of chunks must not
                                           starve the peer's deadline */
    ls__conn_send_now(c, LS_FRAME_HEARTBEAT, buf + LS_FRAME_HEADER_SIZE,
                      (size_t) n - LS_FRAME_HEADER_SIZE);
}

static void hb_cb(uv_timer_t *t)
{
    hb_send(t->data);
}

void ls__hb_start(ls_conn_t *c)
{
    hb_send(c);
    uv_timer_start(&c->hb_timer, hb_cb, c->opts.heartbeat_ms, c->opts.heartbeat_ms);
}

static void dead_cb(uv_timer_t *t)
{
    ls_conn_t *c = t->data;
    uint64_t now = ls_mono_ns();
    if ((c->paused || ls__off_rx_full(c)) && c->state == LS__CONN_READY)
        c->stats.last_rx_mono_ns = now; /* we are the ones not reading */
    uint64_t quiet = now - c->stats.last_rx_mono_ns, limit = c->opts.dead_ms * MS;
    if (quiet < limit) {
        uv_timer_start(&c->dead_timer, dead_cb, (limit - quiet + MS - 1) / MS, 0);
        return;
    }
    if (c->state != LS__CONN_READY)
        ls__conn_fail(c, LS_ETIMEDOUT, "no connection and handshake with %s within %u ms", c->peer,
                      c->opts.dead_ms);
    else
        ls__conn_fail(c, LS_ETIMEDOUT,
                      "nothing received from %s for %llu ms (timeout %u ms): "
                      "peer declared dead",
                      c->peer, (unsigned long long) (quiet / MS), c->opts.dead_ms);
}

void ls__dead_arm(ls_conn_t *c)
{
    c->stats.last_rx_mono_ns = ls_mono_ns();
    uv_timer_start(&c->dead_timer, dead_cb, c->opts.dead_ms, 0);
}

void ls__hb_stop(ls_conn_t *c)
{
    uv_timer_stop(&c->hb_timer);
    uv_timer_stop(&c->dead_timer);
}

int ls__hb_receive(ls_conn_t *c, const ls_frame_header_t *h, const uint8_t *body, size_t len)
{
    ls_frame_t f;
    char err[256];
    int rc = ls_frame_decode_body(h, body, len, &f, err, sizeof(err));
    if (rc) return ls__conn_fail(c, rc, "bad heartbeat from %s: %s", c->peer, err);
    const ls_proto_heartbeat_t *hb = &f.heartbeat;
    c->peer_hb_send_ns = hb->send_ns;
    c->peer_hb_rx_mono = ls_mono_ns();
    if (!hb->echo_ns) return 0;
    uint64_t now = ls_now_ns();
    if (now < hb->echo_ns + hb->echo_delay_ns) return 0; /* clock stepped back */
    uint64_t rtt = now - hb->echo_ns - hb->echo_delay_ns;
    if (rtt > RTT_SANE_NS) return 0;
    ls_conn_stats_t *s = &c->stats;
    s->rtt_last_ns = rtt;
    s->rtt_smoothed_ns = s->rtt_smoothed_ns ? (7 * s->rtt_smoothed_ns + rtt) / 8 : rtt;
    s->clock_offset_ns = (int64_t) (hb->send_ns + rtt / 2) - (int64_t) now;
    return 0;
}
