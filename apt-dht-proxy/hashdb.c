/* hashdb.c - the hash index in SQLite.
 *
 * Model: one table, files(key -> size, sha256, sha1, origin), WITHOUT ROWID so a lookup
 * is one B-tree descent on the key. The database runs in WAL mode: the event loop's
 * connection reads while the indexer thread's connection writes a whole Packages file in
 * one transaction, and neither waits for the other; two writers wait up to the busy
 * timeout. Every statement is prepared once per connection at open and reset after each
 * use. The schema version lives in PRAGMA user_version; a database from a newer build is
 * refused rather than guessed at.
 *
 * origin is the key of the Release that listed an entry by name (NULL for everything
 * else: pool files, by-hash names); it lets a re-parsed Release retract what it no longer
 * promises, which is what the daemon's "is this by-name index stale?" check relies on. */
#include "aptdht-config.h"
#include "apt-dht-proxy/hashdb.h"

#include <errno.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define HASHDB_SCHEMA_VERSION 2
#define HASHDB_BUSY_MS 5000
#define HASHDB_KEY_MAX 8192 /* bytes; keys are URL paths, far shorter in practice */

struct hashdb {
    sqlite3 *db;
    sqlite3_stmt *get, *put, *forget, *begin, *commit, *rollback;
    sqlite3_stmt *cput, *cget, *cdel;
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS files ("
    " key TEXT PRIMARY KEY NOT NULL,"
    " size INTEGER," /* bytes, NULL = unknown */
    " sha256 BLOB,"  /* 32 bytes or NULL */
    " sha1 BLOB,"    /* 20 bytes or NULL */
    " origin TEXT"   /* Release key that listed it by name, or NULL */
    ") WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS files_origin ON files(origin) WHERE origin IS NOT NULL;";

/* Version 2: what this host's cache holds, with the SHA-256 computed when each file was
 * stored, so cached files keep their identity (and can be shared) across restarts. */
static const char schema_v2_sql[] =
    "CREATE TABLE IF NOT EXISTS cached ("
    " key TEXT PRIMARY KEY NOT NULL,"
    " size INTEGER NOT NULL," /* bytes */
    " sha256 BLOB NOT NULL"   /* 32 bytes */
    ") WITHOUT ROWID;";

static int err_of(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_NOMEM:
        return -ENOMEM;
    default:
        return -EIO;
    }
}

static int user_version(sqlite3 *db, int *v)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        *v = sqlite3_column_int(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : err_of(rc);
}

/* Creates the schema once; BEGIN IMMEDIATE makes two first-time openers take turns. */
static int migrate(sqlite3 *db)
{
    int v = 0, rc = user_version(db, &v);
    if (rc < 0 || v == HASHDB_SCHEMA_VERSION)
        return rc;
    if (v > HASHDB_SCHEMA_VERSION)
        return -ENOTSUP;
    if ((rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL)) != SQLITE_OK)
        return err_of(rc);
    if ((rc = user_version(db, &v)) < 0)
        goto fail;
    if (v == 0 && (rc = sqlite3_exec(db, schema_sql, NULL, NULL, NULL)) != SQLITE_OK) {
        rc = err_of(rc);
        goto fail;
    }
    if (v < 2 && ((rc = sqlite3_exec(db, schema_v2_sql, NULL, NULL, NULL)) != SQLITE_OK ||
                  (rc = sqlite3_exec(db, "PRAGMA user_version = 2", NULL, NULL, NULL)) != SQLITE_OK)) {
        rc = err_of(rc);
        goto fail;
    }
    if ((rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL)) != SQLITE_OK) {
        rc = err_of(rc);
        goto fail;
    }
    return 0;
