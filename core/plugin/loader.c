#define _GNU_SOURCE
#include "plugin/loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void add_dir(clpdd_plugin_dirs *d, const char *dir) {
    if (!dir || !*dir || d->n == 32) return;
    for (int i = 0; i < d->n; i++)
        if (strcmp(d->dirs[i], dir) == 0) return;
    d->dirs[d->n++] = clpdd_xstrdup(dir);
}

static void add_path_list(clpdd_plugin_dirs *d, const char *list) {
    if (!list) return;
    char *copy = clpdd_xstrdup(list), *save = NULL;
    for (char *t = strtok_r(copy, ":", &save); t; t = strtok_r(NULL, ":", &save)) add_dir(d, t);
    free(copy);
}

/* <directory of this libclpdd>/clpdd/plugins: where an installed tree keeps its plugins, found
   even when the install was moved after configuring (the compiled-in prefix is then stale) */
static void add_beside_library(clpdd_plugin_dirs *d) {
    Dl_info info;
    if (!dladdr((void *)&clpdd_plugin_dirs_init, &info) || !info.dli_fname) return;
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", info.dli_fname);
    char *slash = strrchr(buf, '/');
    if (!slash) return;
    snprintf(slash, sizeof buf - (size_t)(slash - buf), "/clpdd/plugins");
    if (access(buf, R_OK) == 0) add_dir(d, buf);
}

void clpdd_plugin_dirs_init(clpdd_plugin_dirs *d, const char *cli_path) {
    memset(d, 0, sizeof *d);
    add_path_list(d, cli_path);
    add_path_list(d, getenv("CLPDD_PLUGIN_PATH"));
    add_dir(d, CLPDD_PLUGIN_BUILD_DIR);
    add_beside_library(d);
    add_dir(d, CLPDD_PLUGIN_INSTALL_DIR);
}

void clpdd_plugin_dirs_free(clpdd_plugin_dirs *d) {
    for (int i = 0; i < d->n; i++) free(d->dirs[i]);
    d->n = 0;
}

const char *clpdd_kind_name(clpdd_plugin_kind k) {
    static const char *names[] = {"backbone", "solver", "loss"};
    return (unsigned)k < CLPDD_KIND_COUNT ? names[k] : "unknown";
}

/* release whatever p holds; the message is already in e (set by the caller), so this only
   guarantees one: a failure path that forgot to say why gets a generic message naming the file */
static int fail(clpdd_loaded *p, clpdd_err *e) {
    if (e && !e->msg[0]) clpdd_err_set(e, "%s: cannot load plugin", p->path ? p->path : "?");
    if (p->dl) dlclose(p->dl);
    free(p->path);
    memset(p, 0, sizeof *p);
    return -1;
}

/* ---- ELF checks before dlopen ----
 * dlopen maps a file's PT_LOAD segments without checking they lie inside it: a truncated .so
 * then faults (SIGBUS) on the first touch of a page past the end, inside the dynamic loader,
 * with no message. So the headers are checked first: size, magic, class, byte order, type,
 * machine, the program and section header tables and every PT_LOAD/PT_DYNAMIC file range inside
 * the file. */
#if defined(__x86_64__)
#define CLPDD_ELF_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define CLPDD_ELF_MACHINE EM_AARCH64
#elif defined(__powerpc64__)
#define CLPDD_ELF_MACHINE EM_PPC64
#endif

/* a + b <= limit without overflow */
static int fits(uint64_t a, uint64_t b, uint64_t limit) { return a <= limit && b <= limit - a; }

