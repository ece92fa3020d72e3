/* SPDX-License-Identifier: MIT */
/*
 * redis_rpool.c - reply objects of the asynchronous connections, from a
 * per-connection pool.  hiredis's reader builds every reply as calloc'd
 * redisReply objects (a decision's reply is an array and 1 + 6 per limit
 * integers: nine allocations and nine frees for one limit).  A link installs
 * these functions in its reader instead: the objects are the same
 * redisReply structs, so parsing and hiredis itself see no difference, but
 * they come from and go back to free lists kept by the link.  hiredis
 * still does all the RESP parsing; this only places its results.
 * Single-threaded like the loop that owns the link; the pool outlives every
 * object (the link frees it after its context).
 */
#include <stddef.h>
#include <string.h>

#include "store/redis/redis_int.h"
#include "util/alloc.h"

#define VEC_CAP 64      /* element vectors up to this many are pooled (a decision: 1 + 6*8) */
#define NODES_KEEP 1024 /* free objects kept at most; the rest go back to the allocator */
#define VECS_KEEP 128

typedef struct rnode {
    sluice__redis_rpool *pool;
    union {
        struct rnode *next; /* while free */
        redisReply r;
    };
} rnode;

typedef union rvec {
    union rvec *next; /* while free */
    redisReply *element[VEC_CAP];
} rvec;

struct sluice__redis_rpool {
    rnode *nodes;
    rvec *vecs;
    int nnodes, nvecs;
};

sluice__redis_rpool *sluice__redis_rpool_new(void)
{
    return sluice__calloc(1, sizeof(sluice__redis_rpool));
}

void sluice__redis_rpool_free(sluice__redis_rpool *p)
{
    if (!p)
        return;
    while (p->nodes) {
        rnode *n = p->nodes;
        p->nodes = n->next;
        sluice__free(n);
    }
    while (p->vecs) {
        rvec *v = p->vecs;
        p->vecs = v->next;
        sluice__free(v);
    }
    sluice__free(p);
}

/* A zeroed object of type, hung under its parent array if any. */
static redisReply *node_get(const redisReadTask *task, int type)
{
    sluice__redis_rpool *p = task->privdata;
    rnode *n = p->nodes;
    if (n) {
        p->nodes = n->next;
        p->nnodes--;
    } else if (!(n = sluice__malloc(sizeof(*n)))) {
        return NULL;
    }
    n->pool = p;
    memset(&n->r, 0, sizeof(n->r));
    n->r.type = type;
    if (task->parent) {
        redisReply *parent = task->parent->obj;
        parent->element[task->idx] = &n->r;
    }
    return &n->r;
}

static void *create_string(const redisReadTask *task, char *str, size_t len)
{
    char *buf = sluice__malloc(len + 1);
    if (!buf)
        return NULL;
    redisReply *r = node_get(task, task->type); /* STRING, STATUS or ERROR */
    if (!r) {
        sluice__free(buf);
        return NULL;
    }
    memcpy(buf, str, len);
    buf[len] = '\0';
    r->str = buf;
    r->len = len;
    return r;
}

static void *create_array(const redisReadTask *task, int elements)
{
    sluice__redis_rpool *p = task->privdata;
    redisReply **element = NULL;
    if (elements > 0 && elements <= VEC_CAP && p->vecs) {
        rvec *v = p->vecs;
        p->vecs = v->next;
        p->nvecs--;
        element = v->element;
    } else if (elements > 0) {
        /* pooled sizes get a whole rvec, so that any of them can be pooled */
        size_t size = elements <= VEC_CAP ? sizeof(rvec) : sizeof(redisReply *) * (size_t)elements;
        if (!(element = sluice__malloc(size)))
            return NULL;
    }
    if (element)
        memset(element, 0, sizeof(redisReply *) * (size_t)elements);
    redisReply *r = node_get(task, REDIS_REPLY_ARRAY);
    if (!r) {
        sluice__free(element);
        return NULL;
    }
    r->element = element;
    r->elements = elements > 0 ? (size_t)elements : 0;
    return r;
}

static void *create_integer(const redisReadTask *task, long long value)
{
    redisReply *r = node_get(task, REDIS_REPLY_INTEGER);
    if (r)
        r->integer = value;
    return r;
}

static void *create_nil(const redisReadTask *task)
{
    return node_get(task, REDIS_REPLY_NIL);
}

static void free_object(void *obj)
{
    redisReply *r = obj;
    if (!r)
        return;
    rnode *n = (rnode *)(void *)((char *)r - offsetof(rnode, r));
    sluice__redis_rpool *p = n->pool;
    if (r->type == REDIS_REPLY_ARRAY && r->element) {
        for (size_t i = 0; i < r->elements; i++)
            free_object(r->element[i]);
        if (r->elements <= VEC_CAP && p->nvecs < VECS_KEEP) {
            rvec *v = (rvec *)(void *)r->element;
            v->next = p->vecs;
            p->vecs = v;
            p->nvecs++;
        } else {
            sluice__free(r->element);
        }
    } else if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
               r->type == REDIS_REPLY_ERROR) {
        sluice__free(r->str);
    }
    if (p->nnodes < NODES_KEEP) {
        n->next = p->nodes;
        p->nodes = n;
        p->nnodes++;
    } else {
        sluice__free(n);
    }
}

static redisReplyObjectFunctions pool_functions = {
    create_string, create_array, create_integer, create_nil, free_object,
};

void sluice__redis_rpool_use(sluice__redis_rpool *p, redisReader *reader)
{
    reader->fn = &pool_functions;
    reader->privdata = p;
}
