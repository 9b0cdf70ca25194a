/*
 * A pair of real logshipd daemons (node-a active, node-b passive) for one run, and the
 * per-generation monitor.
 *
 * Generations are pre-generated once (`logship load`, daemons stopped) into a master set; a run
 * "closes" generation N by hard-linking the master file into the active's logs/ under its closed
 * name and fsyncing the directory: what the writer's roll does last (rename + dir fsync), without
 * the writer's own speed in the figure. Timing of generation N:
 *   closed   = the moment the link exists (UTC ns, taken right after link()); the pick-up
 *              (sync_after) fsyncs the directory once the generation is durable on the copy,
 *              outside its window, as the raw copy's pick-up has no source-side sync either
 *   durable  = the passive's receiver renamed it out of .part into inspect/ (inotify IN_MOVED_TO,
 *              the first event for that name in inspect/ or logs/); the receiver does that after
 *              the file's fsync, so the figure lacks only the directory fsync that follows
 *   replayed = last_replayed_time_ns of the active's status, polled every 10 ms: the moment the
 *              active received replayed(N); a jump from M to N gives N's time to M+1..N (the
 *              replayer applies them in one transaction anyway)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include <logship/logfmt.h>

#include "core/core.h"
#include "lb.h"

void lb_times_init(lb_times_t *t, uint64_t ngen)
{
    t->ngen = ngen;
    t->closed_ns = calloc(ngen + 1, sizeof(uint64_t));
    t->durable_ns = calloc(ngen + 1, sizeof(uint64_t));
    t->replayed_ns = calloc(ngen + 1, sizeof(uint64_t));
}

void lb_times_free(lb_times_t *t)
{
    free(t->closed_ns);
    free(t->durable_ns);
    free(t->replayed_ns);
    memset(t, 0, sizeof(*t));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

int lb_list_gens(const char *logs, char ***names, size_t *n)
{
    DIR *d = opendir(logs);
    size_t cap = 0;
    *names = NULL;
    *n = 0;
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        uint32_t ep;
        uint64_t g;
        if (ls_gen_name_parse(e->d_name, LS_GEN_PREFIX_DEFAULT, &ep, &g) != 0) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 256;
            *names = realloc(*names, cap * sizeof(char *));
        }
        (*names)[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    if (*n) qsort(*names, *n, sizeof(char *), cmp_str);
    return 0;
}

static int write_conf(const char *path, const char *body)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(body, f);
    return fclose(f);
}

static int make_confs(lb_pair_t *p, const char *certs, const lb_pair_cfg_t *cfg, int port,
                      int connect_port)
{
    char conf[3 * LB_PATH], tls[2][1024], path[LB_PATH + 16];
    for (int i = 0; i < 2; i++) {
        char n = (char) ('a' + i);
        if (cfg->tls)
            snprintf(tls[i], sizeof(tls[i]),
                     "[tls]\nca = %s/ca.pem\ncert = %s/node-%c.pem\nkey = %s/node-%c.key\n", certs,
                     certs, n, certs, n);
        else
            snprintf(tls[i], sizeof(tls[i]), "[tls]\ninsecure_plaintext = true\n");
    }
    const char *addr = cfg->addr_b ? cfg->addr_b : "127.0.0.1";
    char comp[64] = "";
    if (cfg->zstd) snprintf(comp, sizeof(comp), "compression = zstd:%d\n", cfg->zstd);
    /* For a seed the passive connects to the active: the active listens, the passive names it
     * in a [source] section. */
    char seed_a[128] = "", seed_b[128] = "";
    int seed_port = cfg->seed_store ? lb_free_port() : 0;
    if (seed_port > 0) {
        snprintf(seed_a, sizeof(seed_a), "[listen]\naddress = 127.0.0.1:%d\n", seed_port);
        snprintf(seed_b, sizeof(seed_b), "[source node-a]\nnetwork = bench 127.0.0.1:%d\n",
                 seed_port);
    }
    snprintf(conf, sizeof(conf),
             "[node]\nname = node-a\ndata_dir = %s/node-a\ncontrol_socket = %s\nlog_level = "
             "warn\n%s%s[target node-b]\nnetwork = bench %s:%d\n%s[database db1]\nrole = "
             "active\ntargets = node-b\n",
             p->dir, p->sock_a, tls[0], seed_a, addr, connect_port, comp);
    snprintf(path, sizeof(path), "%s/node-a.conf", p->dir);
    if (write_conf(path, conf)) return -1;
    snprintf(conf, sizeof(conf),
             "[node]\nname = node-b\ndata_dir = %s/node-b\ncontrol_socket = %s\nlog_level = "
             "warn\n%s[listen]\naddress = %s:%d\n%s[database db1]\nrole = passive\nsource = "
             "node-a\n%s",
             p->dir, p->sock_b, tls[1], addr, port, seed_b,
             cfg->hold_replay ? "replay_lag = 1h\n" : "");
    snprintf(path, sizeof(path), "%s/node-b.conf", p->dir);
    return write_conf(path, conf);
}

