/* krpc.c - KRPC messages of the two dialects, decoded from and encoded to bencode.
 *
 * A message is a dict with "t" (transaction id) and "y" ('q', 'r' or 'e'). The decoder
 * validates a query as far as it can without node state and leaves in m->error the
 * KRPC error to answer with: 204 for an unknown method, 203 for missing or malformed
 * arguments (the token itself is checked by the node, which knows the sender). Unknown
 * keys are ignored, as the protocol asks. The encoders write keys in sorted order, so
 * the protocol page's example packets come out byte for byte. */
#include <errno.h>
#include <string.h>
#include "dht/dht-int.h"

static const char *const apt_names[] = {NULL, "ping", "join", "find_node", "get_value",
                                        "store_value"};
static const char *const bep5_names[] = {NULL, "ping", NULL, "find_node", "get_peers",
                                         "announce_peer"};

const char *krpc_method_name(enum dht_dialect d, int method)
{
    if (method <= KM_NONE || method > KM_STORE)
        return NULL;
    return d == DHT_DIALECT_BEP5 ? bep5_names[method] : apt_names[method];
}

static int method_of(enum dht_dialect d, const struct ben_tok *t)
{
    for (int m = KM_PING; m <= KM_STORE; m++) {
        const char *n = krpc_method_name(d, m);
        if (n && strlen(n) == t->len && memcmp(n, t->s, t->len) == 0)
            return m;
    }
    return KM_NONE;
}

static const uint8_t *get_str(const struct ben_tok *tk, int d, const char *key, size_t *len)
{
    int i = ben_dict_get(tk, d, key);
    if (i < 0 || tk[i].type != BEN_STR)
        return NULL;
    *len = tk[i].len;
    return tk[i].s;
}

static const uint8_t *get_id(const struct ben_tok *tk, int d, const char *key)
{
    size_t len = 0;
    const uint8_t *s = get_str(tk, d, key, &len);
    return s && len == DHT_ID_LEN ? s : NULL;
}

static int get_int(const struct ben_tok *tk, int d, const char *key, int64_t *v)
{
    int i = ben_dict_get(tk, d, key);
    if (i < 0 || tk[i].type != BEN_INT)
        return -1;
    *v = tk[i].i;
    return 0;
}

static void parse_want(const struct ben_tok *tk, int a, struct krpc_msg *m)
{
    int w = ben_dict_get(tk, a, "want");
    if (w < 0 || tk[w].type != BEN_LIST)
        return;
    for (uint32_t i = (uint32_t)w + 1, k = 0; k < tk[w].count; k++, i = tk[i].next) {
        if (tk[i].type != BEN_STR || tk[i].len != 2)
            continue;
        if (memcmp(tk[i].s, "n4", 2) == 0)
            m->want |= KRPC_WANT4;
        else if (memcmp(tk[i].s, "n6", 2) == 0)
            m->want |= KRPC_WANT6;
    }
}

static void query_error(struct krpc_msg *m, int code, const char *msg)
{
    if (!m->error) {
        m->error = code;
        m->error_msg = msg;
    }
}

static void parse_query(const struct ben_tok *tk, enum dht_dialect d, struct krpc_msg *m)
{
    int q = ben_dict_get(tk, 0, "q");
    int a = ben_dict_get(tk, 0, "a");
    if (q < 0 || tk[q].type != BEN_STR)
        return query_error(m, 203, "Protocol Error: no method");
    m->method = method_of(d, &tk[q]);
    if (m->method == KM_NONE)
        return query_error(m, 204, "Method Unknown");
    if (a < 0 || tk[a].type != BEN_DICT)
        return query_error(m, 203, "Protocol Error: no arguments");
    m->id = get_id(tk, a, "id");
    if (!m->id)
        return query_error(m, 203, "Protocol Error: bad id");
    int64_t v;
    if (get_int(tk, a, "implied_port", &v) == 0)
        m->implied_port = v != 0;
    if (get_int(tk, a, "port", &v) == 0)
        m->port = v;
    m->token = get_str(tk, a, "token", &m->token_len);
    parse_want(tk, a, m);
    const char *keyname = d == DHT_DIALECT_BEP5 ? "info_hash" : "key";
    switch (m->method) {
    case KM_FIND_NODE:
        m->target = get_id(tk, a, "target");
        if (!m->target)
            query_error(m, 203, "Protocol Error: bad target");
        break;
    case KM_GET:
    case KM_STORE:
        m->target = get_id(tk, a, keyname);
        if (!m->target)
            query_error(m, 203, "Protocol Error: bad key");
        else if (m->method == KM_STORE && m->port != -1 && (m->port < 1 || m->port > 65535))
            query_error(m, 203, "Protocol Error: bad port");
        else if (m->method == KM_STORE && d == DHT_DIALECT_BEP5 && m->port == -1 &&
                 !m->implied_port)
            query_error(m, 203, "Protocol Error: no port");
        else if (m->method == KM_STORE && !m->token)
            query_error(m, 203, "Protocol Error: bad token");
        break;
    default:
        break;
    }
}

