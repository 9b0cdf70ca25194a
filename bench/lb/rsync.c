/*
 * Baseline (b): rsync through an rsync daemon on 127.0.0.1, what an operator would otherwise
 * use. The daemon runs in the foreground (`rsync --daemon --no-detach`) on a free port with a
 * module "bl" writing into a scratch directory, and is stopped by pid. A client run is
 * `rsync -a [--fsync] SRC/ rsync://127.0.0.1:PORT/bl/`, timed from spawn to exit.
 */
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "lb.h"

int lb_rsyncd_start(lb_rsyncd_t *d, const char *dir)
{
    char conf[LB_PATH + 32], log[LB_PATH + 32], body[LB_PATH + 512], port[16], cfgarg[LB_PATH + 48];
    memset(d, 0, sizeof(*d));
    snprintf(d->dst, sizeof(d->dst), "%s/rsync-dst", dir);
    snprintf(conf, sizeof(conf), "%s/rsyncd.conf", dir);
    snprintf(log, sizeof(log), "%s/rsyncd.log", dir);
    if (ls_mkdir_p(d->dst)) return -1;
    snprintf(body, sizeof(body),
             "use chroot = no\nuid = 0\ngid = 0\npid file =\n[bl]\npath = %s\nread only = no\n",
             d->dst);
    FILE *f = fopen(conf, "w");
    if (!f) return -1;
    fputs(body, f);
    fclose(f);
    d->port = lb_free_port();
    snprintf(port, sizeof(port), "--port=%d", d->port);
    snprintf(cfgarg, sizeof(cfgarg), "--config=%s", conf);
    char *argv[] = {"rsync", "--daemon", "--no-detach", "--address=127.0.0.1", port, cfgarg, NULL};
    d->pid = lb_spawn(argv, log);
    if (d->pid < 0) return -1;
    /* Ready when a client can list the module. */
    char url[64];
    snprintf(url, sizeof(url), "rsync://127.0.0.1:%d/", d->port);
    char *probe[] = {"rsync", url, NULL};
    for (int i = 0; i < 200; i++) {
        if (lb_run(probe, NULL) == 0) return 0;
        lb_sleep_ns(10000000);
    }
    lb_rsyncd_stop(d);
    return -1;
}

void lb_rsyncd_stop(lb_rsyncd_t *d)
{
    if (d->pid > 0) lb_stop(d->pid, 3000);
    d->pid = 0;
}

double lb_rsync(lb_rsyncd_t *d, const char *src, bool fsync)
{
    char from[LB_PATH + 2], url[64];
    snprintf(from, sizeof(from), "%s/", src);
    snprintf(url, sizeof(url), "rsync://127.0.0.1:%d/bl/", d->port);
    char *with[] = {"rsync", "-a", "--fsync", from, url, NULL};
    char *without[] = {"rsync", "-a", from, url, NULL};
    uint64_t t0 = lb_mono_ns();
    int rc = lb_run(fsync ? with : without, NULL);
    double s = (double) (lb_mono_ns() - t0) / 1e9;
    return rc == 0 ? s : -1;
}