static pid_t start_daemon(lb_pair_t *p, const char *bin, const char *ns, char node)
{
    char exe[LB_PATH], conf[LB_PATH + 16], log[LB_PATH + 16];
    snprintf(exe, sizeof(exe), "%s/logshipd", bin);
    snprintf(conf, sizeof(conf), "%s/node-%c.conf", p->dir, node);
    snprintf(log, sizeof(log), "%s/node-%c.log", p->dir, node);
    char *plain[] = {exe, "-c", conf, NULL};
    char *inns[] = {"ip", "netns", "exec", (char *) ns, exe, "-c", conf, NULL};
    return lb_spawn(ns ? inns : plain, log);
}

static int wait_answer(const char *sock, double timeout_s)
{
    lb_status_t st;
    uint64_t end = lb_mono_ns() + (uint64_t) (timeout_s * 1e9);
    while (lb_mono_ns() < end) {
        if (lb_status(sock, &st) == 0) return 0;
        lb_sleep_ns(5000000);
    }
    return -1;
}

static int drop(lb_pair_t *p, const char *stage, uint64_t gen, uint64_t *closed_ns, bool sync)
{
    char name[LS_GEN_NAME_MAX], from[LB_PATH + 64], to[LB_PATH + 64];
    ls_gen_name(name, sizeof(name), LS_GEN_PREFIX_DEFAULT, 1, gen);
    snprintf(from, sizeof(from), "%s/%s", stage, name);
    snprintf(to, sizeof(to), "%s/%s", p->logs_a, name);
    if (link(from, to) < 0) {
        fprintf(stderr, "logship-bench: link %s: %s\n", to, strerror(errno));
        return -1;
    }
    if (closed_ns) *closed_ns = lb_now_ns();
    return !sync || ls_fsync_dir(p->logs_a) == 0 ? 0 : -1;
}

/* The active's database for a seed: the workload's store, the current log and the last two
 * closed generations (stage is the workload's logs/, its store beside it). */
static int seed_setup(lb_pair_t *p, const char *stage)
{
    char from[LB_PATH + 300], to[LB_PATH + 300], store[LB_PATH + 16];
    char **names;
    size_t n;
    lb_fmt(store, sizeof(store), "%s/../store", p->logs_a);
    lb_fmt(from, sizeof(from), "%s/../store/data.mdb", stage);
    lb_fmt(to, sizeof(to), "%s/data.mdb", store);
    if (ls_mkdir_p(store) || lb_copy_file(from, to, true)) return -1;
    lb_fmt(from, sizeof(from), "%s/E00.log", stage);
    lb_fmt(to, sizeof(to), "%s/E00.log", p->logs_a);
    if (lb_copy_file(from, to, true) || lb_list_gens(stage, &names, &n) || n < 2) return -1;
    for (size_t i = n - 2; i < n; i++) {
        lb_fmt(from, sizeof(from), "%s/%s", stage, names[i]);
        lb_fmt(to, sizeof(to), "%s/%s", p->logs_a, names[i]);
        if (link(from, to) < 0) return -1;
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return ls_fsync_dir(p->logs_a) == 0 ? 0 : -1;
}

/* Files named prefix* in the passive's pool of preallocated .part files (docs/COPY.md). */
static int pool_files(const lb_pair_t *p, const char *prefix)
{
    char dir[LB_PATH + 32];
    snprintf(dir, sizeof(dir), "%s/node-b/db1/pool", p->dir);
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d)) != NULL;)
        n += !strncmp(e->d_name, prefix, strlen(prefix));
    if (d) closedir(d);
    return n;
}