static void parse_values(const struct ben_tok *tk, int r, struct krpc_msg *m)
{
    int v = ben_dict_get(tk, r, "values");
    if (v < 0 || tk[v].type != BEN_LIST)
        return;
    m->has_values = 1;
    for (uint32_t i = (uint32_t)v + 1, k = 0; k < tk[v].count; k++, i = tk[i].next) {
        if (tk[i].type != BEN_STR || m->nvalues >= KRPC_MAX_VALUES)
            continue;
        m->values[m->nvalues] = tk[i].s;
        m->value_len[m->nvalues++] = tk[i].len;
    }
}

static int parse_reply(const struct ben_tok *tk, struct krpc_msg *m)
{
    int r = ben_dict_get(tk, 0, "r");
    if (r < 0 || tk[r].type != BEN_DICT)
        return -EINVAL;
    m->id = get_id(tk, r, "id");
    if (!m->id)
        return -EINVAL;
    m->nodes = get_str(tk, r, "nodes", &m->nodes_len);
    m->nodes6 = get_str(tk, r, "nodes6", &m->nodes6_len);
    m->token = get_str(tk, r, "token", &m->token_len);
    m->ip_addr = get_str(tk, r, "ip_addr", &m->ip_addr_len);
    m->ip = get_str(tk, 0, "ip", &m->ip_len);
    int64_t v;
    if (get_int(tk, r, "port", &v) == 0)
        m->port = v;
    parse_values(tk, r, m);
    return 0;
}

static int parse_error(const struct ben_tok *tk, struct krpc_msg *m)
{
    int e = ben_dict_get(tk, 0, "e");
    if (e < 0 || tk[e].type != BEN_LIST || tk[e].count < 1 || tk[e + 1].type != BEN_INT)
        return -EINVAL;
    m->err_code = tk[e + 1].i;
    uint32_t s = tk[e + 1].next;
    if (tk[e].count >= 2 && tk[s].type == BEN_STR) {
        m->err_msg = tk[s].s;
        m->err_len = tk[s].len;
    }
    return 0;
}

int krpc_parse(const uint8_t *buf, size_t len, enum dht_dialect d, struct krpc_msg *m)
{
    struct ben_tok tk[BEN_MAX_TOKENS];
    memset(m, 0, sizeof(*m));
    m->port = -1;
    int n = ben_parse(buf, len, tk, BEN_MAX_TOKENS);
    if (n < 0 || tk[0].type != BEN_DICT)
        return -EINVAL;
    size_t yl = 0;
    m->t = get_str(tk, 0, "t", &m->tlen);
    const uint8_t *y = get_str(tk, 0, "y", &yl);
    if (!m->t || m->tlen > 64)
        return -EINVAL;
    int64_t ro;
    if (get_int(tk, 0, "ro", &ro) == 0)
        m->ro = ro != 0;
    if (!y || yl != 1) {
        /* Without a type nothing is known: answer as to a malformed query. */
        m->y = 'q';
        query_error(m, 203, "Protocol Error: no type");
        return 0;
    }
    m->y = (char)y[0];
    if (m->y == 'q') {
        parse_query(tk, d, m);
        return 0;
    }
    if (m->y == 'r')
        return parse_reply(tk, m);
    if (m->y == 'e')
        return parse_error(tk, m);
    return -EINVAL;
}

static void key_id(struct benc *w, const char *k, const uint8_t *id)
{
    benc_cstr(w, k);
    benc_str(w, id, DHT_ID_LEN);
}

static void write_want(struct benc *w, int want)
{
    if (!want)
        return;
    benc_cstr(w, "want");
    benc_list(w);
    if (want & KRPC_WANT4)
        benc_cstr(w, "n4");
    if (want & KRPC_WANT6)
        benc_cstr(w, "n6");
    benc_end(w);
}

