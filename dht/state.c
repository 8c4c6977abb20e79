/* state.c - what outlives a node and what it tells its LAN: the state file (node id and
 * routing table), LAN discovery announcements, and readable dumps.
 *
 * State file, one record per line, at most STATE_LINE_MAX bytes each:
 *     apt-dht-state 1
 *     id <40 hex>
 *     node <40 hex> <numeric address> <port>
 * Loading keeps the saved id (so the node's place in the DHT survives restarts) and
 * re-inserts the nodes as questionable; the own-id lookup at start confirms them.
 *
 * LAN announcement (BEP 14 style, text over UDP multicast):
 *     BT-SEARCH * HTTP/1.1\r\nHost: <group>:<port>\r\nPort: <dht port>\r\n
 *     Infohash: <service id hex>\r\ncookie: <node cookie hex>\r\n\r\n\r\n
 * The service id is SHA-1("apt-dht:apt-dht") or SHA-1("apt-dht:bep5"); the cookie lets
 * a node ignore its own announcements looped back by the kernel. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "dht/node.h"

#define STATE_LINE_MAX 200
#define STATE_FILE_MAX (1 << 20)

static void hex(const uint8_t *b, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[b[i] >> 4];
        out[2 * i + 1] = d[b[i] & 15];
    }
    out[2 * n] = 0;
}

static int unhex(const char *s, size_t slen, uint8_t *out, size_t n)
{
    if (slen != 2 * n)
        return -EINVAL;
    for (size_t i = 0; i < 2 * n; i++) {
        char c = s[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (v < 0)
            return -EINVAL;
        out[i / 2] = (uint8_t)(i % 2 ? (out[i / 2] | v) : v << 4);
    }
    return 0;
}

static void addr_text(const dht_sa *a, char *ip, size_t cap, unsigned *port)
{
    const void *src = a->sa.sa_family == AF_INET ? (const void *)&a->in.sin_addr
                                                 : (const void *)&a->in6.sin6_addr;
    if (!inet_ntop(a->sa.sa_family, src, ip, (socklen_t)cap))
        snprintf(ip, cap, "?");
    *port = ntohs(a->sa.sa_family == AF_INET ? a->in.sin_port : a->in6.sin6_port);
}

static int append(char *buf, size_t cap, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int append(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= cap - *len)
        return -ENOBUFS;
    *len += (size_t)w;
    return 0;
}

int dht_save_buf(const struct dht *dht, char *buf, size_t cap)
{
    char idhex[41], nhex[41], ip[INET6_ADDRSTRLEN];
    size_t len = 0;
    unsigned port;
    hex(dht->id, DHT_ID_LEN, idhex);
    if (append(buf, cap, &len, "apt-dht-state 1\nid %s\n", idhex) < 0)
        return -ENOBUFS;
    for (int f = 0; f < 2; f++) {
        const struct rtable *rt = &dht->rt[f];
        for (int bi = 0; bi < rt->nb; bi++) {
            for (int i = 0; i < rt->b[bi]->count; i++) {
                const struct rt_node *n = &rt->b[bi]->n[i];
                if (rt_status(n, dht->now) == RT_BAD)
                    continue;
                hex(n->id, DHT_ID_LEN, nhex);
                addr_text(&n->addr, ip, sizeof(ip), &port);
                if (append(buf, cap, &len, "node %s %s %u\n", nhex, ip, port) < 0)
                    return -ENOBUFS;
            }
        }
    }
    return (int)len;
}

/* Parses "node <hex> <ip> <port>" into id and address. */
static int parse_node_line(const char *l, size_t n, uint8_t *id, dht_sa *a)
{
    char tmp[STATE_LINE_MAX + 1], *save = NULL;
    memcpy(tmp, l, n);
    tmp[n] = 0;
    char *w0 = strtok_r(tmp, " ", &save), *w1 = strtok_r(NULL, " ", &save);
    char *w2 = strtok_r(NULL, " ", &save), *w3 = strtok_r(NULL, " ", &save);
    if (!w0 || !w1 || !w2 || !w3 || strcmp(w0, "node") != 0 ||
        unhex(w1, strlen(w1), id, DHT_ID_LEN) < 0)
        return -EINVAL;
    char *end = NULL;
    errno = 0;
    unsigned long port = strtoul(w3, &end, 10);
    if (errno || *end || port == 0 || port > 65535)
        return -EINVAL;
    memset(a, 0, sizeof(*a));
    if (inet_pton(AF_INET, w2, &a->in.sin_addr) == 1) {
        a->in.sin_family = AF_INET;
        a->in.sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET6, w2, &a->in6.sin6_addr) == 1) {
        a->in6.sin6_family = AF_INET6;
        a->in6.sin6_port = htons((uint16_t)port);
    } else {
        return -EINVAL;
    }
    return 0;
}