int lb_pair_start(lb_pair_t *p, const char *dir, const char *bin, const char *certs,
                  const char *stage, const lb_pair_cfg_t *cfg)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->dir, sizeof(p->dir), "%s", dir);
    snprintf(p->logs_a, sizeof(p->logs_a), "%s/node-a/db1/logs", dir);
    snprintf(p->insp_b, sizeof(p->insp_b), "%s/node-b/db1/inspect", dir);
    snprintf(p->sock_a, sizeof(p->sock_a), "%s/a.sock", dir);
    snprintf(p->sock_b, sizeof(p->sock_b), "%s/b.sock", dir);
    char hist_from[LB_PATH + 16], hist_to[LB_PATH + 16];
    snprintf(hist_from, sizeof(hist_from), "%s/history", stage ? stage : ".");
    snprintf(hist_to, sizeof(hist_to), "%s/history", p->logs_a);
    int port = lb_free_port(), connect_port = port;
    p->port = port;
    p->hold_replay = cfg->hold_replay;
    if (cfg->shape_mbit > 0) {
        if (!(p->shaper = lb_shaper_start(port, cfg->shape_mbit, cfg->shape_rtt_ms))) return -1;
        connect_port = lb_shaper_port(p->shaper);
    }
    if (port < 0 || ls_mkdir_p(p->logs_a) || make_confs(p, certs, cfg, port, connect_port))
        goto fail;
    if (!cfg->empty) lb_copy_file(hist_from, hist_to, true);
    if (cfg->seed_store && seed_setup(p, stage)) goto fail;
    p->pid_b = start_daemon(p, bin, cfg->netns_b, 'b');
    if (p->pid_b < 0 || wait_answer(p->sock_b, 10)) goto fail;
    p->pid_a = start_daemon(p, bin, cfg->netns_a, 'a');
    if (p->pid_a < 0 || wait_answer(p->sock_a, 10)) goto fail;
    if (cfg->seed_store || cfg->empty) return 0;
    if (drop(p, stage, 1, NULL, true)) goto fail;
    uint64_t end = lb_mono_ns() + 30000000000ull;
    lb_status_t st;
    while (lb_mono_ns() < end) {
        if (lb_status(p->sock_a, &st) == 0 && (p->hold_replay ? st.copied : st.replayed) >= 1) {
            p->pool_ready = pool_files(p, "ready-"); /* the state the backlog meets */
            p->pool_bare = pool_files(p, "bare-");
            return 0;
        }
        lb_sleep_ns(2000000);
    }
    fprintf(stderr, "logship-bench: generation 1 not replayed within 30 s (see %s/node-*.log)\n",
            dir);
fail:
    lb_pair_stop(p);
    return -1;
}

void lb_pair_cpu(lb_pair_t *p)
{
    p->cpu_a = lb_cpu_s(p->pid_a);
    p->cpu_b = lb_cpu_s(p->pid_b);
}

void lb_pair_stop(lb_pair_t *p)
{
    if (p->pid_a > 0) lb_stop(p->pid_a, 5000);
    if (p->pid_b > 0) lb_stop(p->pid_b, 5000);
    p->pid_a = p->pid_b = 0;
    lb_shaper_stop(p->shaper);
    p->shaper = NULL;
}

typedef struct {
    lb_pair_t *p;     /* the pair watched */
    lb_times_t *t;    /* filled */
    uint64_t last;    /* stop once this generation is replayed */
    atomic_bool stop; /* set by the main thread on timeout */
    atomic_bool done; /* last replayed */
    int ifd;          /* inotify */
} monitor_t;

static void read_events(monitor_t *m)
{
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n = read(m->ifd, buf, sizeof(buf));
    uint64_t now = lb_now_ns();
    for (char *q = buf; n > 0 && q < buf + n;) {
        const struct inotify_event *e = (const struct inotify_event *) q;
        uint32_t ep;
        uint64_t g;
        if (e->len && ls_gen_name_parse(e->name, LS_GEN_PREFIX_DEFAULT, &ep, &g) == 0 &&
            g <= m->t->ngen && !m->t->durable_ns[g])
            m->t->durable_ns[g] = now;
        q += sizeof(*e) + e->len;
    }
}

#define STATUS_EVERY_NS 10000000ull /* 10 ms */

