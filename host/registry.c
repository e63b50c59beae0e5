/* Plugin discovery and loading: the rules of PLUGINS.md, "Loading". */
#include "registry.h"

#include <dirent.h>
#include <errno.h>
#include <dlfcn.h>
#include <elf.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "axon/log.h"

typedef struct ax_loaded_file {
    char *path;
    void *handle;
} ax_loaded_file;

struct ax_registry {
    ax_registry_item *items;
    size_t n_items, cap_items;
    ax_loaded_file *files;
    size_t n_files, cap_files;
    char **problems;
    size_t n_problems, cap_problems;
};

static int ax_grow(void **arr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t cap2 = *cap ? *cap * 2 : 8;
    while (cap2 < need) cap2 *= 2;
    void *p = realloc(*arr, cap2 * elem);
    if (!p) return -1;
    *arr = p;
    *cap = cap2;
    return 0;
}

ax_status ax_registry_new(ax_registry **out) {
    *out = calloc(1, sizeof **out);
    return *out ? AX_OK : AX_ERROR(AX_ERR_NOMEM, "out of memory creating the plugin registry");
}

void ax_registry_free(ax_registry *reg) {
    if (!reg) return;
    for (size_t i = 0; i < reg->n_items; i++) free((char *)reg->items[i].why);
    /* Close in reverse order of loading. */
    for (size_t i = reg->n_files; i-- > 0;) {
        if (reg->files[i].handle) dlclose(reg->files[i].handle);
        free(reg->files[i].path);
    }
    for (size_t i = 0; i < reg->n_problems; i++) free(reg->problems[i]);
    free(reg->items);
    free(reg->files);
    free(reg->problems);
    free(reg);
}

/* Record "path: reason" from the current error, and return that status. */
static ax_status ax_registry_problem_add(ax_registry *reg, const char *path) {
    ax_status st = ax_error_status();
    ax_error_prefix("%s", path);
    if (ax_grow((void **)&reg->problems, &reg->cap_problems, reg->n_problems + 1, sizeof(char *)) == 0) {
        char *s = strdup(ax_error_message());
        if (s) reg->problems[reg->n_problems++] = s;
    }
    return st;
}

const ax_registry_item *ax_registry_find(const ax_registry *reg, ax_plugin_kind kind, const char *name) {
    for (size_t i = 0; i < reg->n_items; i++) {
        const ax_plugin *p = reg->items[i].plugin;
        if ((kind == 0 || p->kind == kind) && strcmp(p->name, name) == 0) return &reg->items[i];
    }
    return NULL;
}

/* Check that a file is a whole ELF shared object before dlopen() sees it:
 * dlopen maps a truncated file and the process dies of SIGBUS when the
 * loader touches the missing pages, and on a text file it only says
 * "invalid ELF header". Checks the ELF header and that every program header
 * and segment lies inside the file. */
static ax_status ax_registry_sniff(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return AX_ERROR(AX_ERR_IO, "cannot open: %s", strerror(errno));
    Elf64_Ehdr eh;
    struct stat st;
    ax_status rc = AX_OK;
    if (fstat(fileno(f), &st) != 0) {
        rc = AX_ERROR(AX_ERR_IO, "cannot stat: %s", strerror(errno));
        goto done;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (size < EI_NIDENT || fread(eh.e_ident, 1, EI_NIDENT, f) != EI_NIDENT ||
        memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) {
        rc = AX_ERROR(AX_ERR_FORMAT, "not a shared object (no ELF header)");
        goto done;
    }
    if (eh.e_ident[EI_CLASS] != ELFCLASS64) {
        rc = AX_ERROR(AX_ERR_FORMAT, "not a 64-bit ELF shared object");
        goto done;
    }
    rewind(f);
    if (size < sizeof eh || fread(&eh, sizeof eh, 1, f) != 1) {
        rc = AX_ERROR(AX_ERR_FORMAT, "truncated ELF file (%llu bytes, header incomplete)", (unsigned long long)size);
        goto done;
    }
    if (eh.e_type != ET_DYN) {
        rc = AX_ERROR(AX_ERR_FORMAT, "ELF file is not a shared object (e_type %u)", eh.e_type);
        goto done;
    }
    if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phoff > size ||
        (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > size - eh.e_phoff) {
        rc = AX_ERROR(AX_ERR_FORMAT, "truncated ELF file (%llu bytes; program headers missing)",
                      (unsigned long long)size);
        goto done;
    }
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        if (fseek(f, (long)(eh.e_phoff + i * sizeof ph), SEEK_SET) != 0 || fread(&ph, sizeof ph, 1, f) != 1) {
            rc = AX_ERROR(AX_ERR_FORMAT, "unreadable ELF program header %u", i);
            goto done;
        }
        if (ph.p_type == PT_LOAD && (ph.p_offset > size || ph.p_filesz > size - ph.p_offset)) {
            rc = AX_ERROR(AX_ERR_FORMAT, "truncated ELF file (%llu bytes; a segment needs %llu)",
                          (unsigned long long)size, (unsigned long long)(ph.p_offset + ph.p_filesz));
            goto done;
        }
    }
done:
    fclose(f);
    return rc;
}