int dht_load_buf(struct dht *dht, const char *buf, size_t len)
{
    uint8_t id[DHT_ID_LEN];
    int line = 0, nodes = 0, have_id = 0;
    if (rt_count(&dht->rt[0], dht->now, NULL, NULL) + rt_count(&dht->rt[1], dht->now, NULL, NULL))
        return -EBUSY;
    for (size_t off = 0; off < len; line++) {
        const char *l = buf + off, *nl = memchr(l, '\n', len - off);
        size_t n = nl ? (size_t)(nl - l) : len - off;
        off += n + (nl ? 1 : 0);
        if (n > STATE_LINE_MAX)
            return -EINVAL;
        if (line == 0) {
            if (n != 15 || memcmp(l, "apt-dht-state 1", 15) != 0)
                return -EINVAL;
        } else if (line == 1) {
            if (n != 43 || memcmp(l, "id ", 3) != 0 || unhex(l + 3, 40, id, DHT_ID_LEN) < 0)
                return -EINVAL;
            have_id = 1;
            memcpy(dht->id, id, DHT_ID_LEN);
            memcpy(dht->rt[0].self, id, DHT_ID_LEN);
            memcpy(dht->rt[1].self, id, DHT_ID_LEN);
        } else if (n > 0) {
            uint8_t nid[DHT_ID_LEN];
            dht_sa a;
            if (parse_node_line(l, n, nid, &a) < 0)
                return -EINVAL;
            if (rt_heard(&dht->rt[dht_addr_family(&a)], nid, &a, 0, dht->now, NULL) == RT_ADDED)
                nodes++;
        }
    }
    if (!have_id)
        return -EINVAL;
    if (nodes)
        dht->own_lookup_due = 1;
    return nodes;
}

int dht_save(const struct dht *dht, const char *path)
{
    char tmp[4096];
    int r, fd = -1;
    char *buf = malloc(STATE_FILE_MAX);
    if (!buf)
        return -ENOMEM;
    r = dht_save_buf(dht, buf, STATE_FILE_MAX);
    if (r < 0)
        goto fail;
    size_t len = (size_t)r;
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
        r = -ENAMETOOLONG;
        goto fail;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        r = -errno;
        goto fail;
    }
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, buf + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            r = -errno;
            goto fail;
        }
        off += (size_t)w;
    }
    if (fsync(fd) < 0 || close(fd) < 0) {
        fd = -1;
        r = -errno;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        r = -errno;
        goto fail;
    }
    free(buf);
    return (int)len;
fail:
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    free(buf);
    return r;
}

int dht_load(struct dht *dht, const char *path)
{
    int r, fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t len = 0;
    char *buf = NULL;
    if (fd < 0)
        return -errno;
    r = -ENOMEM;
    buf = malloc(STATE_FILE_MAX);
    if (!buf)
        goto fail;
    for (;;) {
        ssize_t n = read(fd, buf + len, STATE_FILE_MAX - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            goto fail;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == STATE_FILE_MAX) {
            r = -EFBIG;
            goto fail;
        }
    }
    r = dht_load_buf(dht, buf, len);
fail:
    free(buf);
    close(fd);
    return r;
}

