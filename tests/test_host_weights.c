/* The host's weights reader refuses what is not a weight: a tensor stored as an integer type where
 * floats are expected is a wrong file, reported with the file, the tensor and its dtype, never
 * converted silently. Float types of any width are read as fp32. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plugin/host.h"
#include "io/safetensors.h"

Test(host_weights, integer_tensors_are_refused_floats_read) {
    char path[] = "/tmp/clpdd-test-weights-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    int32_t ints[4] = {1, 2, 3, 4};
    double dbl[4] = {0.5, -1.25, 2, 3};
    clpdd_st_entry ent[2] = {{"w_int", CLPDD_DT_I32, 1, {4}, ints}, {"w_f64", CLPDD_DT_F64, 1, {4}, dbl}};
    clpdd_err e;
    cr_assert_eq(clpdd_st_write(path, ent, 2, NULL, NULL, 0, &e), 0, "%s", e.msg);
    clpdd_host *h = clpdd_host_create(clpdd_ops_cpu(), 0);
    clpdd_weights *w = h->weights_open(h, path);
    cr_assert_not_null(w, "%s", clpdd_host_error(h));
    float *dst = h->alloc(h, 4 * sizeof(float));
    int64_t shape[1] = {4};
    cr_expect_neq(h->weights_read(h, w, "w_int", 1, shape, dst), 0, "an I32 tensor is no weight");
    cr_expect(strstr(clpdd_host_error(h), "'w_int' is I32") && strstr(clpdd_host_error(h), path), "%s", clpdd_host_error(h));
    cr_assert_eq(h->weights_read(h, w, "w_f64", 1, shape, dst), 0, "%s", clpdd_host_error(h));
    cr_expect(dst[0] == 0.5f && dst[1] == -1.25f && dst[3] == 3.0f);
    h->weights_close(h, w);
    clpdd_host_destroy(h);
    unlink(path);
}
