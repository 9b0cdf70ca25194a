/*
 * `logship certs DIR [--ca] [--node NAME]...`: creates a throw-away CA and node certificates for
 * tests and demos (engine/transport/certs.h, docs/TLS.md). --ca makes DIR/ca.pem + DIR/ca.key;
 * each --node NAME makes DIR/NAME.pem + DIR/NAME.key signed by that CA. Existing files are kept
 * and reported as an error.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cmds.h"
#include "transport/certs.h"

static int usage(void)
{
    fprintf(stderr,
            "usage: logship certs DIR [--ca] [--node NAME]...\n"
            "  --ca         create DIR/ca.pem and DIR/ca.key\n"
            "  --node NAME  create DIR/NAME.pem and DIR/NAME.key (subjectAltName DNS:NAME)\n");
    return 2;
}

int ls_cmd_certs(int argc, char **argv)
{
    const char *dir = NULL;
    bool ca = false, any = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--ca")) {
            ca = any = true;
        } else if (!strcmp(argv[i], "--node")) {
            if (++i >= argc) return usage();
            any = true;
        } else if (argv[i][0] == '-' || dir) {
            return usage();
        } else {
            dir = argv[i];
        }
    }
    if (!dir || !any) return usage();
    char err[512];
    if (ca) {
        if (ls_certs_make_ca(dir, err, sizeof(err)) != 0) {
            fprintf(stderr, "logship certs: %s\n", err);
            return 1;
        }
        printf("created %s/ca.pem and %s/ca.key\n", dir, dir);
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--node")) continue;
        const char *name = argv[++i];
        if (ls_certs_make_node(dir, name, err, sizeof(err)) != 0) {
            fprintf(stderr, "logship certs: %s\n", err);
            return 1;
        }
        printf("created %s/%s.pem and %s/%s.key\n", dir, name, dir, name);
    }
    return 0;
}