fail:
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int prepare_all(struct hashdb *h)
{
    static const struct {
        size_t off;
        const char *sql;
    } stmts[] = {
        {offsetof(struct hashdb, get), "SELECT size, sha256, sha1 FROM files WHERE key = ?1"},
        {offsetof(struct hashdb, put), "INSERT OR REPLACE INTO files (key, size, sha256, sha1, "
                                       "origin) VALUES (?1, ?2, ?3, ?4, ?5)"},
        {offsetof(struct hashdb, forget), "DELETE FROM files WHERE origin = ?1"},
        {offsetof(struct hashdb, begin), "BEGIN IMMEDIATE"},
        {offsetof(struct hashdb, commit), "COMMIT"},
        {offsetof(struct hashdb, rollback), "ROLLBACK"},
        {offsetof(struct hashdb, cput), "INSERT OR REPLACE INTO cached (key, size, sha256) "
                                        "VALUES (?1, ?2, ?3)"},
        {offsetof(struct hashdb, cget), "SELECT size, sha256 FROM cached WHERE key = ?1"},
        {offsetof(struct hashdb, cdel), "DELETE FROM cached WHERE key = ?1"},
    };
    for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
        sqlite3_stmt **slot = (sqlite3_stmt **)((char *)h + stmts[i].off);
        int rc = sqlite3_prepare_v3(h->db, stmts[i].sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL);
        if (rc != SQLITE_OK)
            return err_of(rc);
    }
    return 0;
}

int hashdb_open(struct hashdb **out, const char *path)
{
    int rc = -ENOMEM;
    struct hashdb *h = calloc(1, sizeof(*h));
    if (!h)
        goto fail;
    /* NOMUTEX: a connection is used by one thread at a time (see hashdb.h). */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int src = sqlite3_open_v2(path, &h->db, flags, NULL);
    if (src != SQLITE_OK) {
        rc = err_of(src);
        goto fail;
    }
    sqlite3_busy_timeout(h->db, HASHDB_BUSY_MS);
    /* WAL: readers never block the writer; NORMAL sync is durable across crashes of the
     * process and loses at most the last transactions on power loss, which a re-fetch of
     * the index repairs. */
    src = sqlite3_exec(h->db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL", NULL,
                       NULL, NULL);
    if (src != SQLITE_OK) {
        rc = err_of(src);
        goto fail;
    }
    if ((rc = migrate(h->db)) < 0 || (rc = prepare_all(h)) < 0)
        goto fail;
    *out = h;
    return 0;
fail:
    hashdb_free(h);
    return rc;
}

void hashdb_free(struct hashdb *h)
{
    if (!h)
        return;
    sqlite3_finalize(h->get);
    sqlite3_finalize(h->put);
    sqlite3_finalize(h->forget);
    sqlite3_finalize(h->begin);
    sqlite3_finalize(h->commit);
    sqlite3_finalize(h->rollback);
    sqlite3_finalize(h->cput);
    sqlite3_finalize(h->cget);
    sqlite3_finalize(h->cdel);
    sqlite3_close(h->db);
    free(h);
}

/* Copies a blob column of exactly n bytes; NULL -> *have = false; other sizes -> -EIO. */
static int blob_col(sqlite3_stmt *st, int col, uint8_t *dst, size_t n, bool *have)
{
    *have = false;
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return 0;
    const void *p = sqlite3_column_blob(st, col);
    if (!p || (size_t)sqlite3_column_bytes(st, col) != n)
        return -EIO;
    memcpy(dst, p, n);
    *have = true;
    return 0;
}

int hashdb_lookup(struct hashdb *h, const char *key, struct hashdb_entry *out)
{
    int rc = -EINVAL;
    if (!key || !*key)
        return rc;
    sqlite3_stmt *st = h->get;
    if ((rc = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC)) != SQLITE_OK) {
        rc = err_of(rc);
        goto done;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        rc = -ENOENT;
        goto done;
    }
    if (rc != SQLITE_ROW) {
        rc = err_of(rc);
        goto done;
    }
    memset(out, 0, sizeof(*out));
    out->size = sqlite3_column_type(st, 0) == SQLITE_NULL
                    ? UINT64_MAX
                    : (uint64_t)sqlite3_column_int64(st, 0);
    if ((rc = blob_col(st, 1, out->sha256, 32, &out->have_sha256)) == 0)
        rc = blob_col(st, 2, out->sha1, 20, &out->have_sha1);