int dht_get_nodes(const struct dht *dht, struct dht_node_info *out, size_t max)
{
    size_t n = 0;
    for (int f = 0; f < 2; f++) {
        const struct rtable *rt = &dht->rt[f];
        for (int bi = rt->nb - 1; bi >= 0; bi--) {
            for (int i = 0; i < rt->b[bi]->count && n < max; i++) {
                const struct rt_node *rn = &rt->b[bi]->n[i];
                memcpy(out[n].id, rn->id, DHT_ID_LEN);
                dht_sa_to_storage(&rn->addr, &out[n].addr);
                out[n].good = rt_status(rn, dht->now) == RT_GOOD;
                out[n].last_reply_ms = rn->last_reply_ms;
                n++;
            }
        }
    }
    return (int)n;
}

static void service_id(enum dht_dialect d, char out[41])
{
    uint8_t md[20];
    const char *s = d == DHT_DIALECT_BEP5 ? "apt-dht:bep5" : "apt-dht:apt-dht";
    if (dht_sha1(s, strlen(s), "", 0, md) < 0)
        memset(md, 0, sizeof(md));
    hex(md, sizeof(md), out);
}

int dht_lan_build(const struct dht *dht, int family, char *buf, size_t cap)
{
    char sid[41], cookie[17];
    if (family != DHT_FAMILY_V4 && family != DHT_FAMILY_V6)
        return -EINVAL;
    service_id(dht->cfg.dialect, sid);
    hex(dht->lan_cookie, sizeof(dht->lan_cookie), cookie);
    int n = snprintf(buf, cap,
                     "BT-SEARCH * HTTP/1.1\r\nHost: %s%s%s:%u\r\nPort: %u\r\n"
                     "Infohash: %s\r\ncookie: %s\r\n\r\n\r\n",
                     family == DHT_FAMILY_V6 ? "[" : "",
                     family == DHT_FAMILY_V6 ? DHT_LAN_GROUP6 : DHT_LAN_GROUP4,
                     family == DHT_FAMILY_V6 ? "]" : "", (unsigned)DHT_LAN_PORT,
                     (unsigned)dht->cfg.port, sid, cookie);
    if (n < 0 || (size_t)n >= cap)
        return -ENOBUFS;
    return n;
}

/* Finds "Name: value" (case-insensitive name) in the header block. */
static int header(const char *b, size_t len, const char *name, const char **v, size_t *vlen)
{
    size_t nl = strlen(name);
    for (size_t off = 0; off < len;) {
        const char *l = b + off, *e = memchr(l, '\n', len - off);
        size_t n = e ? (size_t)(e - l) : len - off;
        off += n + 1;
        if (n && l[n - 1] == '\r')
            n--;
        if (n > nl + 1 && strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
            size_t s = nl + 1;
            while (s < n && l[s] == ' ')
                s++;
            *v = l + s;
            *vlen = n - s;
            return 0;
        }
    }
    return -ENOENT;
}

int dht_lan_input(struct dht *dht, const void *buf, size_t len, const struct sockaddr *from,
                  socklen_t fromlen)
{
    const char *b = buf, *v;
    size_t vl;
    char sid[41], cookie[17], num[8];
    dht_sa a;
    static const char start[] = "BT-SEARCH * HTTP/1.1\r\n";
    if (len > DHT_MAX_PACKET || len < sizeof start - 1 || memcmp(b, start, sizeof start - 1) != 0 ||
        dht_sa_from(&a, from, fromlen) < 0)
        return -EINVAL;
    service_id(dht->cfg.dialect, sid);
    if (header(b, len, "Infohash", &v, &vl) < 0 || vl != 40)
        return -EINVAL;
    if (strncasecmp(v, sid, 40) != 0)
        return 0;
    hex(dht->lan_cookie, sizeof(dht->lan_cookie), cookie);
    if (header(b, len, "cookie", &v, &vl) == 0 && vl == 16 && strncasecmp(v, cookie, 16) == 0)
        return 0;
    if (header(b, len, "Port", &v, &vl) < 0 || vl == 0 || vl >= sizeof(num))
        return -EINVAL;
    memcpy(num, v, vl);
    num[vl] = 0;
    char *end = NULL;
    errno = 0;
    unsigned long port = strtoul(num, &end, 10);
    if (errno || *end || port == 0 || port > 65535)
        return -EINVAL;
    if (a.sa.sa_family == AF_INET)
        a.in.sin_port = htons((uint16_t)port);
    else
        a.in6.sin6_port = htons((uint16_t)port);
    dht_add_bootstrap(dht, &a.sa, dht_addr_len(&a)); /* known already: just ping */
    dht_ping(dht, &a.sa, dht_addr_len(&a), NULL, NULL);
    return 1;
}

