/* Built against an installed logship with `pkg-config --cflags --libs logship`
 * (tests/install/install_test.sh): opens a database, commits two puts, reads them back, closes,
 * reopens and reads again. Only the public API (logship/db.h). Usage: dbdemo DIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <logship/db.h>

static int expect(ls_db_t *db, const char *key, const char *want)
{
    void *val = NULL;
    size_t len = 0;
    int rc = ls_db_get(db, key, strlen(key), &val, &len);
    if (rc != 0 || len != strlen(want) || memcmp(val, want, len) != 0) {
        fprintf(stderr, "dbdemo: %s: got rc %d (%s), %zu bytes\n", key, rc, ls_strerror(rc), len);
        free(val);
        return 1;
    }
    free(val);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: dbdemo DIR\n");
        return 2;
    }
    ls_db_t *db = NULL;
    ls_db_options_t opts = {0};
    if (ls_db_open(argv[1], &opts, &db) != 0) {
        fprintf(stderr, "dbdemo: open: %s\n", ls_db_open_error());
        return 1;
    }
    ls_txn_t *txn = NULL;
    int rc = ls_txn_begin(db, &txn);
    if (!rc) rc = ls_txn_put(txn, "alpha", 5, "one", 3);
    if (!rc) rc = ls_txn_put(txn, "beta", 4, "two", 3);
    if (!rc)
        rc = ls_txn_commit(txn);
    else
        ls_txn_abort(txn);
    if (rc) {
        fprintf(stderr, "dbdemo: commit: %s: %s\n", ls_strerror(rc), ls_db_errmsg(db));
        ls_db_close(db);
        return 1;
    }
    int bad = expect(db, "alpha", "one") + expect(db, "beta", "two");
    if (ls_db_close(db) != 0 || bad) return 1;

    opts.no_create = true;
    if (ls_db_open(argv[1], &opts, &db) != 0) {
        fprintf(stderr, "dbdemo: reopen: %s\n", ls_db_open_error());
        return 1;
    }
    bad = expect(db, "alpha", "one") + expect(db, "beta", "two");
    if (ls_db_close(db) != 0 || bad) return 1;
    printf("dbdemo: ok\n");
    return 0;
}
