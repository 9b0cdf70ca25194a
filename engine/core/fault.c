/* Test-only fault points: armed through the LS_FAULTS environment variable (see core.h). */
#ifdef LS_FAULTS_ENABLED
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"

#define MAX_POINTS 16

struct point {
    char name[64];
    char action[256];   /* "hold:PATH" holds a path */
    unsigned long at;   /* fire only at this hit (1-based), 0 = every hit */
    unsigned long hits; /* hits so far */
};

static struct point points[MAX_POINTS];
static int npoints;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void parse(void)
{
    const char *env = getenv("LS_FAULTS");
    if (!env) return;
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", env);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok && npoints < MAX_POINTS;
         tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) continue;
        *eq = '\0';
        struct point *p = &points[npoints++];
        snprintf(p->name, sizeof(p->name), "%s", tok);
        char *at = strchr(eq + 1, '@');
        if (at) {
            *at = '\0';
            p->at = strtoul(at + 1, NULL, 10);
        }
        snprintf(p->action, sizeof(p->action), "%s", eq + 1);
    }
}

/* "hold:PATH": until the test creates PATH, bounded so that a test that never does ends. */
static void hold(const char *name, const char *path)
{
    struct stat st;
    for (int ms = 0; ms < 60000; ms++) {
        if (stat(path, &st) == 0) return;
        usleep(1000);
    }
    fprintf(stderr, "logship: fault point %s: %s did not appear within 60 s; going on\n", name,
            path);
}

bool ls__fault_hit(const char *name)
{
    pthread_once(&once, parse);
    if (npoints == 0) return false;
    for (int i = 0; i < npoints; i++) {
        struct point *p = &points[i];
        if (strcmp(p->name, name) != 0) continue;
        pthread_mutex_lock(&lock);
        unsigned long hit = ++p->hits;
        pthread_mutex_unlock(&lock);
        if (p->at && hit != p->at) return false;
        fprintf(stderr, "logship: fault point %s fired (%s, hit %lu)\n", name, p->action, hit);
        if (!strcmp(p->action, "exit")) _exit(LS_FAULT_EXIT_CODE);
        if (!strcmp(p->action, "abort")) abort();
        if (!strcmp(p->action, "kill")) kill(getpid(), SIGKILL);
        if (!strncmp(p->action, "sleep:", 6)) {
            usleep((useconds_t) strtoul(p->action + 6, NULL, 10) * 1000u);
            return false;
        }
        if (!strncmp(p->action, "hold:", 5)) {
            hold(name, p->action + 5);
            return false;
        }
        return !strcmp(p->action, "fail");
    }
    return false;
}
#else
typedef int ls__fault_unused_t; /* ISO C forbids an empty translation unit */
#endif
