/* config internals shared by config.c (the inih driver) and sections.c (keys and validation). */
#ifndef LS_CONFIG_INT_H
#define LS_CONFIG_INT_H

#include <stdio.h>

#include "config/config.h"

#define LINE_MAX_LEN 200 /* libinih's INI_MAX_LINE in Debian's build */

struct parser {
    ls_config_t *cfg;
    FILE *f;
    int lineno;       /* line last handed to inih */
    bool long_line;   /* a line exceeded LINE_MAX_LEN */
    int long_lineno;  /* where */
    char *err;        /* first error, "FILE:LINE: reason" */
    size_t errlen;    /* capacity of err */
    bool failed;      /* an error was recorded: later ones are ignored */
    int *target_line; /* first line of each [target] section, for later messages */
    int *db_line;     /* first line of each [database] section */
    int *source_line; /* first line of each [source] section */
};

/* Records the first error; line 0 means "no line" (a missing key). */
void ls__cfg_fail(struct parser *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Key handlers: return 1 (inih's "continue"), recording errors through ls__cfg_fail. */
int ls__cfg_node_key(struct parser *p, const char *name, const char *value);
int ls__cfg_tls_key(struct parser *p, const char *name, const char *value);
int ls__cfg_listen_key(struct parser *p, const char *name, const char *value);
int ls__cfg_target_key(struct parser *p, const char *tname, const char *name, const char *value);
int ls__cfg_source_key(struct parser *p, const char *sname, const char *name, const char *value);
/* [peer NAME]: both a [target NAME] and a [source NAME] (one section per peer, both ways). */
int ls__cfg_peer_key(struct parser *p, const char *pname, const char *name, const char *value);
int ls__cfg_database_key(struct parser *p, const char *dname, const char *name, const char *value);
/* Required keys, defaults and cross-references, after the whole file was read. */
void ls__cfg_validate(struct parser *p);

#endif
