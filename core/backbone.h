/* A loaded backbone plugin instance, as the core's modules (feature cache, extractor, encoder,
 * run) pass it around: the type alone, so a module that only holds one includes this header. */
#ifndef CLPDD_BACKBONE_H
#define CLPDD_BACKBONE_H
#include "adapter.h"
#include "clpdd/plugin.h"

/* a backbone plugin instance and how dataset images reach it (the adapter's size mode) */
typedef struct clpdd_backbone {
    const clpdd_host *h;
    const clpdd_plugin *desc;
    const clpdd_backbone_vt *vt;
    void *self;
    clpdd_backbone_info info;
    const char *key;        /* what determines its features: "backbone=<name> <version>; k=v ..." over every
                               resolved key but the inference batch (the experiment builds it; the
                               feature cache hashes it) */
    clpdd_adapt_mode adapt; /* [data] adapt */
} clpdd_backbone;

#endif