/* Arguments in sorted key order: id, implied_port, info_hash|key, port, target, token,
 * want. */
static void write_args(struct benc *w, enum dht_dialect d, const struct krpc_query *q)
{
    benc_dict(w);
    key_id(w, "id", q->id);
    int store = q->method == KM_STORE, get = q->method == KM_GET;
    if (store && d == DHT_DIALECT_BEP5) {
        benc_cstr(w, "implied_port");
        benc_int(w, q->implied_port ? 1 : 0);
    }
    if ((store || get) && d == DHT_DIALECT_BEP5)
        key_id(w, "info_hash", q->target);
    if ((store || get) && d != DHT_DIALECT_BEP5)
        key_id(w, "key", q->target);
    if (store && q->port >= 0) {
        benc_cstr(w, "port");
        benc_int(w, q->port);
    }
    if (q->method == KM_FIND_NODE)
        key_id(w, "target", q->target);
    if (store && q->token) {
        benc_cstr(w, "token");
        benc_str(w, q->token, q->token_len);
    }
    if (q->method == KM_FIND_NODE || get)
        write_want(w, q->want);
    benc_end(w);
}

int krpc_encode_query(enum dht_dialect d, const struct krpc_query *q, uint8_t *buf, size_t cap)
{
    const char *name = krpc_method_name(d, q->method);
    struct benc w;
    if (!name || !q->id || (q->method >= KM_FIND_NODE && !q->target))
        return -EINVAL;
    benc_init(&w, buf, cap);
    benc_dict(&w);
    benc_cstr(&w, "a");
    write_args(&w, d, q);
    benc_cstr(&w, "q");
    benc_cstr(&w, name);
    if (q->ro) {
        benc_cstr(&w, "ro");
        benc_int(&w, 1);
    }
    benc_cstr(&w, "t");
    benc_str(&w, q->t, q->tlen);
    benc_cstr(&w, "y");
    benc_cstr(&w, "q");
    benc_end(&w);
    return benc_finish(&w);
}

/* Reply keys in sorted order: ip, then r's id, ip_addr, nodes, nodes6, port, token,
 * values. */
int krpc_encode_reply(const struct krpc_reply *r, uint8_t *buf, size_t cap)
{
    struct benc w;
    benc_init(&w, buf, cap);
    benc_dict(&w);
    if (r->ip) {
        benc_cstr(&w, "ip");
        benc_str(&w, r->ip, r->ip_len);
    }
    benc_cstr(&w, "r");
    benc_dict(&w);
    key_id(&w, "id", r->id);
    if (r->ip_addr) {
        benc_cstr(&w, "ip_addr");
        benc_cstr(&w, r->ip_addr);
    }
    if (r->nodes) {
        benc_cstr(&w, "nodes");
        benc_str(&w, r->nodes, r->nodes_len);
    }
    if (r->nodes6) {
        benc_cstr(&w, "nodes6");
        benc_str(&w, r->nodes6, r->nodes6_len);
    }
    if (r->port >= 0) {
        benc_cstr(&w, "port");
        benc_int(&w, r->port);
    }
    if (r->token) {
        benc_cstr(&w, "token");
        benc_str(&w, r->token, r->token_len);
    }
    if (r->has_values) {
        benc_cstr(&w, "values");
        benc_list(&w);
        for (size_t i = 0; i < r->nvalues; i++)
            benc_str(&w, r->values[i], r->value_len[i]);
        benc_end(&w);
    }
    benc_end(&w);
    benc_cstr(&w, "t");
    benc_str(&w, r->t, r->tlen);
    benc_cstr(&w, "y");
    benc_cstr(&w, "r");
    benc_end(&w);
    return benc_finish(&w);
}

int krpc_encode_error(const uint8_t *t, size_t tlen, int code, const char *msg, uint8_t *buf,
                      size_t cap)
{
    struct benc w;
    benc_init(&w, buf, cap);
    benc_dict(&w);
    benc_cstr(&w, "e");
    benc_list(&w);
    benc_int(&w, code);
    benc_cstr(&w, msg);
    benc_end(&w);
    benc_cstr(&w, "t");
    benc_str(&w, t ? t : (const uint8_t *)"", t ? tlen : 0);
    benc_cstr(&w, "y");
    benc_cstr(&w, "e");
    benc_end(&w);
    return benc_finish(&w);
}
