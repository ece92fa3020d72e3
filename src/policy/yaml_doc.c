/* SPDX-License-Identifier: MIT */
/*
 * yaml_doc.c - builds a sluice__ynode tree from libyaml's event stream.
 *
 * libyaml's own document loader (yaml_parser_load) would expand aliases and
 * allocates with plain malloc; walking the events ourselves lets us refuse
 * aliases, bound depth and node count, keep each node's line, and route our
 * allocations through the sluice allocator hook.  libyaml still allocates its
 * parser buffers with malloc; those are freed on every path.
 */
#include "policy/yaml_doc.h"

#include <string.h>
#include <yaml.h>

#include "policy/conf.h"
#include "util/alloc.h"

typedef struct builder {
    const char *name;
    const char *text;
    size_t len;
    sluice_error *err;
    sluice__ynode *root;
    sluice__ynode *stack[SLUICE_YAML_MAX_DEPTH + 1];
    int depth;
    size_t nodes;
    int ndocs;
} builder;

void sluice__ynode_free(sluice__ynode *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n * (n->kind == SLUICE_YNODE_MAP ? 2 : 1); i++)
        sluice__ynode_free(n->kids[i]);
    /* A mapping whose value never arrived (error mid-pair) holds an odd kid. */
    if (n->kind == SLUICE_YNODE_MAP && n->cap > n->n * 2 && n->kids && n->kids[n->n * 2])
        sluice__ynode_free(n->kids[n->n * 2]);
    sluice__free(n->kids);
    sluice__free(n->str);
    sluice__free(n);
}

const char *sluice__ynode_kind_name(const sluice__ynode *n)
{
    if (!n)
        return "nothing";
    switch (n->kind) {
    case SLUICE_YNODE_SEQ:
        return "a list";
    case SLUICE_YNODE_MAP:
        return "a mapping";
    default:
        return "a scalar";
    }
}

const sluice__ynode *sluice__ynode_get(const sluice__ynode *map, const char *key)
{
    if (!map || map->kind != SLUICE_YNODE_MAP)
        return NULL;
    for (size_t i = 0; i < map->n; i++) {
        const sluice__ynode *k = map->kids[2 * i];
        if (k->kind == SLUICE_YNODE_SCALAR && strcmp(k->str, key) == 0)
            return map->kids[2 * i + 1];
    }
    return NULL;
}

/* Line (1-based) of a byte offset, for reader errors that carry no mark. */
static int line_of_offset(const char *text, size_t len, size_t off)
{
    int line = 1;
    for (size_t i = 0; i < off && i < len; i++)
        line += text[i] == '\n';
    return line;
}

static int syntax_error(builder *b, yaml_parser_t *p)
{
    int line;
    if (p->error == YAML_MEMORY_ERROR)
        return sluice__conf_fail(b->err, SLUICE_ENOMEM, b->name, 0, "out of memory");
    if (p->error == YAML_READER_ERROR)
        line = line_of_offset(b->text, b->len, p->problem_offset);
    else
        line = (int)p->problem_mark.line + 1;
    const char *problem = p->problem ? p->problem : "unknown problem";
    if (p->context)
        return sluice__conf_fail(b->err, SLUICE_ECONFIG, b->name, line,
                                 "YAML syntax error: %s (%s at line %d)", problem, p->context,
                                 (int)p->context_mark.line + 1);
    return sluice__conf_fail(b->err, SLUICE_ECONFIG, b->name, line, "YAML syntax error: %s",
                             problem);
}

/* Appends child to the container on top of the stack (or makes it the root). */
static int attach(builder *b, sluice__ynode *child)
{
    if (b->depth == 0) {
        b->root = child;
        return 0;
    }
    sluice__ynode *top = b->stack[b->depth - 1];
    size_t used = top->kind == SLUICE_YNODE_MAP ? top->n * 2 : top->n;
    /* A mapping holds a dangling key in kids[used] until its value arrives. */
    size_t slot = used;
    if (top->kind == SLUICE_YNODE_MAP && top->cap > used && top->kids[used])
        slot = used + 1;
    if (slot >= top->cap) {
        size_t cap = top->cap ? top->cap * 2 : 8;
        sluice__ynode **k = sluice__realloc(top->kids, cap * sizeof(*k));
        if (!k)
            return SLUICE_ENOMEM;
        memset(k + top->cap, 0, (cap - top->cap) * sizeof(*k));
        top->kids = k;
        top->cap = cap;
    }
    top->kids[slot] = child;
    if (top->kind == SLUICE_YNODE_SEQ)
        top->n++;
    else if (slot == used + 1)
        top->n++;
    return 0;
}

