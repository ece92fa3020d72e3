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
 *
 * Both kinds of reader (these pooled objects, and hiredis's own in the
 * blocking contexts) bound the elements of one reply: hiredis allocates an
 * array's element vector as soon as it reads "*<n>", so ten bytes from a
 * broken or hostile server would otherwise cost 8*n bytes (16 GB for
 * n = 2^31-1, any number of times in nested arrays).
 */
#include <pthread.h>
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

/* ---- the bound on one reply ------------------------------------------- */

/*
 * Counts an array of elements into its reply; false past the bound.  The
 * count lives in the root array's `integer`, which hiredis leaves unused for
 * arrays: no state outside the reply, so interleaved replies of many
 * connections on one thread cannot mix.  A refused array makes the reader
 * report out of memory (its only way to hear of a failed object), and the
 * connection is dropped like for any protocol error.
 */
static bool reply_budget(const redisReadTask *task, int elements)
{
    if (elements < 0 || elements > SLUICE_REDIS_REPLY_ELEMENTS_MAX)
        return false;
    const redisReadTask *t = task;
    while (t->parent)
        t = t->parent;
    if (t == task)
        return true; /* the root: counted once it exists */
    redisReply *root = t->obj;
    if (root->integer > SLUICE_REDIS_REPLY_ELEMENTS_MAX - elements)
        return false;
    root->integer += elements;
    return true;
}

static void *(*hiredis_create_array)(const redisReadTask *, int);
static redisReplyObjectFunctions bounded_functions;
static pthread_once_t bounded_once = PTHREAD_ONCE_INIT;

static void *bounded_create_array(const redisReadTask *task, int elements)
{
    if (!reply_budget(task, elements))
        return NULL;
    redisReply *r = hiredis_create_array(task, elements);
    if (r && !task->parent)
        r->integer = elements;
    return r;
}

static void bounded_init(void)
{
    /* hiredis's own functions are static: take them from a fresh reader */
    redisReader *r = redisReaderCreate();
    if (!r)
        return;
    bounded_functions = *r->fn;
    hiredis_create_array = r->fn->createArray;
    bounded_functions.createArray = bounded_create_array;
    redisReaderFree(r);
}

int sluice__redis_reader_bound(redisReader *reader)
{
    pthread_once(&bounded_once, bounded_init);
    if (!hiredis_create_array)
        return SLUICE_ENOMEM;
    reader->fn = &bounded_functions;
    return 0;
}

/* ---- pooled objects ---------------------------------------------------- */

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
    if (!reply_budget(task, elements))
        return NULL;
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
    if (!task->parent)
        r->integer = elements; /* reply_budget's count */
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