static void ax_registry_probe(ax_registry_item *item) {
    item->available = true;
    item->why = NULL;
    if (item->plugin->kind != AX_PLUGIN_BACKEND) return;
    const ax_backend_ops *ops = item->plugin->ops;
    if (item->plugin->ops_size < offsetof(ax_backend_ops, probe) + sizeof ops->probe || !ops->probe)
        return;
    char why[256] = "";
    if (ops->probe(why, sizeof why) != AX_OK) {
        item->available = false;
        why[sizeof why - 1] = '\0';
        item->why = strdup(why[0] ? why : "probe failed");
    }
}

ax_status ax_registry_load_file(ax_registry *reg, const char *path) {
    char real[PATH_MAX];
    if (!realpath(path, real)) {
        AX_ERROR(AX_ERR_IO, "cannot resolve: %s", strerror(errno));
        return ax_registry_problem_add(reg, path);
    }
    for (size_t i = 0; i < reg->n_files; i++)
        if (strcmp(reg->files[i].path, real) == 0) return AX_OK;
    if (ax_registry_sniff(real) != AX_OK) return ax_registry_problem_add(reg, real);

    void *h = dlopen(real, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        AX_ERROR(AX_ERR_FORMAT, "cannot load: %s", e ? e : "dlopen failed");
        return ax_registry_problem_add(reg, real);
    }
    dlerror();
    ax_plugin_entry_fn entry;
    *(void **)&entry = dlsym(h, AX_PLUGIN_ENTRY_SYMBOL);
    if (!entry) {
        dlclose(h);
        AX_ERROR(AX_ERR_ABI, "no entry point %s() (is it an axon plugin?)", AX_PLUGIN_ENTRY_SYMBOL);
        return ax_registry_problem_add(reg, real);
    }
    const ax_plugin *const *list = entry();
    if (!list || !list[0]) {
        dlclose(h);
        AX_ERROR(AX_ERR_ABI, "%s() returned no plugins", AX_PLUGIN_ENTRY_SYMBOL);
        return ax_registry_problem_add(reg, real);
    }
    /* Check the whole file before taking anything from it, so a file is
     * either fully loaded or not at all. */
    size_t n = 0;
    for (; list[n]; n++) {
        const ax_plugin *p = list[n];
        if (ax_plugin_check(p) != AX_OK) {
            dlclose(h);
            return ax_registry_problem_add(reg, real);
        }
        const ax_registry_item *dup = ax_registry_find(reg, p->kind, p->name);
        for (size_t j = 0; !dup && j < n; j++)
            if (list[j]->kind == p->kind && strcmp(list[j]->name, p->name) == 0) dup = (void *)1;
        if (dup) {
            /* Format before dlclose(): p->name lives in the file. */
            AX_ERROR(AX_ERR_INVALID, "duplicate %s '%s': already provided by %s; refusing this one",
                     ax_plugin_kind_name(p->kind), p->name,
                     dup == (void *)1 ? "this same file" : ((const ax_registry_item *)dup)->path);
            dlclose(h);
            return ax_registry_problem_add(reg, real);
        }
    }
    char *kept = strdup(real);
    if (!kept || ax_grow((void **)&reg->files, &reg->cap_files, reg->n_files + 1, sizeof *reg->files) ||
        ax_grow((void **)&reg->items, &reg->cap_items, reg->n_items + n, sizeof *reg->items)) {
        free(kept);
        dlclose(h);
        AX_ERROR(AX_ERR_NOMEM, "out of memory");
        return ax_registry_problem_add(reg, real);
    }
    reg->files[reg->n_files++] = (ax_loaded_file){kept, h};
    for (size_t i = 0; i < n; i++) {
        ax_registry_item *it = &reg->items[reg->n_items++];
        it->plugin = list[i];
        it->path = kept;
        ax_registry_probe(it);
        AX_LOG_DEBUG("loaded %s '%s' %s from %s", ax_plugin_kind_name(list[i]->kind), list[i]->name,
                     list[i]->version ? list[i]->version : "", kept);
    }
    return AX_OK;
}

static int ax_cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

size_t ax_registry_scan_dir(ax_registry *reg, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        AX_LOG_DEBUG("plugin directory %s: %s", dir, strerror(errno));
        return 0;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 3, ".so") != 0) continue;
        if (ax_grow((void **)&names, &cap, n + 1, sizeof *names)) break;
        if (!(names[n] = strdup(e->d_name))) break;
        n++;
    }
    closedir(d);
    /* Name order makes "which duplicate wins" independent of the file system. */
    if (n) qsort(names, n, sizeof *names, ax_cmp_str);
    size_t before = reg->n_items;
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        ax_registry_load_file(reg, path);
        free(names[i]);
    }
    free(names);
    return reg->n_items - before;
}

