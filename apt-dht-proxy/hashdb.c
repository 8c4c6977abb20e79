/* hashdb.c - the hash index in SQLite.
 *
 * Model: one table, files(key -> size, sha256, sha1, origin, src), WITHOUT ROWID so a
 * lookup is one B-tree descent on the key. The database runs in WAL mode: the event
 * loop's connection reads while the indexer thread's connection writes, and neither
 * waits for the other. Every statement is prepared once per connection at open and reset
 * after each use. The schema version lives in PRAGMA user_version; a database from a
 * newer build is refused rather than guessed at.
 *
 * src is the id, in indices, of the index whose latest parsed version listed the entry
 * (a Release, or one directory's Packages or Sources whatever its compression or by-hash
 * name). A stage (a TEMP table: private to the connection, so filling it takes no lock
 * on the database) collects one parse; its commit deletes the rows of src the stage does
 * not hold and writes only the rows that differ, in one short write transaction. So a
 * database holds one version per index, the write lock is held for the merge and not
 * for the parse, and the WAL grows with what changed, not with the size of the index.
 * origin is the older (schema 2) way Release entries were tied to their Release; such
 * rows go at that Release's next merge.
 *
 * The WAL: no connection checkpoints by itself (wal_autocheckpoint 0). The writer
 * checkpoints explicitly (hashdb_checkpoint: after each parse, and when hashdb_wal_pages
 * says the WAL has grown), truncates the WAL, and at once writes one tiny transaction:
 * the first writer into an empty or fully checkpointed WAL writes a new WAL header and
 * syncs it (an fdatasync of the WAL and of its directory), and that writer must be the
 * writer's thread, never the event loop (whose rare writes are small Release merges).
 *
 * Lookups are remembered: a cached file is asked for again and again, and each lookup is
 * a read transaction (two fcntl locks on the WAL index) and a B-tree descent. A remembered
 * answer holds while no connection of this process has committed anything since (every
 * commit in WAL mode ends in the WAL hook, which counts it), this connection has changed
 * nothing and rolled nothing back, and for at most HASHDB_MEMO_MS, so that a commit by
 * another process is seen within that. A database that is not in WAL mode (a file system
 * that cannot share its index) is asked every time. */
#include "aptdht-config.h"
#include "apt-dht-proxy/hashdb.h"

#include <errno.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define HASHDB_SCHEMA_VERSION 4
#define HASHDB_KEY_MAX 8192 /* bytes; keys are URL paths, far shorter in practice */
#define HASHDB_WAL_LIMIT (4 << 20) /* bytes a WAL is cut back to after a checkpoint */
#define HASHDB_PRIME_SQL "PRAGMA user_version = 4" /* a write of one page, see above */
#define HASHDB_SPARE_STAGES 2 /* a bulk parse and a Release merged from its tick */
#define HASHDB_MEMO_SLOTS 64 /* remembered lookups per connection (direct-mapped) */
#define HASHDB_MEMO_KEY 240  /* longest key remembered, bytes with its NUL */
#define HASHDB_MEMO_MS 1000  /* longest a remembered lookup is believed */

/* One remembered lookup: the answer (0 with e, or -ENOENT) for key, as of commits and
 * changes, until until_ms (CLOCK_MONOTONIC_COARSE). */
struct memo_slot {
    uint64_t commits;
    int64_t changes;
    int64_t until_ms;
    int rc;
    struct hashdb_entry e;
    char key[HASHDB_MEMO_KEY];
};

/* Commits through every connection of this process, counted by the WAL hook. Shared by
 * the event loop's and the indexer thread's connections, which are opened apart and live
 * on two threads; one count for every database file only costs a spurious lookup. */
static _Atomic uint64_t commits_seen;

struct hashdb {
    sqlite3 *db;
    sqlite3_stmt *get, *put, *forget, *forget_src, *begin, *commit, *rollback;
    sqlite3_stmt *cput, *cget, *cdel, *cmove;
    sqlite3_stmt *iget, *iset, *iname, *iid, *irec, *iseen;
    unsigned stages; /* stage tables made so far: names stay unique per connection */
    int wal_pages;   /* WAL size after this connection's last commit, in pages */
    /* Emptied stages kept for the next parse: a CREATE or DROP of a TEMP table changes
     * the connection's schema, which makes SQLite prepare every statement again. */
    struct hashdb_stage *spare[HASHDB_SPARE_STAGES];
    size_t n_spare;
    bool memo_ok;           /* commits are seen (WAL mode, or a private in-memory db) */
    struct memo_slot *memo; /* HASHDB_MEMO_SLOTS, made at the first lookup; NULL = none */
    int64_t rollbacks;      /* this connection's rollbacks: each forgets the memo */
};

