/* A loaded backbone plugin instance, as the core's modules (feature cache, extractor, encoder,
 * run) pass it around: the type alone, so a module that only holds one includes this header. */
#ifndef CLPDD_BACKBONE_H
#define CLPDD_BACKBONE_H
#include "encoder/adapter.h"
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
    clpdd_precision precision; /* [experiment] precision of its products in the distillation step
                                  (zero, fp32, unless the run sets it) */
} clpdd_backbone;

/* Around the backbone's passes of the distillation step: its products at bb->precision, and
   everything after (solver, loss, Cholesky) back at what was set before:
     clpdd_precision was = clpdd_backbone_precision_enter(bb); ...; clpdd_backbone_precision_leave(bb, was); */
static inline clpdd_precision clpdd_backbone_precision_enter(const clpdd_backbone *bb) {
    const clpdd_ops *ops = bb->h->ops;
    return ops->set_precision ? ops->set_precision(bb->precision) : CLPDD_PRECISION_FP32;
}
static inline void clpdd_backbone_precision_leave(const clpdd_backbone *bb, clpdd_precision was) {
    const clpdd_ops *ops = bb->h->ops;
    if (ops->set_precision) ops->set_precision(was);
}

#endif
