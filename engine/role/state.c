/*
 * The role file (<db>/role), the last line of logs/history, and fencing.
 *
 * Role file: text, one "key value" per line, '#' comments; written whole and durably
 * (ls_write_file_durable: tmp, fsync, rename, directory fsync), so a crash leaves the old or
 * the new file. Keys: role (active|copy|demoted|diverged), epoch (>= 1), follows (node name,
 * may be empty), since (ns), reason (rest of the line), loss (seven numbers: first last
 * generations bytes from_ns to_ns open_generation, then open_held_lsn open_lsn; a file with the
 * seven only reads them as 0). role and epoch are required; an unknown key
 * is an error, so a typo never passes silently.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "core/core.h"
#include "layout/layout.h"
#include "role/role.h"
#include "writer/ctlpage.h"

#define ROLE_FILE_MAX (64 * 1024)

static const char *const kind_names[] = {NULL, "active", "copy", "demoted", "diverged"};

const char *ls_role_kind_name(ls_role_kind_t k)
{
    return k >= LS_ROLE_ACTIVE && k <= LS_ROLE_DIVERGED ? kind_names[k] : "unknown";
}

int ls_role_history_last(const char *dir, uint32_t *epoch, uint64_t *first_gen, char *err,
                         size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof(path), "%.4000s/logs/history", dir);
    *epoch = 0;
    *first_gen = 0;
    ls_layout_hist_t *h = NULL;
    size_t n = 0;
    int rc = ls_layout_history_read(path, &h, &n, err, errlen);
    if (rc) return rc == LS_ENOENT ? 0 : rc;
    if (n) {
        *epoch = h[n - 1].epoch;
        *first_gen = h[n - 1].first_gen;
    }
    free(h);
    return 0;
}

/* Parses one "key value" line into st; NULL or what is wrong. */
static const char *parse_field(char *key, char *val, ls_role_state_t *st, bool *seen_role,
                               bool *seen_epoch)
{
    unsigned long long a, b, c, d, e, f, g;
    char extra;
    /* sscanf's %llu takes "-1" as 2^64 - 1: a sign is refused, not wrapped (fuzzed). */
    bool number = !strcmp(key, "epoch") || !strcmp(key, "since") || !strcmp(key, "loss");
    if (number && strchr(val, '-')) return "numbers cannot be negative";
    if (strcmp(key, "role") == 0) {
        for (int k = LS_ROLE_ACTIVE; k <= LS_ROLE_DIVERGED; k++)
            if (strcmp(val, kind_names[k]) == 0) {
                st->role = (ls_role_kind_t) k;
                *seen_role = true;
                return NULL;
            }
        return "role must be active, copy, demoted or diverged";
    }
    if (strcmp(key, "epoch") == 0) {
        if (sscanf(val, "%llu %c", &a, &extra) != 1 || a == 0 || a > UINT32_MAX)
            return "epoch must be a number from 1 to 4294967295";
        st->epoch = (uint32_t) a;
        *seen_epoch = true;
        return NULL;
    }
    if (strcmp(key, "since") == 0) {
        if (sscanf(val, "%llu %c", &a, &extra) != 1) return "since must be ns since 1970";
        st->since_ns = a;
        return NULL;
    }
    if (strcmp(key, "follows") == 0) {
        if (strlen(val) > LS_ROLE_NAME_MAX) return "follows: node name too long";
        snprintf(st->follows, sizeof(st->follows), "%s", val);
        return NULL;
    }
    if (strcmp(key, "reason") == 0) {
        snprintf(st->reason, sizeof(st->reason), "%s", val);
        return NULL;
    }
    if (strcmp(key, "loss") == 0) {
        unsigned long long h = 0, i = 0;
        int n = sscanf(val, "%llu %llu %llu %llu %llu %llu %llu %llu %llu %c", &a, &b, &c, &d, &e,
                       &f, &g, &h, &i, &extra);
        if (n != 7 && n != 9)
            return "loss needs seven numbers: first last generations bytes from_ns to_ns open "
                   "(and, in block mode, open_held_lsn open_lsn)";
        st->loss = (ls_role_loss_t){a, b, c, d, e, f, g, h, i};
        return NULL;
    }
    return "unknown key (expected role, epoch, follows, since, reason or loss)";
}

