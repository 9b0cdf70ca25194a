/*
 * Seed progress for people: a bar redrawn in place on a terminal, plain periodic lines otherwise
 * (logs, pipes). The rate is smoothed (each sample weighted dt / (dt + RATE_TAU_NS)) so that one
 * slow chunk does not swing the time left; the caller supplies the clock (tests pass their own).
 */
#include <stdio.h>

#include "seed/seed_int.h"

#define RATE_TAU_NS   2000000000.0 /* smoothing time constant of the rate */
#define RATE_MIN_NS   100000000ull /* sample the rate at most this often */
#define TTY_REDRAW_NS 100000000ull /* redraw a bar at most 10 times a second */
#define BAR_WIDTH     30           /* characters of the bar */
#define MIB           (1024.0 * 1024.0)

void ls_seed_progress_init(ls_seed_progress_t *p, uint64_t total, uint64_t now_ns)
{
    memset(p, 0, sizeof(*p));
    p->total = total;
    p->start_ns = p->now_ns = p->rate_ns = now_ns;
}

void ls_seed_progress_update(ls_seed_progress_t *p, uint64_t done, uint64_t now_ns)
{
    p->done = LS_MIN(done, p->total);
    p->now_ns = now_ns;
    if (now_ns < p->rate_ns + RATE_MIN_NS) return;
    double dt = (double) (now_ns - p->rate_ns);
    double sample = (double) (p->done - LS_MIN(p->rate_done, p->done)) * 1e9 / dt;
    double w = dt / (dt + RATE_TAU_NS); /* weight of the new sample */
    p->rate = p->rate > 0 ? p->rate + w * (sample - p->rate) : sample;
    p->rate_ns = now_ns;
    p->rate_done = p->done;
}

unsigned ls_seed_progress_percent(const ls_seed_progress_t *p)
{
    if (p->total == 0) return 100;
    return (unsigned) (p->done * 100 / p->total);
}

double ls_seed_progress_eta(const ls_seed_progress_t *p)
{
    if (p->done >= p->total) return 0;
    if (p->rate <= 0) return -1;
    return (double) (p->total - p->done) / p->rate;
}

/* "1:02:03" or "02:03"; "--:--" when unknown. */
static void fmt_eta(double s, char *out, size_t len)
{
    if (s < 0 || s > 1e8) {
        snprintf(out, len, "--:--");
        return;
    }
    unsigned long t = (unsigned long) (s + 0.5);
    if (t >= 3600)
        snprintf(out, len, "%lu:%02lu:%02lu", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(out, len, "%02lu:%02lu", t / 60, t % 60);
}

void ls_seed_progress_format(const ls_seed_progress_t *p, bool tty, char *out, size_t outlen)
{
    unsigned pct = ls_seed_progress_percent(p);
    double eta = ls_seed_progress_eta(p);
    if (!tty) {
        char left[32] = "unknown time";
        if (eta >= 0) snprintf(left, sizeof(left), "%.0f s", eta);
        snprintf(out, outlen, "seed %u%% %llu/%llu bytes %.1f MiB/s %s left", pct,
                 (unsigned long long) p->done, (unsigned long long) p->total, p->rate / MIB, left);
        return;
    }
    char bar[BAR_WIDTH + 1], left[32];
    unsigned fill = p->total ? (unsigned) (p->done * BAR_WIDTH / p->total) : BAR_WIDTH;
    for (unsigned i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    fmt_eta(eta, left, sizeof(left));
    snprintf(out, outlen, "[%s] %3u%%  %.1f/%.1f MiB  %.1f MiB/s  %s left", bar, pct,
             (double) p->done / MIB, (double) p->total / MIB, p->rate / MIB, left);
}

bool ls_seed_progress_print(ls_seed_progress_t *p, FILE *f, bool tty, unsigned interval_s,
                            bool final)
{
    uint64_t since = p->now_ns - p->printed_ns;
    unsigned pct = ls_seed_progress_percent(p);
    bool due;
    if (tty)
        due = p->printed_ns == 0 || since >= TTY_REDRAW_NS;
    else
        due = p->printed_ns == 0 ||
              since >= (uint64_t) (interval_s ? interval_s : 10) * 1000000000ull ||
              pct / 10 > p->printed_pct / 10;
    if (!due && !final) return false;
    char line[256];
    ls_seed_progress_format(p, tty, line, sizeof(line));
    if (tty)
        fprintf(f, "\r%s\033[K%s", line, final ? "\n" : "");
    else
        fprintf(f, "%s\n", line);
    fflush(f);
    p->printed_ns = p->now_ns ? p->now_ns : 1;
    p->printed_pct = pct;
    return true;
}