done:
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static int bind_entry(sqlite3_stmt *st, const char *key, const struct hashdb_entry *e,
                      const char *origin)
{
    int rc = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = e->size == UINT64_MAX ? sqlite3_bind_null(st, 2)
                                   : sqlite3_bind_int64(st, 2, (sqlite3_int64)e->size);
    if (rc == SQLITE_OK)
        rc = e->have_sha256 ? sqlite3_bind_blob(st, 3, e->sha256, 32, SQLITE_STATIC)
                            : sqlite3_bind_null(st, 3);
    if (rc == SQLITE_OK)
        rc = e->have_sha1 ? sqlite3_bind_blob(st, 4, e->sha1, 20, SQLITE_STATIC)
                          : sqlite3_bind_null(st, 4);
    if (rc == SQLITE_OK)
        rc = origin ? sqlite3_bind_text(st, 5, origin, -1, SQLITE_STATIC)
                    : sqlite3_bind_null(st, 5);
    return rc == SQLITE_OK ? 0 : err_of(rc);
}

int hashdb_put_origin(struct hashdb *h, const char *key, const struct hashdb_entry *e,
                      const char *origin)
{
    if (!key || !*key || strlen(key) > HASHDB_KEY_MAX || !e ||
        (e->size > (uint64_t)INT64_MAX && e->size != UINT64_MAX))
        return -EINVAL;
    sqlite3_stmt *st = h->put;
    int rc = bind_entry(st, key, e, origin);
    if (rc == 0) {
        int s = sqlite3_step(st);
        rc = s == SQLITE_DONE ? 0 : err_of(s);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

int hashdb_put(struct hashdb *h, const char *key, const struct hashdb_entry *e)
{
    return hashdb_put_origin(h, key, e, NULL);
}

/* Runs a statement whose one parameter is text; the changed row count or a negative errno. */
static int run_text(struct hashdb *h, sqlite3_stmt *st, const char *text)
{
    if (!text || !*text)
        return -EINVAL;
    int rc = sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    rc = rc == SQLITE_DONE ? sqlite3_changes(h->db) : err_of(rc);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

int hashdb_forget_origin(struct hashdb *h, const char *origin)
{
    return run_text(h, h->forget, origin);
}

static int run(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : err_of(rc);
}

int hashdb_begin(struct hashdb *h)
{
    return run(h->begin);
}

int hashdb_commit(struct hashdb *h)
{
    return run(h->commit);
}

int hashdb_rollback(struct hashdb *h)
{
    return run(h->rollback);
}

int hashdb_cached_put(struct hashdb *h, const char *key, uint64_t size, const uint8_t sha256[32])
{
    if (!key || !*key || strlen(key) > HASHDB_KEY_MAX || size > (uint64_t)INT64_MAX)
        return -EINVAL;
    sqlite3_stmt *st = h->cput;
    int rc = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, (sqlite3_int64)size);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob(st, 3, sha256, 32, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    rc = rc == SQLITE_DONE ? 0 : err_of(rc);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

int hashdb_cached_get(struct hashdb *h, const char *key, uint64_t *size, uint8_t sha256[32])
{
    if (!key || !*key)
        return -EINVAL;
    sqlite3_stmt *st = h->cget;
    bool have = false;
    int rc = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *size = (uint64_t)sqlite3_column_int64(st, 0);
        rc = blob_col(st, 1, sha256, 32, &have);
        if (rc == 0 && !have)
            rc = -ENOENT;
    } else {
        rc = rc == SQLITE_DONE ? -ENOENT : err_of(rc);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

int hashdb_cached_del(struct hashdb *h, const char *key)
{
    int rc = run_text(h, h->cdel, key);
    return rc < 0 ? rc : 0;
}
