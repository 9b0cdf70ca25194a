/* logship-bench helpers: processes, clocks, statistics, files, status, /proc (see lb.h). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "control/control.h"
#include "lb.h"

#define MAXPIDS 64
static pid_t pids[MAXPIDS]; /* processes started and not yet reaped */

static void remember(pid_t pid, bool add)
{
    for (int i = 0; i < MAXPIDS; i++) {
        if (add && pids[i] == 0) {
            pids[i] = pid;
            return;
        }
        if (!add && pids[i] == pid) {
            pids[i] = 0;
            return;
        }
    }
}

pid_t lb_spawn(char *const argv[], const char *log)
{
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int fd = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        int in = open("/dev/null", O_RDONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (in >= 0) dup2(in, 0);
        execvp(argv[0], argv);
        fprintf(stderr, "logship-bench: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    remember(pid, true);
    return pid;
}

int lb_stop(pid_t pid, int timeout_ms)
{
    if (pid <= 0) return -1;
    int st = 0;
    kill(pid, SIGTERM);
    uint64_t end = lb_mono_ns() + (uint64_t) timeout_ms * 1000000ull;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR)) break;
        if (lb_mono_ns() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            break;
        }
        lb_sleep_ns(2000000);
    }
    remember(pid, false);
    return st;
}

bool lb_alive(pid_t *pid)
{
    int st;
    if (*pid <= 0) return false;
    if (waitpid(*pid, &st, WNOHANG) != *pid) return true;
    remember(*pid, false); /* reaped: nothing left to stop */
    *pid = 0;
    return false;
}

void lb_stop_all(void)
{
    for (int i = 0; i < MAXPIDS; i++)
        if (pids[i] > 0) lb_stop(pids[i], 3000);
}

int lb_wait(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    remember(pid, false);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int lb_run(char *const argv[], const char *log)
{
    pid_t pid = lb_spawn(argv, log);
    return pid < 0 ? -1 : lb_wait(pid);
}

int lb_sh(const char *fmt, ...)
{
    char cmd[8192];
    LB_FORMAT(cmd, fmt);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void lb_fmt(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

void lb_progress(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("== ");
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
}

static uint64_t clock_ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

uint64_t lb_mono_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

uint64_t lb_now_ns(void)
{
    return clock_ns(CLOCK_REALTIME);
}

void lb_sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t) (ns / 1000000000ull), (long) (ns % 1000000000ull)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

void lb_sleep_until_mono(uint64_t mono_ns)
{
    uint64_t now = lb_mono_ns();
    if (mono_ns > now) lb_sleep_ns(mono_ns - now);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

double lb_pct(const double *v, size_t n, double p)
{
    if (n == 0) return NAN;
    double *c = malloc(n * sizeof(*c));
    if (!c) return NAN;
    memcpy(c, v, n * sizeof(*c));
    qsort(c, n, sizeof(*c), cmp_double);
    size_t rank = (size_t) ceil(p / 100.0 * (double) n);
    double r = c[rank ? rank - 1 : 0];
    free(c);
    return r;
}

double lb_median(const double *v, size_t n)
{
    if (n == 0) return NAN;
    double *c = malloc(n * sizeof(*c));
    if (!c) return NAN;
    memcpy(c, v, n * sizeof(*c));
    qsort(c, n, sizeof(*c), cmp_double);
    double r = n % 2 ? c[n / 2] : (c[n / 2 - 1] + c[n / 2]) / 2;
    free(c);
    return r;
}

double lb_min(const double *v, size_t n)
{
    double m = n ? v[0] : NAN;
    for (size_t i = 1; i < n; i++)
        if (v[i] < m) m = v[i];
    return m;
}

double lb_max(const double *v, size_t n)
{
    double m = n ? v[0] : NAN;
    for (size_t i = 1; i < n; i++)
        if (v[i] > m) m = v[i];
    return m;
}

int lb_copy_file(const char *from, const char *to, bool sync)
{
    int in = open(from, O_RDONLY | O_CLOEXEC), out = -1, rc = -1;
    static char buf[1 << 20];
    if (in < 0) return -1;
    out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) goto done;
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) goto done;
        if (n == 0) break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t) (n - off));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) goto done;
            off += w;
        }
    }
    rc = sync && fsync(out) < 0 ? -1 : 0;
done:
    if (out >= 0) close(out);
    close(in);
    return rc;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void) sb;
    (void) flag;
    (void) ftw;
    return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

int lb_rm_rf(const char *path)
{
    return nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT ? -1 : 0;
}

int lb_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int port = -1;
    if (fd < 0) return -1;
    if (bind(fd, (struct sockaddr *) &a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *) &a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

uint64_t lb_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t) st.st_size : 0;
}