static size_t ax_registry_walk(ax_registry *reg, const char *dir, int depth) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    char **subs = NULL;
    size_t n = 0, cap = 0, added = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char path[PATH_MAX];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
        if (ax_grow((void **)&subs, &cap, n + 1, sizeof *subs)) break;
        if (!(subs[n] = strdup(path))) break;
        n++;
    }
    closedir(d);
    if (n) qsort(subs, n, sizeof *subs, ax_cmp_str);
    for (size_t i = 0; i < n; i++) {
        const char *base = strrchr(subs[i], '/') + 1;
        if (strcmp(base, ".libs") == 0)
            added += ax_registry_scan_dir(reg, subs[i]);
        else if (depth > 0)
            added += ax_registry_walk(reg, subs[i], depth - 1);
        free(subs[i]);
    }
    free(subs);
    return added;
}

size_t ax_registry_scan_build_tree(ax_registry *reg, const char *root) {
    return ax_registry_walk(reg, root, 4);
}

/* True when the running executable lies inside `dir` (libtool runs the real
 * binary from <builddir>/host/.libs). */
static bool ax_running_from(const char *dir) {
    char exe[PATH_MAX], root[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0 || !realpath(dir, root)) return false;
    exe[n] = '\0';
    size_t len = strlen(root);
    return strncmp(exe, root, len) == 0 && exe[len] == '/';
}

void ax_registry_scan_default(ax_registry *reg, const char *const *extra, size_t n_extra) {
    for (size_t i = 0; i < n_extra; i++) ax_registry_scan_dir(reg, extra[i]);
    const char *env = getenv("AXON_PLUGIN_PATH");
    if (env && *env) {
        char *copy = strdup(env), *save = NULL;
        for (char *tok = copy ? strtok_r(copy, ":", &save) : NULL; tok; tok = strtok_r(NULL, ":", &save))
            ax_registry_scan_dir(reg, tok);
        free(copy);
    }
#ifdef AX_BUILD_DIR
    if (ax_running_from(AX_BUILD_DIR)) {
        char plugins[PATH_MAX];
        snprintf(plugins, sizeof plugins, "%s/plugins", AX_BUILD_DIR);
        ax_registry_scan_build_tree(reg, plugins);
        snprintf(plugins, sizeof plugins, "%s/kernels", AX_BUILD_DIR);
        ax_registry_scan_build_tree(reg, plugins);
        return;
    }
#endif
#ifdef AX_PLUGIN_DIR
    ax_registry_scan_dir(reg, AX_PLUGIN_DIR);
#endif
}

size_t ax_registry_count(const ax_registry *reg) { return reg->n_items; }

const ax_registry_item *ax_registry_get(const ax_registry *reg, size_t i) {
    return i < reg->n_items ? &reg->items[i] : NULL;
}

size_t ax_registry_problem_count(const ax_registry *reg) { return reg->n_problems; }

const char *ax_registry_problem(const ax_registry *reg, size_t i) {
    return i < reg->n_problems ? reg->problems[i] : NULL;
}

const char *ax_registry_suggest(const ax_registry *reg, ax_plugin_kind kind, const char *name) {
    const char *best = NULL;
    size_t best_d = (size_t)-1, len = strlen(name);
    for (size_t i = 0; i < reg->n_items; i++) {
        const ax_plugin *p = reg->items[i].plugin;
        if (kind && p->kind != kind) continue;
        size_t d = ax_edit_distance(name, p->name);
        if (d < best_d) best_d = d, best = p->name;
    }
    return best && best_d <= (len / 3 > 2 ? len / 3 : 2) ? best : NULL;
}

ax_status ax_instance_new(ax_instance **out, const ax_registry_item *item, ax_params *params) {
    *out = NULL;
    if (ax_params_check(params) != AX_OK) {
        ax_params_free(params);
        return ax_error_status();
    }
    const ax_plugin *p = item->plugin;
    if (!item->available) {
        ax_params_free(params);
        return AX_ERROR(AX_ERR_UNSUPPORTED, "%s '%s' is unavailable here: %s", ax_plugin_kind_name(p->kind),
                        p->name, item->why);
    }
    size_t host = ax_plugin_ops_host_size(p->kind);
    ax_instance *inst = calloc(1, sizeof *inst);
    void *ops = calloc(1, host);
    if (!inst || !ops) {
        free(inst);
        free(ops);
        ax_params_free(params);
        return AX_ERROR(AX_ERR_NOMEM, "out of memory");
    }
    memcpy(ops, p->ops, p->ops_size < host ? p->ops_size : host);
    inst->item = item;
    inst->params = params;
    inst->ops = ops;
    const ax_plugin_base_ops *base = ops;
    ax_error_clear(); /* so a message left from earlier is not blamed on create() */
    ax_status st = base->create ? base->create(&inst->self, params) : AX_OK;
    if (st != AX_OK) {
        if (!ax_error_message()[0])
            AX_ERROR(st, "create() failed (%s) without a message", ax_status_str(st));
        ax_error_prefix("%s '%s'", ax_plugin_kind_name(p->kind), p->name);
        free(ops);
        free(inst);
        ax_params_free(params);
        return st;
    }
    *out = inst;
    return AX_OK;
}

void ax_instance_free(ax_instance *inst) {
    if (!inst) return;
    const ax_plugin_base_ops *base = inst->ops;
    if (base->destroy) base->destroy(inst->self);
    free((void *)inst->ops);
    ax_params_free(inst->params);
    free(inst);
}
