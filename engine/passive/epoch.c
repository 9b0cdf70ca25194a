/* The passive machine and epochs (proto/PROTOCOL.md, EPOCH and §9 "Epochs"): what the copy knows
 * of its database's history (set by the caller from engine/role, then learned from what the
 * sources announce and ship), the source's EPOCH announcement checked against it, and every
 * GEN_BEGIN's epoch checked against the epoch its generation belongs to. No generation of an
 * older epoch is ever accepted once the copy knows the history moved on: it is refused with a
 * per-database ERROR LS_EFENCED naming the database, both epochs and the generation, and its
 * GEN_DATA / GEN_END are dropped (their credit given back). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "passive/passive_int.h"

void ls_passive_set_epochs(ls_passive_t *m, const ls_layout_hist_t *h, size_t n, const char *active)
{
    size_t skip = n > LS_PASSIVE_EPOCHS_MAX ? n - LS_PASSIVE_EPOCHS_MAX : 0;
    m->nepochs = 0;
    for (size_t i = skip; i < n; i++)
        ls_layout_history_learn(m->epochs, &m->nepochs, LS_PASSIVE_EPOCHS_MAX, h[i].epoch,
                                h[i].first_gen);
    snprintf(m->epoch_active, sizeof(m->epoch_active), "%s", active ? active : "");
}

uint32_t ls_passive_epoch(const ls_passive_t *m)
{
    return m->nepochs ? m->epochs[m->nepochs - 1].epoch : 0;
}

/* " (activated by NODE)" or "" when not known. */
static const char *by(const ls_passive_t *m, char *buf, size_t len)
{
    if (!m->epoch_active[0]) return "";
    snprintf(buf, len, " (activated by %s)", m->epoch_active);
    return buf;
}

/* Where epoch e starts in what the copy knows (0: not known). */
static uint64_t first_of(const ls_passive_t *m, uint32_t e)
{
    for (size_t i = 0; i < m->nepochs; i++)
        if (m->epochs[i].epoch == e) return m->epochs[i].first_gen;
    return 0;
}

/* The source is refused for this database: ERROR LS_EFENCED with the reason, the copy waits for
 * another source (its state says why; nothing is asked again on this connection). */
static void refuse(ls_passive_t *m, uint64_t now, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void refuse(ls_passive_t *m, uint64_t now, const char *fmt, ...)
{
    char why[LS_PASSIVE_REASON_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    ls_passive_set_state(m, LS_PASSIVE_DISCONNECTED, now, "%s", why);
    m->again_ns = 0;
    ls__passive_send_error(m, LS_EFENCED);
}

void ls__passive_on_epoch(ls_passive_t *m, const ls_proto_epoch_t *e, uint64_t now)
{
    uint32_t known = ls_passive_epoch(m);
    char b[LS_PROTO_NODE_MAX + 32];
    if (e->epoch < known) {
        refuse(m, now,
               "database %s: source %s announces epoch %u, but this copy's history moved on to "
               "epoch %u at generation %llu%s: %s is an old active and must be demoted; none of "
               "its generations is accepted",
               m->database, m->source, e->epoch, known, (unsigned long long) first_of(m, known),
               by(m, b, sizeof(b)), m->source);
        return;
    }
    if (e->first_generation)
        ls_layout_history_learn(m->epochs, &m->nepochs, LS_PASSIVE_EPOCHS_MAX, e->epoch,
                                e->first_generation);
    if (e->active.len && (e->epoch > known || !m->epoch_active[0]))
        snprintf(m->epoch_active, sizeof(m->epoch_active), "%.*s", (int) e->active.len,
                 e->active.ptr);
    if (e->epoch > known)
        ls__passive_act(m, LS_PASSIVE_ACT_LOG,
                        "%s: source %s announces epoch %u (from generation %llu, activated by "
                        "%.*s), newer than the %u known here",
                        m->database, m->source, e->epoch, (unsigned long long) e->first_generation,
                        (int) (e->active.len ? e->active.len : 7),
                        e->active.len ? e->active.ptr : "unknown", known);
}

bool ls__passive_gen_refused(ls_passive_t *m, const ls_proto_gen_begin_t *g, uint64_t now)
{
    uint32_t want = ls_layout_history_epoch_at(m->epochs, m->nepochs, g->generation);
    if (g->epoch >= want) {
        m->refused_gen = 0;
        if (g->epoch > ls_passive_epoch(m) || !first_of(m, g->epoch) ||
            first_of(m, g->epoch) > g->generation)
            ls_layout_history_learn(m->epochs, &m->nepochs, LS_PASSIVE_EPOCHS_MAX, g->epoch,
                                    g->generation);
        return false;
    }
    char b[LS_PROTO_NODE_MAX + 32];
    m->refused_gen = g->generation;
    refuse(m, now,
           "database %s: generation %llu of epoch %u from %s refused: this copy's history "
           "moved on to epoch %u at generation %llu%s; generations of an older epoch are never "
           "accepted",
           m->database, (unsigned long long) g->generation, g->epoch, m->source, want,
           (unsigned long long) first_of(m, want), by(m, b, sizeof(b)));
    return true;
}
