/* Test harness implementation (see harness.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <ftw.h>
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

char *ls_h_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    char *path = NULL;
    if (asprintf(&path, "%s/logship-%s-XXXXXX", base, tag) < 0) return NULL;
    if (!mkdtemp(path)) {
        free(path);
        return NULL;
    }
    return path;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    return remove(p);
}

void ls_h_rmtree(const char *path)
{
    if (path) nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void ls_h_rmtree_free(char *path)
{
    ls_h_rmtree(path);
    free(path);
}

const char *ls_h_bin(const char *name)
{
    static __thread char buf[4][512];
    static __thread int i;
    char *b = buf[i++ % 4];
    snprintf(b, sizeof(buf[0]), "%s/%s", LS_BIN_DIR, name);
    return b;
}

static char *slurp_fd(int fd)
{
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    for (;;) {
        if (len + 1024 > cap) s = realloc(s, cap *= 2);
        ssize_t n = read(fd, s + len, cap - len - 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t) n;
    }
    s[len] = 0;
    return s;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

int ls_h_wait(pid_t pid, int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t) timeout_ms;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (r < 0) return -1;
        if (now_ms() >= end) return -1;
        usleep(2000);
    }
}

int ls_h_in_child(void (*fn)(void *ctx), void *ctx, const char *faults)
{
    fflush(NULL); /* else the child writes the parent's buffered output again */
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (faults)
            setenv("LS_FAULTS", faults, 1);
        else
            unsetenv("LS_FAULTS");
        fn(ctx);
        _exit(0);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int ls_h_run(char *const argv[], char **out, char **err, int timeout_ms)
{
    char otmp[] = "/tmp/ls-h-outXXXXXX", etmp[] = "/tmp/ls-h-errXXXXXX";
    int ofd = mkstemp(otmp), efd = mkstemp(etmp);
    unlink(otmp);
    unlink(etmp);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(ofd, 1);
        dup2(efd, 2);
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int rc = ls_h_wait(pid, timeout_ms);
    if (rc < 0) {
        kill(pid, SIGKILL);
        ls_h_wait(pid, 5000);
    }
    if (out) {
        lseek(ofd, 0, SEEK_SET);
        *out = slurp_fd(ofd);
    }
    if (err) {
        lseek(efd, 0, SEEK_SET);
        *err = slurp_fd(efd);
    }
    close(ofd);
    close(efd);
    return rc;
}

int ls_h_sh(const char *cmd, char **out, char **err, int timeout_ms)
{
    char *argv[] = {"/bin/sh", "-c", (char *) cmd, NULL};
    return ls_h_run(argv, out, err, timeout_ms);
}

pid_t ls_h_spawn(char *const argv[], const char *logpath, char *const env[])
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0) return pid;
    /* Dies with the test: a test that crashes or times out runs no fini, and a daemon it started
     * would live on (seen: a logshipd of a seed test an hour later). The spawning thread is the
     * test's own, which lives as long as the test. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127); /* the test died before prctl */
    int fd = open(logpath ? logpath : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0600);
    dup2(fd, 1);
    dup2(fd, 2);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    for (int i = 0; env && env[i]; i++)
        putenv(env[i]);
    execv(argv[0], argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

void ls_h_kill(pid_t pid, int sig)
{
    if (pid > 0) kill(pid, sig);
}

int ls_h_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0 ||
        getsockname(fd, (struct sockaddr *) &sa, &len) != 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    return ntohs(sa.sin_port);
}

bool ls_h_wait_for(bool (*cond)(void *ctx), void *ctx, int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t) timeout_ms;
    for (;;) {
        if (cond(ctx)) return true;
        if (now_ms() >= end) return false;
        usleep(5000);
    }
}

int ls_h_write_file(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t n = fwrite(buf, 1, len, f);
    return fclose(f) == 0 && n == len ? 0 : -1;
}

uint8_t *ls_h_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t) sz + 1);
    *len = fread(buf, 1, (size_t) sz, f);
    buf[*len] = 0;
    fclose(f);
    return buf;
}

bool ls_h_contains(const char *haystack, const char *needle)
{
    return haystack && needle && strstr(haystack, needle) != NULL;
}

