/* libFuzzer target: the INI reader (core/io/ini.c). Every error names the file and holds no raw
 * control byte; an accepted file's sections and keys are all reachable. Build and run: README.md. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/ini.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    clpdd_ini ini;
    clpdd_err e;
    if (clpdd_ini_load_memory((const char *)data, size, "fuzz", &ini, &e) != 0) {
        if (strncmp(e.msg, "fuzz", 4) != 0) abort();
        for (const unsigned char *p = (const unsigned char *)e.msg; *p; p++)
            if (*p < 0x20 || *p == 0x7f) abort(); /* escaped, never raw to a terminal */
    } else {
        for (int i = 0; i < ini.n_sections; i++) {
            const clpdd_section *s = ini.sections[i];
            if (clpdd_ini_section(&ini, clpdd_section_name(s)) != s) abort();
            for (int k = 0; k < clpdd_section_count(s); k++)
                if (!clpdd_section_raw(s, clpdd_section_key_at(s, k), NULL, NULL)) abort();
        }
    }
    clpdd_ini_free(&ini);
    return 0;
}