struct hashdb_stage {
    struct hashdb *h;
    bool in_tx;     /* the stage's fill transaction is open */
    char table[32]; /* temp.stageN */
    sqlite3_stmt *put, *drop_old, *merge, *clear;
};

static void stage_destroy(struct hashdb_stage *st);
static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st);

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

/* Version 3: the indices parsed (what their last complete parse read and how it ended)
 * and, per entry, the index that listed it, so a new version supersedes the old. */
static const char schema_v3_sql[] =
    "ALTER TABLE files ADD COLUMN src INTEGER;" /* indices.id, NULL = none */
    "CREATE INDEX IF NOT EXISTS files_src ON files(src) WHERE src IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS indices ("
    " id INTEGER PRIMARY KEY,"
    " name TEXT UNIQUE NOT NULL,"         /* see index_origin */
    " sha256 BLOB,"                       /* content of the last complete parse, or NULL */
    " rc INTEGER NOT NULL DEFAULT 0,"     /* 0, or the negative errno it was rejected with */
    " records INTEGER NOT NULL DEFAULT 0" /* entries the last accepted version listed */
    ");";

/* Version 4: when each index was last seen (parsed, or asked for by apt) and when each
 * cached file was last listed by an index seen, for expiry by reference (hashdb_sweep).
 * An upgraded database counts everything as seen at the upgrade, so that nothing
 * expires before the indices have had keep_unreferenced to be seen again. */
#define HASHDB_NOW_SQL "CAST(strftime('%s', 'now') AS INTEGER)"
static const char schema_v4_sql[] =
    "ALTER TABLE indices ADD COLUMN seen_s INTEGER NOT NULL DEFAULT 0;" /* unix seconds */
    "ALTER TABLE cached ADD COLUMN listed_s INTEGER NOT NULL DEFAULT 0;" /* unix seconds */
    "UPDATE indices SET seen_s = " HASHDB_NOW_SQL ";"
    "UPDATE cached SET listed_s = " HASHDB_NOW_SQL ";";

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
    if (v < 2 && (rc = sqlite3_exec(db, schema_v2_sql, NULL, NULL, NULL)) != SQLITE_OK) {
        rc = err_of(rc);
        goto fail;
    }
    if (v < 3 && (rc = sqlite3_exec(db, schema_v3_sql, NULL, NULL, NULL)) != SQLITE_OK) {
        rc = err_of(rc);
        goto fail;
    }
    if (v < 4 && ((rc = sqlite3_exec(db, schema_v4_sql, NULL, NULL, NULL)) != SQLITE_OK ||
                  (rc = sqlite3_exec(db, "PRAGMA user_version = 4", NULL, NULL, NULL)) != SQLITE_OK)) {
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
        {offsetof(struct hashdb, forget_src),
         "DELETE FROM files WHERE src = (SELECT id FROM indices WHERE name = ?1)"},
        {offsetof(struct hashdb, begin), "BEGIN IMMEDIATE"},
        {offsetof(struct hashdb, commit), "COMMIT"},
        {offsetof(struct hashdb, rollback), "ROLLBACK"},
        {offsetof(struct hashdb, cput), "INSERT OR REPLACE INTO cached (key, size, sha256, listed_s) "
                                        "VALUES (?1, ?2, ?3, " HASHDB_NOW_SQL ")"},
        {offsetof(struct hashdb, cget), "SELECT size, sha256 FROM cached WHERE key = ?1"},
        {offsetof(struct hashdb, cdel), "DELETE FROM cached WHERE key = ?1"},
        {offsetof(struct hashdb, cmove), "UPDATE OR REPLACE cached SET key = ?2 WHERE key = ?1"},
        {offsetof(struct hashdb, iget), "SELECT sha256, rc, records FROM indices WHERE name = ?1"},
        {offsetof(struct hashdb, iset), "INSERT INTO indices (name, sha256, rc, seen_s) "
                                        "VALUES (?1, ?2, ?3, " HASHDB_NOW_SQL ") "
                                        "ON CONFLICT (name) DO UPDATE SET sha256 = excluded.sha256, "
                                        "rc = excluded.rc, seen_s = excluded.seen_s"},
        {offsetof(struct hashdb, iname), "INSERT INTO indices (name, seen_s) VALUES (?1, "
                                         HASHDB_NOW_SQL ") ON CONFLICT (name) DO NOTHING"},
        {offsetof(struct hashdb, iseen), "UPDATE indices SET seen_s = max(seen_s, ?2) WHERE name = ?1"},
        {offsetof(struct hashdb, iid), "SELECT id FROM indices WHERE name = ?1"},
        {offsetof(struct hashdb, irec), "UPDATE indices SET records = ?2 WHERE id = ?1"},
    };
    for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
        sqlite3_stmt **slot = (sqlite3_stmt **)((char *)h + stmts[i].off);
        int rc = sqlite3_prepare_v3(h->db, stmts[i].sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL);
        if (rc != SQLITE_OK)
            return err_of(rc);
    }
    return 0;
}

