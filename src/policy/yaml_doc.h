/* SPDX-License-Identifier: MIT */
/*
 * yaml_doc.h - a YAML document as a small tree of nodes (scalar, sequence,
 * mapping), each remembering the 1-based line it starts on, built from
 * libyaml's parser events.  The config loader walks this tree to validate
 * and convert; it never sees libyaml.  Exactly one document is accepted;
 * aliases are refused (no expansion bombs); depth and node count are bounded.
 * Every allocation goes through the sluice allocator hook.
 */
#ifndef SLUICE_POLICY_YAML_DOC_H
#define SLUICE_POLICY_YAML_DOC_H

#include <stdbool.h>
#include <stddef.h>

#include "sluice.h"

#define SLUICE_YAML_MAX_DEPTH 32       /* nested sequences/mappings */
#define SLUICE_YAML_MAX_NODES 200000   /* nodes in one document */

enum { SLUICE_YNODE_SCALAR = 0, SLUICE_YNODE_SEQ = 1, SLUICE_YNODE_MAP = 2 };

typedef struct sluice__ynode {
    int kind;                    /* SLUICE_YNODE_* */
    int line;                    /* 1-based line where the node starts */
    bool plain;                  /* scalar written plain (unquoted, untagged): may be
                                  * a number, a bool or null; a quoted one is a string */
    char *str;                   /* scalar text, NUL-terminated (no NUL inside) */
    size_t len;                  /* strlen(str) */
    size_t n;                    /* SEQ: items; MAP: key/value pairs */
    size_t cap;                  /* allocated slots in kids */
    struct sluice__ynode **kids; /* SEQ: kids[i]; MAP: kids[2i] key, kids[2i+1] value */
} sluice__ynode;

/**
 * Parses YAML text into a tree.  On success returns 0 and *root is the
 * document's root node, owned by the caller (free with sluice__ynode_free());
 * an empty document gives *root == NULL.  On failure returns SLUICE_ECONFIG
 * with err->msg "<name>:<line>: <reason>" (libyaml's problem for syntax
 * errors) or SLUICE_ENOMEM.
 */
int sluice__yaml_parse(const char *text, size_t len, const char *name, sluice__ynode **root,
                       sluice_error *err);

/** Frees a tree.  Accepts NULL. */
void sluice__ynode_free(sluice__ynode *n);

/** Name of a node's kind for messages: "a string", "a list", "a mapping". */
const char *sluice__ynode_kind_name(const sluice__ynode *n);

/** The value of key in a mapping, or NULL (keys are compared exactly). */
const sluice__ynode *sluice__ynode_get(const sluice__ynode *map, const char *key);

#endif /* SLUICE_POLICY_YAML_DOC_H */