static uint64_t num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsNumber(v) && v->valuedouble > 0 ? (uint64_t) v->valuedouble : 0;
}

int lb_status(const char *sock, lb_status_t *st)
{
    char *resp = NULL, err[256];
    memset(st, 0, sizeof(*st));
    if (ls_control_call(sock, "{\"cmd\":\"status\"}", 2000, &resp, err, sizeof(err)) != 0)
        return -1;
    cJSON *j = cJSON_Parse(resp);
    free(resp);
    if (!j) return -1;
    const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "copies"), 0);
    if (c) {
        const cJSON *s = cJSON_GetObjectItem(c, "state");
        if (cJSON_IsString(s)) snprintf(st->state, sizeof(st->state), "%s", s->valuestring);
        st->copied = num(c, "last_copied");
        st->copied_ns = num(c, "last_copied_time_ns");
        st->replayed = num(c, "last_replayed");
        st->replayed_ns = num(c, "last_replayed_time_ns");
        st->sent_bytes = num(c, "sent_bytes");
        st->generated = num(c, "last_generated");
        const cJSON *m = cJSON_GetObjectItem(c, "mode");
        st->block = cJSON_IsString(m) && !strcmp(m->valuestring, "block");
        st->block_bytes = num(c, "block_bytes");
        st->block_lag_samples = num(c, "block_lag_samples");
        st->mode_switches = num(c, "mode_switches");
        const cJSON *v;
        if (cJSON_IsNumber(v = cJSON_GetObjectItem(c, "block_lag_p50_ms")))
            st->block_lag_p50_ms = v->valuedouble;
        if (cJSON_IsNumber(v = cJSON_GetObjectItem(c, "block_lag_p99_ms")))
            st->block_lag_p99_ms = v->valuedouble;
        if (cJSON_IsNumber(v = cJSON_GetObjectItem(c, "block_lag_max_ms")))
            st->block_lag_max_ms = v->valuedouble;
        const cJSON *b;
        cJSON_ArrayForEach(b, cJSON_GetObjectItem(c, "block_lag_hist"))
        {
            if (st->lag_n >= LB_LAG_MAX || cJSON_GetArraySize(b) != 3) break;
            st->lag_lower[st->lag_n] = cJSON_GetArrayItem(b, 0)->valuedouble;
            st->lag_upper[st->lag_n] = cJSON_GetArrayItem(b, 1)->valuedouble;
            st->lag_count[st->lag_n] = cJSON_GetArrayItem(b, 2)->valuedouble;
            st->lag_n++;
        }
        st->ok = true;
    }
    cJSON_Delete(j);
    return st->ok ? 0 : -1;
}

uint64_t lb_proc_kib(pid_t pid, const char *field)
{
    char path[64], line[256];
    unsigned long kib = 0;
    size_t fl = strlen(field);
    snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, field, fl) && sscanf(line + fl, " %lu", &kib) == 1) break;
    fclose(f);
    return kib;
}

uint64_t lb_vmhwm_kib(pid_t pid)
{
    return lb_proc_kib(pid, "VmHWM:");
}

uint64_t lb_wire_bytes(int port)
{
    char cmd[160], word[256];
    unsigned long long total = 0, v;
    snprintf(cmd, sizeof(cmd), "ss -tinH state established '( dport = :%d )' 2>/dev/null", port);
    FILE *f = popen(cmd, "r");
    if (!f) return 0;
    while (fscanf(f, "%255s", word) == 1)
        if (sscanf(word, "bytes_acked:%llu", &v) == 1) total += v;
    pclose(f);
    return total;
}

double lb_cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long ut = 0, stime = 0;
    if (!p ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &stime) != 2)
        return 0;
    return (double) (ut + stime) / (double) sysconf(_SC_CLK_TCK);
}

double lb_lag_between(const lb_status_t *before, const lb_status_t *after, double p, uint64_t *n)
{
    double diff[LB_LAG_MAX], total = 0, seen = 0; /* after's buckets, ascending */
    for (int i = 0; i < after->lag_n; i++) {
        diff[i] = after->lag_count[i];
        for (int j = 0; j < before->lag_n; j++)
            if (before->lag_lower[j] == after->lag_lower[i]) diff[i] -= before->lag_count[j];
        if (diff[i] < 0) diff[i] = 0; /* a restarted daemon: not a difference */
        total += diff[i];
    }
    if (n) *n = (uint64_t) total;
    if (total <= 0) return -1;
    double rank = total * p / 100.0;
    for (int i = 0; i < after->lag_n; i++) {
        seen += diff[i];
        if (diff[i] > 0 && seen >= rank - 1e-9) {
            double up = after->lag_upper[i] > 0 ? after->lag_upper[i] : 2 * after->lag_lower[i];
            return up / 1e6;
        }
    }
    return -1;
}
