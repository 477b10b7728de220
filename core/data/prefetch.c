/* The background batch reader; see prefetch.h.
 *
 * One thread per batch (created by start, joined by wait): a step lasts milliseconds to
 * seconds, a thread's creation microseconds, and a thread that exists only while its read is in
 * flight cannot be left behind by an error path (free joins it). */
#define _GNU_SOURCE
#include "data/prefetch.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct clpdd_prefetch {
    const clpdd_dataset *ds;
    int count;
    size_t px;
    float *buf[2];  /* (count, px) each: the one handed out by the last wait, and the one being read */
    int reading;    /* the index of the buffer the read in flight fills */
    int *idx;       /* (count) the indices in flight */
    pthread_t thread;
    int started;    /* a read was started and not waited for */
    int joinable;   /* ... on a thread (else it ran in start) */
    int rc;         /* the read's result */
    clpdd_err err;  /* its message */
};

static void *read_batch(void *arg) {
    clpdd_prefetch *p = arg;
    p->rc = clpdd_dataset_read_float(p->ds, p->idx, 0, p->count, p->buf[p->reading], &p->err);
    return NULL;
}

clpdd_prefetch *clpdd_prefetch_new(const clpdd_dataset *ds, int count, size_t px) {
    clpdd_prefetch *p = clpdd_xcalloc(1, sizeof *p);
    p->ds = ds, p->count = count, p->px = px;
    for (int b = 0; b < 2; b++) p->buf[b] = clpdd_xmalloc((size_t)(count > 0 ? count : 1) * px * sizeof(float));
    p->idx = clpdd_xmalloc((size_t)(count > 0 ? count : 1) * sizeof(int));
    return p;
}

/* the read in flight finished (joined); its result stays in p */
static void join(clpdd_prefetch *p) {
    if (p->joinable) pthread_join(p->thread, NULL);
    p->joinable = 0;
}

void clpdd_prefetch_start(clpdd_prefetch *p, const int *idx) {
    join(p);
    p->reading = p->started ? p->reading : 1 - p->reading; /* a dropped batch's buffer is reused */
    memcpy(p->idx, idx, (size_t)p->count * sizeof(int));
    p->rc = 0, p->err.msg[0] = '\0';
    p->started = 1;
    /* no thread to be had (a process at its limit): the read runs now, as without a prefetch */
    if (pthread_create(&p->thread, NULL, read_batch, p) == 0) p->joinable = 1;
    else read_batch(p);
}

int clpdd_prefetch_pending(const clpdd_prefetch *p) { return p->started; }

int clpdd_prefetch_wait(clpdd_prefetch *p, const float **out, clpdd_err *e) {
    if (!p->started) return clpdd_err_set(e, "prefetch: a wait with no read started");
    join(p);
    p->started = 0;
    if (p->rc) return clpdd_err_set(e, "%s", p->err.msg);
    *out = p->buf[p->reading];
    return 0;
}

void clpdd_prefetch_free(clpdd_prefetch *p) {
    if (!p) return;
    join(p);
    free(p->buf[0]), free(p->buf[1]);
    free(p->idx);
    free(p);
}

int clpdd_dataset_decodes_files(const clpdd_dataset *ds) { return ds->pixels == NULL && ds->decodes_files; }
