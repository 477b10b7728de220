/* One start-up path for the commands that run an experiment: the plugin directories
 * (--plugin-path, --allow-plugin-path), the experiment (its file and the command's overrides:
 * every --set, then --device and the like), the device ([experiment] device). */
#ifndef CLPDD_CLI_STARTUP_H
#define CLPDD_CLI_STARTUP_H
#include "cli/options.h"
#include "config/experiment.h"
#include "plugin/loader.h"

/* the device ops for [experiment] device; NULL + message when cuda is asked for and absent */
const clpdd_ops *clpdd_select_device(clpdd_device_kind device, clpdd_err *e);

typedef struct clpdd_startup {
    clpdd_plugin_dirs dirs;
    clpdd_experiment x;
    int loaded;          /* x holds an experiment */
    const clpdd_ops *ops;
    clpdd_err e;
} clpdd_startup;

/* the plugin directories of the command's --plugin-path and --allow-plugin-path */
void clpdd_startup_dirs(clpdd_startup *s, const clpdd_args *a);
/* the experiment at path with the command's overrides, then extra (n_extra); a second call
   replaces the first's. 0, or 2 with "clpdd: <message>" printed */
int clpdd_startup_load(clpdd_startup *s, const clpdd_args *a, const char *path, const char *const *extra, int n_extra);
/* the ops of the loaded experiment's device. 0, or 2 with "clpdd: <message>" printed */
int clpdd_startup_device(clpdd_startup *s);
/* the three in order for the experiment file at path: 0 or 2 */
int clpdd_startup_begin(clpdd_startup *s, const clpdd_args *a, const char *path);
void clpdd_startup_end(clpdd_startup *s);

#endif