int clpdd_elf_check(const char *path, clpdd_err *e) {
#define NOT_SO(...)                                                                              \
    do {                                                                                         \
        char why_[512];                                                                          \
        snprintf(why_, sizeof why_, __VA_ARGS__);                                                \
        if (fd >= 0) close(fd);                                                                  \
        return clpdd_err_set(e, "truncated or not a shared object: %s (%s)", shown, why_);       \
    } while (0)
    char shown[1024];
    clpdd_escape(path, shown, sizeof shown);
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC); /* a FIFO must not block: refused below */
    if (fd < 0) return clpdd_err_set(e, "%s: cannot open plugin: %s", shown, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) NOT_SO("cannot stat: %s", strerror(errno));
    if (!S_ISREG(st.st_mode)) NOT_SO("not a regular file");
    uint64_t size = (uint64_t)st.st_size;
    Elf64_Ehdr eh;
    if (size < sizeof eh) NOT_SO("%llu bytes, smaller than an ELF header", (unsigned long long)size);
    if (pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh) NOT_SO("cannot read the ELF header");
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) NOT_SO("no ELF magic number");
    if (eh.e_ident[EI_CLASS] != ELFCLASS64) NOT_SO("not a 64-bit ELF file");
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (eh.e_ident[EI_DATA] != ELFDATA2LSB) NOT_SO("not little-endian");
#else
    if (eh.e_ident[EI_DATA] != ELFDATA2MSB) NOT_SO("not big-endian");
#endif
    if (eh.e_type != ET_DYN) NOT_SO("ELF type %u, not a shared object (ET_DYN)", (unsigned)eh.e_type);
#ifdef CLPDD_ELF_MACHINE
    if (eh.e_machine != CLPDD_ELF_MACHINE)
        NOT_SO("built for ELF machine %u, this is %u", (unsigned)eh.e_machine, (unsigned)CLPDD_ELF_MACHINE);
#endif
    if (eh.e_phnum == 0 || eh.e_phentsize != sizeof(Elf64_Phdr)) NOT_SO("no program headers");
    if (!fits(eh.e_phoff, (uint64_t)eh.e_phnum * eh.e_phentsize, size))
        NOT_SO("program headers end past the end of the file (%llu bytes)", (unsigned long long)size);
    if (eh.e_shnum > 0 && (eh.e_shentsize != sizeof(Elf64_Shdr) ||
                           !fits(eh.e_shoff, (uint64_t)eh.e_shnum * eh.e_shentsize, size)))
        NOT_SO("section headers end past the end of the file (%llu bytes)", (unsigned long long)size);
    size_t phbytes = (size_t)eh.e_phnum * sizeof(Elf64_Phdr);
    Elf64_Phdr *ph = clpdd_xmalloc(phbytes);
    if (pread(fd, ph, phbytes, (off_t)eh.e_phoff) != (ssize_t)phbytes) {
        free(ph);
        NOT_SO("cannot read the program headers");
    }
    int loads = 0;
    for (int i = 0; i < eh.e_phnum; i++) {
        if (ph[i].p_type != PT_LOAD && ph[i].p_type != PT_DYNAMIC) continue;
        loads += ph[i].p_type == PT_LOAD;
        if (!fits(ph[i].p_offset, ph[i].p_filesz, size)) {
            unsigned long long end = (unsigned long long)ph[i].p_offset + ph[i].p_filesz;
            free(ph);
            NOT_SO("segment %d ends at byte %llu, past the end of the file (%llu bytes)", i, end,
                   (unsigned long long)size);
        }
    }
    free(ph);
    if (!loads) NOT_SO("no loadable segment");
    close(fd);
    return 0;
#undef NOT_SO
}

static int check_vtable(const clpdd_plugin *d, const char *path, clpdd_err *e) {
    const char *missing = NULL;
    switch (d->kind) {
    case CLPDD_KIND_BACKBONE: {
        const clpdd_backbone_vt *v = d->vtable;
        if (!v->create) missing = "create";
        else if (!v->destroy) missing = "destroy";
        else if (!v->describe) missing = "describe";
        else if (!v->tape_create) missing = "tape_create";
        else if (!v->tape_destroy) missing = "tape_destroy";
        else if (!v->forward) missing = "forward";
        else if (!v->backward) missing = "backward";
        break;
    }
    case CLPDD_KIND_SOLVER: {
        const clpdd_solver_vt *v = d->vtable;
        if (!v->create) missing = "create";
        else if (!v->destroy) missing = "destroy";
        else if (!v->backward) missing = "backward";
        else if (!v->forward == !v->objective) missing = "exactly one of forward/objective";
        else if (d->abi_minor >= 5 && !v->learned != !v->set_learned) missing = "both or neither of learned/set_learned";
        break;
    }
    case CLPDD_KIND_LOSS: {
        const clpdd_loss_vt *v = d->vtable;
        if (!v->create) missing = "create";
        else if (!v->destroy) missing = "destroy";
        else if (!v->forward) missing = "forward";
        else if (d->abi_minor >= 5 && !v->learned != !v->set_learned) missing = "both or neither of learned/set_learned";
        break;
    }
    default: break;
    }
    if (missing)
        return clpdd_err_set(e, "%s: %s plugin '%s' has an incomplete vtable (needs %s)", path,
                             clpdd_kind_name(d->kind), d->name, missing);
    return 0;
}