static const char *state_name(enum dht_state s)
{
    static const char *const n[] = {"ALONE", "ACTIVE", "NO_NETWORK", "FAULTED"};
    return (unsigned)s < 4 ? n[s] : "?";
}

/* " srtt 0.4 ms rttvar 0.1 ms deadline 25 ms[ failed]" and the newline. */
static void dump_rtt(const struct dht *dht, const dht_sa *a, FILE *f)
{
    uint32_t srtt, var;
    if (contact_rtt(dht, a, &srtt, &var) == 0)
        fprintf(f, " srtt %.1f ms rttvar %.1f ms", srtt / 1000.0, var / 1000.0);
    fprintf(f, " deadline %u ms%s\n", contact_deadline_ms(dht, a),
            contact_failed(dht, a) ? " failed" : "");
}

int dht_dump(const struct dht *dht, FILE *f)
{
    char idhex[41], ip[INET6_ADDRSTRLEN];
    unsigned port;
    struct dht_stats st;
    dht_get_stats(dht, &st);
    hex(dht->id, DHT_ID_LEN, idhex);
    fprintf(f, "dialect %s state %s id %s\n",
            dht->cfg.dialect == DHT_DIALECT_BEP5 ? "bep5" : "apt-dht", state_name(dht->state),
            idhex);
    fprintf(f, "nodes good %u questionable %u buckets %u values %u keys %u lookups %u "
            "announces %u mem %zu\n", st.nodes_good, st.nodes_questionable, st.buckets,
            st.values_stored, st.keys_stored, st.lookups_active, st.announces, st.mem_bytes);
    fprintf(f, "queries sent %llu received %llu replies %llu timeouts %llu dropped %llu\n",
            (unsigned long long)st.queries_sent, (unsigned long long)st.queries_received,
            (unsigned long long)st.replies_received, (unsigned long long)st.timeouts,
            (unsigned long long)st.packets_dropped);
    fprintf(f, "round trip of all answers: srtt %.1f ms rttvar %.1f ms (%u samples)\n",
            dht->rtt.srtt_us / 1000.0, dht->rtt.rttvar_us / 1000.0, dht->rtt.samples);
    fprintf(f, "bootstrap %d address(es), providers", dht->nboot);
    for (int i = 0; i < dht->nprov; i++)
        fprintf(f, " %s", dht->prov[i].name ? dht->prov[i].name : "?");
    fprintf(f, "%s\n", dht->nprov ? "" : " none");
    for (int fam = 0; fam < 2; fam++) {
        const struct rtable *rt = &dht->rt[fam];
        for (int bi = 0; bi < rt->nb; bi++) {
            const struct rt_bucket *b = rt->b[bi];
            if (!b->count && !b->nrepl)
                continue;
            fprintf(f, "bucket %s/%d nodes %d cached %d\n", fam ? "v6" : "v4", bi, b->count,
                    b->nrepl);
            for (int i = 0; i < b->count; i++) {
                const struct rt_node *n = &b->n[i];
                static const char *const sn[] = {"good", "questionable", "bad"};
                hex(n->id, DHT_ID_LEN, idhex);
                addr_text(&n->addr, ip, sizeof(ip), &port);
                fprintf(f, "  %s %s%s%s:%u %s", idhex, fam ? "[" : "", ip, fam ? "]" : "",
                        port, sn[rt_status(n, dht->now)]);
                dump_rtt(dht, &n->addr, f);
            }
        }
    }
    store_dump(dht->store, f, dht->now);
    return 0;
}
