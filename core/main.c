/* clpdd — the driver: the command table's dispatcher (core/cli/commands.c). Exit status: 0
 * success, 1 a failure while running, 2 a usage or configuration error (nothing was written). */
#include "cli/commands.h"

int main(int argc, char **argv) { return clpdd_main(argc, argv); }