int clpdd_plugin_open(const char *path, clpdd_loaded *out, clpdd_err *e) {
    memset(out, 0, sizeof *out);
    out->path = clpdd_xstrdup(path);
    if (e) e->msg[0] = 0;
    char shown[1024];
    clpdd_escape(path, shown, sizeof shown); /* a path from an INI: never raw to the terminal */
    if (access(path, F_OK) != 0) {
        clpdd_err_set(e, "%s: plugin file not found", shown);
        return fail(out, e);
    }
    if (clpdd_elf_check(path, e)) return fail(out, e);
    dlerror();
    out->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!out->dl) {
        const char *why = dlerror();
        clpdd_err_set(e, "%s: cannot open plugin: %s (check its dependencies with `ldd %s`)", shown,
                      why ? why : "unknown dlopen error", shown);
        return fail(out, e);
    }
    dlerror();
    void *sym = dlsym(out->dl, CLPDD_PLUGIN_ENTRY_SYMBOL);
    const char *why = dlerror();
    if (!sym || why) {
        clpdd_err_set(e, "%s: not a clpdd plugin: missing symbol '%s' (%s)", shown, CLPDD_PLUGIN_ENTRY_SYMBOL,
                      why ? why : "symbol is NULL");
        return fail(out, e);
    }
    clpdd_plugin_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry); /* object → function pointer without a pedantic cast warning */
    const clpdd_plugin *d = entry();
    if (!d) {
        clpdd_err_set(e, "%s: %s() returned NULL", shown, CLPDD_PLUGIN_ENTRY_SYMBOL);
        return fail(out, e);
    }
    /* the version first: nothing else in the descriptor is trusted before this check */
    if (d->abi_major != CLPDD_ABI_MAJOR || d->abi_minor > CLPDD_ABI_MINOR) {
        clpdd_err_set(e, "%s: plugin ABI mismatch: plugin %u.%u, core %d.%d (needs the same major and a minor <= %d; rebuild the plugin against this clpdd's headers)",
                      shown, d->abi_major, d->abi_minor, CLPDD_ABI_MAJOR, CLPDD_ABI_MINOR, CLPDD_ABI_MINOR);
        return fail(out, e);
    }
    if ((unsigned)d->kind >= CLPDD_KIND_COUNT || !d->name || !d->vtable || (d->n_keys > 0 && !d->keys) ||
        d->n_keys < 0) {
        clpdd_err_set(e, "%s: malformed plugin descriptor (kind %d, name %s, vtable %p)", shown, (int)d->kind,
                      d->name ? d->name : "NULL", d->vtable);
        return fail(out, e);
    }
    if (check_vtable(d, shown, e)) return fail(out, e);
    out->desc = d;
    return 0;
}

/* 1 when path's directory (symlinks resolved) is one of the search directories */
static int in_search_dirs(const clpdd_plugin_dirs *dirs, const char *path) {
    char real[PATH_MAX], dir[PATH_MAX];
    if (!realpath(path, real)) return 0;
    char *slash = strrchr(real, '/');
    if (!slash) return 0;
    *slash = 0;
    for (int i = 0; i < dirs->n; i++)
        if (realpath(dirs->dirs[i], dir) && strcmp(dir, real[0] ? real : "/") == 0) return 1;
    return 0;
}