static void *monitor_main(void *arg)
{
    monitor_t *m = arg;
    uint64_t seen = 0, copied = 0, next_status = 0;
    struct pollfd pf = {.fd = m->ifd, .events = POLLIN};
    for (unsigned i = 0; !atomic_load(&m->stop); i++) {
        if (poll(&pf, 1, 2) > 0) read_events(m);
        if (i % 10 == 0) {
            uint64_t a = lb_proc_kib(m->p->pid_a, "RssAnon:");
            uint64_t b = lb_proc_kib(m->p->pid_b, "RssAnon:");
            if (a > m->p->anon_a) m->p->anon_a = a;
            if (b > m->p->anon_b) m->p->anon_b = b;
        }
        /* The status is asked at most every STATUS_EVERY_NS: each answer costs the active's loop
         * (≈45 µs under load, cJSON), which the raw copy does not pay. The times it gives are the
         * daemon's own (replayed_ns, copied_ns), so asking less often delays only noticing them. */
        uint64_t now = lb_mono_ns();
        if (now < next_status) continue;
        next_status = now + STATUS_EVERY_NS;
        lb_status_t st;
        if (lb_status(m->p->sock_a, &st) != 0) continue;
        if (m->p->hold_replay) {
            for (uint64_t g = copied + 1; g <= st.copied && g <= m->t->ngen; g++)
                if (!m->t->durable_ns[g]) m->t->durable_ns[g] = st.copied_ns;
            if (st.copied > copied) copied = st.copied;
            if (copied >= m->last) {
                seen = copied;
                break;
            }
            continue;
        }
        for (uint64_t g = seen + 1; g <= st.replayed && g <= m->t->ngen; g++) {
            m->t->replayed_ns[g] = st.replayed_ns;
            if (!m->t->durable_ns[g]) m->t->durable_ns[g] = st.copied_ns; /* missed event */
        }
        if (st.replayed > seen) seen = st.replayed;
        if (seen >= m->last) break;
    }
    while (poll(&pf, 1, 0) > 0)
        read_events(m);
    atomic_store(&m->done, seen >= m->last);
    return NULL;
}

int lb_pair_ship(lb_pair_t *p, const char *stage, uint64_t first, uint64_t last, double rate,
                 double timeout_s, lb_times_t *t)
{
    char logs_b[LB_PATH + 16];
    snprintf(logs_b, sizeof(logs_b), "%s/node-b/db1/logs", p->dir);
    monitor_t m = {.p = p, .t = t, .last = last};
    m.ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (m.ifd < 0 || inotify_add_watch(m.ifd, p->insp_b, IN_MOVED_TO) < 0 ||
        inotify_add_watch(m.ifd, logs_b, IN_MOVED_TO) < 0) {
        fprintf(stderr, "logship-bench: inotify on %s: %s\n", p->insp_b, strerror(errno));
        if (m.ifd >= 0) close(m.ifd);
        return -1;
    }
    pthread_t th;
    pthread_create(&th, NULL, monitor_main, &m);
    uint64_t t0 = lb_mono_ns();
    int rc = 0;
    for (uint64_t g = first; g <= last && rc == 0; g++) {
        if (rate > 0) lb_sleep_until_mono(t0 + (uint64_t) ((double) (g - first) / rate * 1e9));
        rc = drop(p, stage, g, &t->closed_ns[g], !p->sync_after);
    }
    uint64_t end = lb_mono_ns() + (uint64_t) (timeout_s * 1e9);
    for (unsigned i = 0; rc == 0 && !atomic_load(&m.done) && lb_mono_ns() < end; i++) {
        lb_sleep_ns(1000000);
        if (i % 100 == 99 && (!lb_alive(&p->pid_a) || !lb_alive(&p->pid_b))) {
            fprintf(stderr, "logship-bench: a daemon exited during the run (see %s/node-*.log)\n",
                    p->dir);
            rc = -1;
        }
    }
    atomic_store(&m.stop, true);
    pthread_join(th, NULL);
    close(m.ifd);
    if (p->sync_after && ls_fsync_dir(p->logs_a) != 0) rc = -1; /* the drops' links, once */
    if (rc == 0 && !atomic_load(&m.done)) {
        fprintf(stderr, "logship-bench: generation %lu not replayed within %.0f s (see %s)\n",
                (unsigned long) last, timeout_s, p->dir);
        rc = -1;
    }
    return rc;
}