static sluice__ynode *new_node(builder *b, int kind, const yaml_event_t *ev)
{
    sluice__ynode *n = sluice__calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    n->kind = kind;
    n->line = (int)ev->start_mark.line + 1;
    b->nodes++;
    return n;
}

static int on_scalar(builder *b, const yaml_event_t *ev)
{
    const char *v = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    if (memchr(v, '\0', len))
        return sluice__conf_fail(b->err, SLUICE_ECONFIG, b->name, (int)ev->start_mark.line + 1,
                                 "NUL character in a string");
    sluice__ynode *n = new_node(b, SLUICE_YNODE_SCALAR, ev);
    if (!n)
        return SLUICE_ENOMEM;
    n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !ev->data.scalar.tag;
    n->str = sluice__strndup(v, len);
    n->len = len;
    if (!n->str) {
        sluice__ynode_free(n);
        return SLUICE_ENOMEM;
    }
    int rc = attach(b, n);
    if (rc)
        sluice__ynode_free(n);
    return rc;
}

static int on_start(builder *b, const yaml_event_t *ev, int kind)
{
    if (b->depth >= SLUICE_YAML_MAX_DEPTH)
        return sluice__conf_fail(b->err, SLUICE_ECONFIG, b->name, (int)ev->start_mark.line + 1,
                                 "nesting deeper than %d levels", SLUICE_YAML_MAX_DEPTH);
    sluice__ynode *n = new_node(b, kind, ev);
    if (!n)
        return SLUICE_ENOMEM;
    int rc = attach(b, n);
    if (rc) {
        sluice__ynode_free(n);
        return rc;
    }
    b->stack[b->depth++] = n;
    return 0;
}

static int on_event(builder *b, const yaml_event_t *ev)
{
    int line = (int)ev->start_mark.line + 1;
    if (b->nodes >= SLUICE_YAML_MAX_NODES)
        return sluice__conf_fail(b->err, SLUICE_ECONFIG, b->name, line,
                                 "more than %d YAML nodes", SLUICE_YAML_MAX_NODES);
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++b->ndocs > 1)
            return sluice__conf_fail(b->err, SLUICE_ECONFIG, b->name, line,
                                     "more than one YAML document ('---') in a config");
        return 0;
    case YAML_ALIAS_EVENT:
        return sluice__conf_fail(b->err, SLUICE_ECONFIG, b->name, line,
                                 "YAML aliases ('*name') are not supported");
    case YAML_SCALAR_EVENT:
        return on_scalar(b, ev);
    case YAML_SEQUENCE_START_EVENT:
        return on_start(b, ev, SLUICE_YNODE_SEQ);
    case YAML_MAPPING_START_EVENT:
        return on_start(b, ev, SLUICE_YNODE_MAP);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        if (b->depth > 0)
            b->depth--;
        return 0;
    default:
        return 0;
    }
}

int sluice__yaml_parse(const char *text, size_t len, const char *name, sluice__ynode **root,
                       sluice_error *err)
{
    builder b;
    memset(&b, 0, sizeof(b));
    b.name = name;
    b.text = text;
    b.len = len;
    b.err = err;
    *root = NULL;

    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return sluice__conf_fail(err, SLUICE_ENOMEM, name, 0, "out of memory");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);

    int rc = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = syntax_error(&b, &p);
            break;
        }
        rc = on_event(&b, &ev);
        int done = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
        if (rc == SLUICE_ENOMEM)
            rc = sluice__conf_fail(err, SLUICE_ENOMEM, name, 0, "out of memory");
        if (rc || done)
            break;
    }
    yaml_parser_delete(&p);
    if (rc) {
        sluice__ynode_free(b.root);
        return rc;
    }
    *root = b.root;
    return 0;
}