int clpdd_plugin_find(const clpdd_plugin_dirs *dirs, clpdd_plugin_kind kind, const char *name, clpdd_loaded *out,
                      clpdd_err *e) {
    memset(out, 0, sizeof *out);
    if (!name || !*name) return clpdd_err_set(e, "no %s plugin named", clpdd_kind_name(kind));
    if (strchr(name, '/')) {
        /* an explicit path: loading it runs its code (constructors), even under `clpdd check`, so
           only when the user said so or it lies where plugins are searched for anyway */
        if (!dirs->allow_paths && !in_search_dirs(dirs, name)) {
            char shown[1024];
            return clpdd_err_set(e, "refusing to load a plugin by path ('%s'): loading a .so runs its code. "
                                    "Trust it with --allow-plugin-path, or put its directory in --plugin-path or "
                                    "CLPDD_PLUGIN_PATH and give the plugin's name",
                                 clpdd_escape(name, shown, sizeof shown));
        }
        if (clpdd_plugin_open(name, out, e)) return -1;
    } else {
        char path[4096];
        int found = 0;
        for (int i = 0; i < dirs->n && !found; i++) {
            snprintf(path, sizeof path, "%s/%s.so", dirs->dirs[i], name);
            found = access(path, F_OK) == 0;
        }
        if (!found) {
            char looked[2048] = "", shown[256];
            for (int i = 0; i < dirs->n; i++) {
                if (i) strncat(looked, ", ", sizeof looked - strlen(looked) - 1);
                strncat(looked, dirs->dirs[i], sizeof looked - strlen(looked) - 1);
            }
            return clpdd_err_set(e, "%s plugin '%s' not found: no %s.so in %s (`clpdd plugins` lists what is available; --plugin-path or CLPDD_PLUGIN_PATH add directories)",
                                 clpdd_kind_name(kind), clpdd_escape(name, shown, sizeof shown), shown, looked);
        }
        if (clpdd_plugin_open(path, out, e)) return -1;
    }
    if (out->desc->kind != kind) {
        char shown[1024];
        clpdd_err_set(e, "%s: plugin '%s' is a %s plugin, but [%s] needs a %s plugin",
                      clpdd_escape(out->path, shown, sizeof shown), out->desc->name,
                      clpdd_kind_name(out->desc->kind), clpdd_kind_name(kind), clpdd_kind_name(kind));
        return fail(out, e);
    }
    return 0;
}

void clpdd_plugin_close(clpdd_loaded *p) {
    if (!p) return;
    if (p->dl) dlclose(p->dl);
    free(p->path);
    memset(p, 0, sizeof *p);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int clpdd_plugin_list(const clpdd_plugin_dirs *dirs, clpdd_loaded **out, int *n, char **problems) {
    clpdd_loaded *list = NULL;
    int count = 0;
    size_t plen = 0;
    char *prob = clpdd_xcalloc(1, 1);
    for (int i = 0; i < dirs->n; i++) {
        DIR *dir = opendir(dirs->dirs[i]);
        if (!dir) continue;
        char **names = NULL;
        int nn = 0;
        struct dirent *ent;
        while ((ent = readdir(dir))) {
            size_t len = strlen(ent->d_name);
            if (len > 3 && strcmp(ent->d_name + len - 3, ".so") == 0) {
                names = realloc(names, (size_t)(nn + 1) * sizeof *names);
                names[nn++] = clpdd_xstrdup(ent->d_name);
            }
        }
        closedir(dir);
        qsort(names, (size_t)nn, sizeof *names, cmp_str);
        for (int j = 0; j < nn; j++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dirs->dirs[i], names[j]);
            clpdd_loaded p;
            clpdd_err e;
            if (clpdd_plugin_open(path, &p, &e)) {
                size_t add = strlen(e.msg) + 2;
                prob = realloc(prob, plen + add);
                memcpy(prob + plen, e.msg, add - 2);
                prob[plen + add - 2] = '\n';
                prob[plen + add - 1] = 0;
                plen += add - 1;
            } else {
                int dup = 0;
                for (int k = 0; k < count; k++)
                    dup |= strcmp(list[k].desc->name, p.desc->name) == 0 && list[k].desc->kind == p.desc->kind;
                if (dup) {
                    clpdd_plugin_close(&p);
                } else {
                    list = realloc(list, (size_t)(count + 1) * sizeof *list);
                    list[count++] = p;
                }
            }
            free(names[j]);
        }
        free(names);
    }
    *out = list;
    *n = count;
    if (problems) *problems = prob;
    else free(prob);
    return 0;
}