static int run_sql(sqlite3 *db, const char *sql)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : err_of(rc);
}

/* After every commit of the connection (WAL mode): the memo of every connection is out
 * of date; the writer's also learns the WAL's size. */
static int on_wal(void *ud, sqlite3 *db, const char *name, int pages)
{
    (void)db;
    (void)name;
    commits_seen++;
    ((struct hashdb *)ud)->wal_pages = pages;
    return SQLITE_OK;
}

/* Whether every commit to the database is seen by the WAL hook (the database is in WAL
 * mode) or there is no other connection (a private in-memory database): the memo's
 * condition. */
static bool commits_visible(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    const char *file = sqlite3_db_filename(db, "main");
    bool wal = false;
    if (!file || !*file)
        return true;
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *m = sqlite3_column_text(st, 0);
        wal = m && strcmp((const char *)m, "wal") == 0;
    }
    sqlite3_finalize(st);
    return wal;
}

/* Both kinds of connection: the schema may take a wait once (two first-time openers take
 * turns); after that the loop's connection never waits, and the writer's waits
 * HASHDB_WRITER_BUSY_MS, watches the WAL's size and starts the WAL (see above). */
static int open_conn(struct hashdb **out, const char *path, bool writer)
{
    char sql[128];
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
    sqlite3_busy_timeout(h->db, HASHDB_WRITER_BUSY_MS);
    /* WAL: readers never block the writer; NORMAL sync is durable across crashes of the
     * process and loses at most the last transactions on power loss, which a re-fetch of
     * the index repairs. */
    snprintf(sql, sizeof sql, "PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = %d",
             HASHDB_WAL_LIMIT);
    if ((rc = run_sql(h->db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL")) < 0 ||
        (rc = migrate(h->db)) < 0 || (rc = prepare_all(h)) < 0 || (rc = run_sql(h->db, sql)) < 0)
        goto fail;
    sqlite3_wal_hook(h->db, on_wal, h);
    h->memo_ok = commits_visible(h->db);
    if (writer) {
        if ((rc = run_sql(h->db, HASHDB_PRIME_SQL)) < 0)
            goto fail;
    } else {
        sqlite3_busy_timeout(h->db, 0);
    }
    *out = h;
    return 0;
fail:
    hashdb_free(h);
    return rc;
}

int hashdb_open(struct hashdb **out, const char *path)
{
    return open_conn(out, path, false);
}

int hashdb_open_writer(struct hashdb **out, const char *path)
{
    return open_conn(out, path, true);
}

void hashdb_free(struct hashdb *h)
{
    if (!h)
        return;
    while (h->n_spare > 0)
        stage_destroy(h->spare[--h->n_spare]);
    sqlite3_finalize(h->get);
    sqlite3_finalize(h->put);
    sqlite3_finalize(h->forget);
    sqlite3_finalize(h->forget_src);
    sqlite3_finalize(h->begin);
    sqlite3_finalize(h->commit);
    sqlite3_finalize(h->rollback);
    sqlite3_finalize(h->cput);
    sqlite3_finalize(h->cget);
    sqlite3_finalize(h->cdel);
    sqlite3_finalize(h->cmove);
    sqlite3_finalize(h->iget);
    sqlite3_finalize(h->iset);
    sqlite3_finalize(h->iname);
    sqlite3_finalize(h->iid);
    sqlite3_finalize(h->irec);
    sqlite3_finalize(h->iseen);
    sqlite3_close(h->db);
    free(h->memo);
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

static int64_t coarse_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The slot key would be remembered in, or NULL if it is too long to be. */
static struct memo_slot *memo_slot(struct hashdb *h, const char *key)
{
    uint32_t x = 2166136261u; /* FNV-1a */
    size_t n = 0;
    for (; key[n] && n < HASHDB_MEMO_KEY; n++)
        x = (x ^ (uint8_t)key[n]) * 16777619u;
    if (n >= HASHDB_MEMO_KEY)
        return NULL;
    if (!h->memo && !(h->memo = calloc(HASHDB_MEMO_SLOTS, sizeof *h->memo)))
        return NULL;
    return &h->memo[x % HASHDB_MEMO_SLOTS];
}

/* The changes that make a remembered answer stale: this connection's own (uncommitted
 * ones included) and its rollbacks. */
static int64_t own_changes(struct hashdb *h)
{
    return (int64_t)sqlite3_total_changes64(h->db) + h->rollbacks;
}

static int lookup_query(struct hashdb *h, const char *key, struct hashdb_entry *out);

int hashdb_lookup(struct hashdb *h, const char *key, struct hashdb_entry *out)
{
    if (!key || !*key)
        return -EINVAL;
    struct memo_slot *m = h->memo_ok ? memo_slot(h, key) : NULL;
    uint64_t commits = commits_seen; /* before the query: a commit during it is news */
    int64_t changes = own_changes(h), now = coarse_ms();
    if (m && m->until_ms > now && m->commits == commits && m->changes == changes &&
        strcmp(m->key, key) == 0) {
        if (m->rc == 0)
            *out = m->e;
        return m->rc;
    }
    int rc = lookup_query(h, key, out);
    if (m && (rc == 0 || rc == -ENOENT)) {
        *m = (struct memo_slot){.commits = commits, .changes = changes,
                                .until_ms = now + HASHDB_MEMO_MS, .rc = rc};
        if (rc == 0)
            m->e = *out;
        snprintf(m->key, sizeof m->key, "%s", key);
    } else if (m) {
        m->until_ms = 0;
    }
    return rc;
}

static int lookup_query(struct hashdb *h, const char *key, struct hashdb_entry *out)
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

/* Whether an entry may be stored: a key, a size SQLite can hold (or unknown). */
static bool entry_ok(const char *key, const struct hashdb_entry *e)
{
    return key && *key && strlen(key) <= HASHDB_KEY_MAX && e &&
           (e->size <= (uint64_t)INT64_MAX || e->size == UINT64_MAX);
}

/* Binds ?1 key, ?2 size, ?3 sha256, ?4 sha1. */
static int bind_entry(sqlite3_stmt *st, const char *key, const struct hashdb_entry *e)
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
    return rc == SQLITE_OK ? 0 : err_of(rc);
}

/* Steps a statement bound by the caller to its end; 0 or -errno; resets it either way. */
static int step_done(sqlite3_stmt *st, int rc)
{
    if (rc == 0) {
        int s = sqlite3_step(st);
        rc = s == SQLITE_DONE ? 0 : err_of(s);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

int hashdb_put_origin(struct hashdb *h, const char *key, const struct hashdb_entry *e,
                      const char *origin)
{
    if (!entry_ok(key, e))
        return -EINVAL;
    sqlite3_stmt *st = h->put;
    int rc = bind_entry(st, key, e);
    if (rc == 0) {
        int b = origin ? sqlite3_bind_text(st, 5, origin, -1, SQLITE_STATIC) : sqlite3_bind_null(st, 5);
        rc = b == SQLITE_OK ? 0 : err_of(b);
    }
    return step_done(st, rc);
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
    int a = run_text(h, h->forget, origin);
    if (a < 0)
        return a;
    int b = run_text(h, h->forget_src, origin);
    return b < 0 ? b : a + b;
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
    h->rollbacks++;
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

int hashdb_each_entry(struct hashdb *h, const char *glob,
                      int (*fn)(void *ud, const char *key, const struct hashdb_entry *e), void *ud)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(h->db, "SELECT key, size, sha256, sha1 FROM files WHERE key GLOB ?1", &st);
    if (rc < 0)
        return rc;
    int n = 0, s = sqlite3_bind_text(st, 1, glob, -1, SQLITE_STATIC);
    while (s == SQLITE_OK && (s = sqlite3_step(st)) == SQLITE_ROW) {
        s = SQLITE_OK;
        struct hashdb_entry e = {.size = UINT64_MAX};
        const char *key = (const char *)sqlite3_column_text(st, 0);
        if (sqlite3_column_type(st, 1) != SQLITE_NULL)
            e.size = (uint64_t)sqlite3_column_int64(st, 1);
        if (!key || blob_col(st, 2, e.sha256, 32, &e.have_sha256) < 0 ||
            blob_col(st, 3, e.sha1, 20, &e.have_sha1) < 0)
            continue;
        if ((rc = fn(ud, key, &e)) < 0)
            break;
        n++;
    }
    if (rc == 0 && s != SQLITE_DONE)
        rc = err_of(s);
    sqlite3_finalize(st);
    return rc < 0 ? rc : n;
}

int hashdb_cached_move(struct hashdb *h, const char *from, const char *to)
{
    if (!from || !*from || !to || !*to || strlen(to) > HASHDB_KEY_MAX)
        return -EINVAL;
    sqlite3_stmt *st = h->cmove;
    int rc = sqlite3_bind_text(st, 1, from, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 2, to, -1, SQLITE_STATIC);
    return step_done(st, rc == SQLITE_OK ? 0 : err_of(rc));
}

/* ---- stages ---- */

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
    int rc = sqlite3_prepare_v2(db, sql, -1, st, NULL);
    return rc == SQLITE_OK ? 0 : err_of(rc);
}

/* The stage's statements. merge skips rows that are already exactly so, so a new version
 * of an index rewrites only what changed. */
static int stage_prepare(struct hashdb_stage *st)
{
    char sql[640];
    const char *t = st->table;
    int rc;
    snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO temp.%s VALUES (?1, ?2, ?3, ?4)", t);
    if ((rc = prepare(st->h->db, sql, &st->put)) < 0)
        return rc;
    snprintf(sql, sizeof sql,
             "DELETE FROM main.files WHERE src = ?1 AND key NOT IN (SELECT key FROM temp.%s)", t);
    if ((rc = prepare(st->h->db, sql, &st->drop_old)) < 0)
        return rc;
    snprintf(sql, sizeof sql,
             "INSERT OR REPLACE INTO main.files (key, size, sha256, sha1, origin, src) "
             "SELECT s.key, s.size, s.sha256, s.sha1, NULL, ?1 FROM temp.%s AS s "
             "WHERE NOT EXISTS (SELECT 1 FROM main.files AS f WHERE f.key = s.key "
             "AND f.src IS ?1 AND f.origin IS NULL AND f.size IS s.size "
             "AND f.sha256 IS s.sha256 AND f.sha1 IS s.sha1)", t);
    if ((rc = prepare(st->h->db, sql, &st->merge)) < 0)
        return rc;
    snprintf(sql, sizeof sql, "DELETE FROM temp.%s", t);
    return prepare(st->h->db, sql, &st->clear);
}

/* Finalizes and drops the table. */
static void stage_destroy(struct hashdb_stage *st)
{
    char sql[64];
    sqlite3_finalize(st->put);
    sqlite3_finalize(st->drop_old);
    sqlite3_finalize(st->merge);
    sqlite3_finalize(st->clear);
    snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS temp.%s", st->table);
    sqlite3_exec(st->h->db, sql, NULL, NULL, NULL);
    free(st);
}

int hashdb_stage_new(struct hashdb *h, struct hashdb_stage **out)
{
    char sql[160];
    int rc = -ENOMEM;
    if (h->n_spare > 0) {
        *out = h->spare[--h->n_spare];
        return 0;
    }
    struct hashdb_stage *st = calloc(1, sizeof *st);
    if (!st)
        return rc;
    st->h = h;
    snprintf(st->table, sizeof st->table, "stage%u", ++h->stages);
    snprintf(sql, sizeof sql,
             "CREATE TEMP TABLE %s (key TEXT PRIMARY KEY NOT NULL, size INTEGER, sha256 BLOB, "
             "sha1 BLOB) WITHOUT ROWID", st->table);
    if ((rc = run_sql(h->db, sql)) < 0) {
        free(st);
        return rc;
    }
    if ((rc = stage_prepare(st)) < 0) {
        stage_destroy(st);
        return rc;
    }
    *out = st;
    return 0;
}

int hashdb_stage_put(struct hashdb_stage *st, const char *key, const struct hashdb_entry *e)
{
    if (!entry_ok(key, e))
        return -EINVAL;
    /* BEGIN (deferred) locks only what it touches: the stage's TEMP table */
    if (!st->in_tx) {
        int rc = run_sql(st->h->db, "BEGIN");
        if (rc < 0)
            return rc;
        st->in_tx = true;
    }
    return step_done(st->put, bind_entry(st->put, key, e));
}

int hashdb_stage_pause(struct hashdb_stage *st)
{
    if (!st->in_tx)
        return 0;
    int rc = run_sql(st->h->db, "COMMIT");
    if (rc == 0)
        st->in_tx = false;
    return rc;
}

/* The id of name in indices, made if new. In the caller's transaction. */
static int index_id(struct hashdb *h, const char *name, sqlite3_int64 *id)
{
    int rc = run_text(h, h->iname, name);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = h->iid;
    rc = sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        rc = 0;
    } else {
        rc = rc == SQLITE_DONE ? -EIO : err_of(rc);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

/* Runs one of the stage's merge statements for src id; the changed row count or -errno. */
static int run_id(struct hashdb *h, sqlite3_stmt *st, sqlite3_int64 id)
{
    int rc = sqlite3_bind_int64(st, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    rc = rc == SQLITE_DONE ? sqlite3_changes(h->db) : err_of(rc);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static int set_index(struct hashdb *h, const char *name, const uint8_t *sha256, int result)
{
    sqlite3_stmt *st = h->iset;
    int rc = sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sha256 ? sqlite3_bind_blob(st, 2, sha256, 32, SQLITE_STATIC) : sqlite3_bind_null(st, 2);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 3, result);
    return step_done(st, rc == SQLITE_OK ? 0 : err_of(rc));
}

static int set_records(struct hashdb *h, sqlite3_int64 id, uint64_t records)
{
    sqlite3_stmt *st = h->irec;
    int rc = sqlite3_bind_int64(st, 1, id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, (sqlite3_int64)records);
    return step_done(st, rc == SQLITE_OK ? 0 : err_of(rc));
}

/* The merge, inside the write transaction the caller opened. */
static int stage_merge(struct hashdb_stage *st, const char *name, const uint8_t *sha256,
                       uint64_t records)
{
    struct hashdb *h = st->h;
    sqlite3_int64 id;
    int rc, legacy, dropped, written;
    if ((rc = index_id(h, name, &id)) < 0)
        return rc;
    if ((legacy = run_text(h, h->forget, name)) < 0)
        return legacy;
    if ((dropped = run_id(h, st->drop_old, id)) < 0)
        return dropped;
    if ((written = run_id(h, st->merge, id)) < 0)
        return written;
    if ((rc = set_index(h, name, sha256, 0)) < 0 || (rc = set_records(h, id, records)) < 0)
        return rc;
    return legacy + dropped + written;
}

int hashdb_stage_commit(struct hashdb_stage *st, const char *name, const uint8_t *sha256,
                        uint64_t records)
{
    if (!name || !*name || records > (uint64_t)INT64_MAX)
        return -EINVAL;
    int rc = hashdb_stage_pause(st);
    if (rc < 0 || (rc = hashdb_begin(st->h)) < 0)
        return rc;
    int n = stage_merge(st, name, sha256, records);
    if (n < 0 || (rc = hashdb_commit(st->h)) < 0) {
        hashdb_rollback(st->h);
        return n < 0 ? n : rc;
    }
    return n;
}

/* Empty and out of any transaction, a stage waits for the next parse (see spare). */
void hashdb_stage_free(struct hashdb_stage *st)
{
    if (!st)
        return;
    struct hashdb *h = st->h;
    if (st->in_tx) {
        h->rollbacks++;
        sqlite3_exec(h->db, "ROLLBACK", NULL, NULL, NULL);
    }
    st->in_tx = false;
    if (h->n_spare < HASHDB_SPARE_STAGES && step_done(st->clear, 0) == 0) {
        h->spare[h->n_spare++] = st;
        return;
    }
    stage_destroy(st);
}

/* ---- what was parsed, and the WAL ---- */

int hashdb_index_get(struct hashdb *h, const char *name, struct hashdb_index *out)
{
    if (!name || !*name)
        return -EINVAL;
    sqlite3_stmt *st = h->iget;
    int rc = sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof *out);
        rc = blob_col(st, 0, out->sha256, 32, &out->have_sha256);
        out->rc = sqlite3_column_int(st, 1);
        out->records = (uint64_t)sqlite3_column_int64(st, 2);
    } else {
        rc = rc == SQLITE_DONE ? -ENOENT : err_of(rc);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

int hashdb_index_set(struct hashdb *h, const char *name, const uint8_t sha256[32], int result)
{
    if (!name || !*name)
        return -EINVAL;
    return set_index(h, name, sha256, result);
}

/* Between the checkpoint and the first write another connection could write first and
 * pay the sync itself: a window of microseconds, taken once per parse. */
int hashdb_checkpoint(struct hashdb *h)
{
    int rc = sqlite3_wal_checkpoint_v2(h->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    if (rc != SQLITE_OK)
        return err_of(rc);
    h->wal_pages = 0;
    return run_sql(h->db, HASHDB_PRIME_SQL);
}

int hashdb_wal_pages(const struct hashdb *h)
{
    return h->wal_pages;
}

int hashdb_disk_use(struct hashdb *h, uint64_t *db_bytes, uint64_t *wal_bytes)
{
    char wal[4096];
    struct stat st;
    const char *path = sqlite3_db_filename(h->db, "main");
    *db_bytes = *wal_bytes = 0;
    if (!path || !*path)
        return -ENOENT; /* in memory */
    if (stat(path, &st) < 0)
        return -errno;
    *db_bytes = (uint64_t)st.st_size;
    int n = snprintf(wal, sizeof wal, "%s-wal", path);
    if (n > 0 && (size_t)n < sizeof wal && stat(wal, &st) == 0)
        *wal_bytes = (uint64_t)st.st_size;
    return 0;
}

/* ---- expiry by reference ---- */

int hashdb_index_seen(struct hashdb *h, const char *name, int64_t now_s)
{
    if (!name || !*name)
        return -EINVAL;
    sqlite3_stmt *st = h->iseen;
    int rc = sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, now_s);
    return step_done(st, rc == SQLITE_OK ? 0 : err_of(rc));
}

/* The suite an index belongs to: "ROOT/dists/SUITE", or a flat repository's directory. */
static int suite_len(const char *name)
{
    const char *d = strstr(name, "/dists/"), *end;
    if (d)
        end = strchr(d + 7, '/');
    else
        end = strrchr(name, '/');
    return (int)(end ? (size_t)(end - name) : strlen(name));
}

static const char sweep_tables_sql[] =
    "CREATE TEMP TABLE IF NOT EXISTS sweep_idx (id INTEGER PRIMARY KEY, suite TEXT NOT NULL,"
    " seen INTEGER NOT NULL);"
    "CREATE TEMP TABLE IF NOT EXISTS sweep_eff (id INTEGER PRIMARY KEY, seen INTEGER NOT NULL);"
    "DELETE FROM temp.sweep_idx; DELETE FROM temp.sweep_eff;";

/* Fills temp.sweep_eff: each index's last sighting is its suite's latest (a suite whose
 * InRelease apt asks for daily has current Packages, though apt fetches them only when
 * they change). *ref is the latest sighting of all. */
static int sweep_seen(struct hashdb *h, int64_t *ref)
{
    sqlite3_stmt *rd = NULL, *wr = NULL, *q = NULL;
    int rc = run_sql(h->db, sweep_tables_sql);
    if (rc == 0)
        rc = prepare(h->db, "SELECT id, name, seen_s FROM main.indices", &rd);
    if (rc == 0)
        rc = prepare(h->db, "INSERT INTO temp.sweep_idx VALUES (?1, ?2, ?3)", &wr);
    int s = rc == 0 ? SQLITE_ROW : SQLITE_ERROR;
    while (rc == 0 && (s = sqlite3_step(rd)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(rd, 1);
        sqlite3_bind_int64(wr, 1, sqlite3_column_int64(rd, 0));
        sqlite3_bind_text(wr, 2, name ? name : "", name ? suite_len(name) : 0, SQLITE_TRANSIENT);
        sqlite3_bind_int64(wr, 3, sqlite3_column_int64(rd, 2));
        rc = step_done(wr, 0);
    }
    if (rc == 0 && s != SQLITE_DONE)
        rc = err_of(s);
    if (rc == 0)
        rc = run_sql(h->db, "INSERT INTO temp.sweep_eff SELECT i.id, g.m FROM temp.sweep_idx AS i "
                            "JOIN (SELECT suite, max(seen) AS m FROM temp.sweep_idx GROUP BY suite) "
                            "AS g ON g.suite = i.suite");
    if (rc == 0 && (rc = prepare(h->db, "SELECT coalesce(max(seen), 0) FROM temp.sweep_eff", &q)) == 0) {
        rc = sqlite3_step(q) == SQLITE_ROW ? 0 : -EIO;
        *ref = sqlite3_column_int64(q, 0);
    }
    sqlite3_finalize(rd);
    sqlite3_finalize(wr);
    sqlite3_finalize(q);
    return rc;
}

/* listed_s of each cached file: the latest sighting of an index that lists it (or that it
 * is, or whose signature it is: InRelease, Release, Release.gpg). */
static const char sweep_listed_sql[] =
    "UPDATE main.cached SET listed_s = x.seen FROM (SELECT f.key AS key, e.seen AS seen "
    " FROM main.files AS f JOIN temp.sweep_eff AS e ON e.id = f.src) AS x "
    " WHERE x.key = cached.key AND x.seen > cached.listed_s;"
    "UPDATE main.cached SET listed_s = x.seen FROM (SELECT i.name AS key, e.seen AS seen "
    " FROM main.indices AS i JOIN temp.sweep_eff AS e ON e.id = i.id) AS x "
    " WHERE (x.key = cached.key OR (cached.key GLOB '*/Release.gpg' AND "
    " x.key = substr(cached.key, 1, length(cached.key) - 4))) AND x.seen > cached.listed_s;";

/* Hands fn the cached files last listed before cutoff. */
static int sweep_unlisted(struct hashdb *h, int64_t cutoff,
                          int (*fn)(void *ud, const char *key, uint64_t size, const uint8_t sha256[32]),
                          void *ud, size_t *n)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(h->db, "SELECT key, size, sha256 FROM main.cached WHERE listed_s < ?1", &st);
    int s = rc == 0 ? sqlite3_bind_int64(st, 1, cutoff) : SQLITE_ERROR;
    while (rc == 0 && s == SQLITE_OK && (s = sqlite3_step(st)) == SQLITE_ROW) {
        s = SQLITE_OK;
        const char *key = (const char *)sqlite3_column_text(st, 0);
        const void *sha = sqlite3_column_blob(st, 2);
        if (!key || !sha || sqlite3_column_bytes(st, 2) != 32)
            continue;
        if ((rc = fn(ud, key, (uint64_t)sqlite3_column_int64(st, 1), sha)) == 0)
            (*n)++;
    }
    if (rc == 0 && s != SQLITE_DONE)
        rc = err_of(s);
    sqlite3_finalize(st);
    return rc;
}

/* The indices of suites unseen since before cutoff, and their entries, go. */
static int sweep_forget(struct hashdb *h, int64_t cutoff, size_t *n)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "DELETE FROM main.files WHERE src IN (SELECT id FROM temp.sweep_eff WHERE seen < %lld)",
             (long long)cutoff);
    int rc = run_sql(h->db, sql);
    if (rc < 0)
        return rc;
    snprintf(sql, sizeof sql,
             "DELETE FROM main.indices WHERE id IN (SELECT id FROM temp.sweep_eff WHERE seen < %lld)",
             (long long)cutoff);
    if ((rc = run_sql(h->db, sql)) == 0)
        *n = (size_t)sqlite3_changes(h->db);
    return rc;
}

int hashdb_sweep(struct hashdb *h, int64_t keep_s,
                 int (*fn)(void *ud, const char *key, uint64_t size, const uint8_t sha256[32]),
                 void *ud, struct hashdb_sweep_stats *out)
{
    int64_t ref = 0;
    memset(out, 0, sizeof *out);
    int rc = sweep_seen(h, &ref);
    if (rc < 0 || ref <= keep_s)
        return rc; /* no index seen yet: nothing is known to be unlisted */
    out->ref_s = ref;
    if ((rc = hashdb_begin(h)) < 0)
        return rc;
    if ((rc = run_sql(h->db, sweep_listed_sql)) == 0 &&
        (rc = sweep_unlisted(h, ref - keep_s, fn, ud, &out->unlisted)) == 0 &&
        (rc = sweep_forget(h, ref - keep_s, &out->indices_forgotten)) == 0 &&
        (rc = hashdb_commit(h)) == 0)
        return 0;
    hashdb_rollback(h);
    return rc;
}