/* True when the NUL-separated command line of pid holds needle as a whole argument. */
static bool cmdline_has(pid_t pid, const char *needle)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int) pid);
    size_t len = 0;
    char *text = (char *) ls_h_read_file(path, &len);
    bool found = false;
    for (size_t at = 0; text && at < len && !found; at += strlen(text + at) + 1)
        found = strcmp(text + at, needle) == 0;
    free(text);
    return found;
}

int ls_h_kill_by_arg(const char *needle)
{
    DIR *d = opendir("/proc");
    if (!d) return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 1 || pid == getpid() || !cmdline_has((pid_t) pid, needle)) continue;
        kill((pid_t) pid, SIGCONT);
        kill((pid_t) pid, SIGKILL);
        for (int i = 0; i < 1000 && kill((pid_t) pid, 0) == 0; i++) {
            waitpid((pid_t) pid, NULL, WNOHANG); /* our own child: reap it */
            usleep(10000);
        }
        n++;
    }
    closedir(d);
    return n;
}

size_t ls_h_file_lines(const char *path)
{
    size_t len = 0, n = 0;
    uint8_t *b = ls_h_read_file(path, &len);
    for (size_t i = 0; b && i < len; i++)
        n += b[i] == '\n';
    free(b);
    return n;
}

typedef struct {
    const char *path;
    size_t want;
} lines_cond_t;

static bool lines_reach(void *ctx)
{
    const lines_cond_t *c = ctx;
    return ls_h_file_lines(c->path) >= c->want;
}

bool ls_h_wait_file_lines(const char *path, size_t want, int timeout_ms)
{
    lines_cond_t c = {path, want};
    return ls_h_wait_for(lines_reach, &c, timeout_ms);
}

int ls_h_dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(d);
    return n;
}

bool ls_h_flip_byte(const char *path, size_t off, uint8_t mask)
{
    size_t len = 0;
    uint8_t *b = ls_h_read_file(path, &len);
    bool ok = b && off < len;
    if (ok) {
        b[off] ^= mask;
        ok = ls_h_write_file(path, b, len) == 0;
    }
    free(b);
    return ok;
}

static int count_line(const char *msg, void *ctx)
{
    (void) msg;
    (*(int *) ctx)++;
    return 0;
}

int ls_h_reader_slots(void *env)
{
    int n = 0;
    mdb_reader_list(env, count_line, &n);
    return n - 1;
}

/* The lowest descriptor number pid does not hold (its /proc/<pid>/fd listing, this listing's own
 * descriptor left out), -1 when it cannot be listed. */
static int lowest_free_fd(pid_t pid)
{
    char path[64];
    static bool used[65536];
    memset(used, 0, sizeof(used));
    snprintf(path, sizeof(path), pid ? "/proc/%d/fd" : "/proc/self/fd", (int) pid);
    DIR *d = opendir(path);
    if (!d) return -1;
    int own = pid ? -1 : dirfd(d);
    for (struct dirent *e; (e = readdir(d));) {
        long fd = strtol(e->d_name, NULL, 10);
        if (e->d_name[0] != '.' && fd >= 0 && fd < 65536 && fd != own) used[fd] = true;
    }
    closedir(d);
    int low = 0;
    while (low < 65535 && used[low])
        low++;
    return low;
}

bool ls_h_fd_limit(pid_t pid, int spare, uint64_t *old_soft)
{
    struct rlimit lim;
    int low = lowest_free_fd(pid);
    if (low < 0 || prlimit(pid, RLIMIT_NOFILE, NULL, &lim) != 0) return false;
    *old_soft = lim.rlim_cur;
    lim.rlim_cur = (rlim_t) low + (rlim_t) spare;
    return prlimit(pid, RLIMIT_NOFILE, &lim, NULL) == 0;
}

bool ls_h_fd_unlimit(pid_t pid, uint64_t old_soft)
{
    struct rlimit lim;
    if (prlimit(pid, RLIMIT_NOFILE, NULL, &lim) != 0) return false;
    lim.rlim_cur = (rlim_t) old_soft;
    return prlimit(pid, RLIMIT_NOFILE, &lim, NULL) == 0;
}