static int parse_role(const char *path, char *text, ls_role_state_t *st, char *err, size_t errlen)
{
    bool seen_role = false, seen_epoch = false;
    int lineno = 0;
    for (char *line = text; line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        lineno++;
        char *key = line + strspn(line, " \t\r");
        if (*key && *key != '#') {
            size_t klen = strcspn(key, " \t\r");
            char *val = key + klen;
            if (*val) *val++ = '\0';
            val += strspn(val, " \t");
            val[strcspn(val, "\r")] = '\0';
            const char *why = parse_field(key, val, st, &seen_role, &seen_epoch);
            if (why) {
                ls_msgf(err, errlen, "%s:%d: %s (\"%.40s\")", path, lineno, why, key);
                return LS_ECONFIG;
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    if (!seen_role || !seen_epoch) {
        ls_msgf(err, errlen, "%s: the %s line is missing", path, seen_role ? "epoch" : "role");
        return LS_ECONFIG;
    }
    return 0;
}

/* Epoch of a directory without a role file: history's last, else the newest generation's. */
static int initial_epoch(const char *dir, uint32_t *epoch, char *err, size_t errlen)
{
    uint64_t first;
    int rc = ls_role_history_last(dir, epoch, &first, err, errlen);
    if (rc || *epoch) return rc;
    char logs[4200];
    snprintf(logs, sizeof(logs), "%.4000s/logs", dir);
    ls_layout_list_t l;
    *epoch = 1;
    if (ls_layout_list(logs, NULL, &l, NULL, 0) == 0) {
        if (l.ngens) *epoch = l.gens[l.ngens - 1].epoch; /* sorted by (epoch, generation) */
        ls_layout_list_free(&l);
    }
    return 0;
}

int ls_role_parse(const char *name, const char *text, size_t len, ls_role_state_t *out, char *err,
                  size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (memchr(text, '\0', len)) {
        ls_msgf(err, errlen, "%s: contains a NUL byte (not a text file)", name);
        return LS_ECONFIG;
    }
    char *t = malloc(len + 1);
    if (!t) return LS_ENOMEM;
    memcpy(t, text, len);
    t[len] = '\0';
    int rc = parse_role(name, t, out, err, errlen);
    free(t);
    return rc;
}

int ls_role_load(const char *dir, ls_role_kind_t initial, ls_role_state_t *out, char *err,
                 size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof(path), "%.4000s/role", dir);
    memset(out, 0, sizeof(*out));
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = ls_read_file(path, ROLE_FILE_MAX, &buf, &len);
    if (rc == LS_ENOENT) {
        out->role = initial;
        return initial_epoch(dir, &out->epoch, err, errlen);
    }
    if (rc) {
        ls_msgf(err, errlen, "cannot read %s: %s", path, ls_strerror(rc));
        return rc;
    }
    rc = ls_role_parse(path, (const char *) buf, len, out, err, errlen);
    free(buf);
    return rc;
}

/* A value written on one line: newlines would split it. */
static void one_line(char *s)
{
    for (; *s; s++)
        if (*s == '\n' || *s == '\r') *s = ' ';
}

int ls_role_save(const char *dir, const ls_role_state_t *st, char *err, size_t errlen)
{
    char path[4200], buf[2048], follows[LS_ROLE_NAME_MAX + 1], reason[LS_ROLE_REASON_MAX + 1];
    snprintf(path, sizeof(path), "%.4000s/role", dir);
    if (st->role < LS_ROLE_ACTIVE || st->role > LS_ROLE_DIVERGED || st->epoch == 0) {
        ls_msgf(err, errlen, "%s: refusing to write role %d epoch %u", path, (int) st->role,
                st->epoch);
        return LS_EINVAL;
    }
    snprintf(follows, sizeof(follows), "%s", st->follows);
    snprintf(reason, sizeof(reason), "%s", st->reason);
    one_line(follows);
    one_line(reason);
    const ls_role_loss_t *l = &st->loss;
    int n = snprintf(buf, sizeof(buf),
                     "# logship role file (docs/ACTIVATION.md); written by the engine\n"
                     "role %s\nepoch %u\nfollows %s\nsince %" PRIu64 "\nreason %s\n"
                     "loss %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
                     " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n",
                     kind_names[st->role], st->epoch, follows, st->since_ns, reason,
                     l->first_generation, l->last_generation, l->generations, l->bytes, l->from_ns,
                     l->to_ns, l->open_generation, l->open_held_lsn, l->open_lsn);
    int rc = ls_write_file_durable(path, buf, (size_t) n);
    if (rc) ls_msgf(err, errlen, "cannot write %s: %s", path, ls_strerror(rc));
    return rc;
}

int ls_role_fence(const char *dir, uint32_t epoch, const char *new_active, char *err, size_t errlen)
{
    ls_ctlpage_t *ctl = NULL;
    int rc = ls_ctlpage_open(dir, true, &ctl, err, errlen);
    if (rc == 0) rc = ls_ctlpage_set_fence(ctl, epoch, new_active, err, errlen);
    ls_ctlpage_close(ctl);
    if (rc) return rc;
    ls_role_state_t st = {.role = LS_ROLE_DEMOTED, .epoch = epoch, .since_ns = ls_now_ns()};
    snprintf(st.follows, sizeof(st.follows), "%s", new_active ? new_active : "");
    snprintf(st.reason, sizeof(st.reason), "fenced: %s became active in epoch %u",
             new_active && *new_active ? new_active : "another node", epoch);
    return ls_role_save(dir, &st, err, errlen);
}
