/* ax.finetune{}, ax.predict{}, ax.evaluate{} and ax.report{} (lua_finetune.h).
 * Configuration tables are checked key by key: an unknown key is an error
 * naming the nearest valid one and listing them all. */
#include "lua_finetune.h"

#include <jansson.h>
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "axon/dataset.h"
#include "lua_axon.h"
#include "lua_config.h"
#include "lua_data.h"
#include "registry.h"
#include "report.h"
#include "train_finetune.h"

#define AX_LUA_REGISTRY_KEY "axon.registry"

const char *const ax_lua_finetune_keys[] = {
    "data",       "out",       "task",          "task_params",   "arch",          "arch_params",
    "init",       "augs",      "patch",         "batch",         "steps",         "seed",
    "optim",      "lr",        "momentum",      "nesterov",      "weight_decay",  "betas",
    "eps",        "schedule",  "warmup",        "decoder_steps", "clip",          "save_every",
    "keep_every", "val_every", "val_cases",     "log_every",     "max_nonfinite", "resume",
    "threads",    "progress",  "oversample_fg", "spacing",       "split",         "deep_supervision",
    "device",     "amp",       NULL};

static int ax_lf_fail(lua_State *L) { return luaL_error(L, "%s", ax_error_message()); }

static ax_registry *ax_lf_registry(lua_State *L) {
    lua_getfield(L, LUA_REGISTRYINDEX, AX_LUA_REGISTRY_KEY);
    ax_registry *reg = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!reg) luaL_error(L, "axon: module used without a plugin registry");
    return reg;
}

static double ax_lf_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *const ax_lf_dataset_keys[] = {"root", "format", "glob", NULL};

/* data = { root =, format = "nnunet", glob = }: preprocessed into <out>/cache. */
static void ax_lf_dataset_opts(lua_State *L, int t, ax_dataset_opts *d) {
    static const char *W = "finetune";
    ax_lua_cfg_check_keys(L, t, "finetune: data", ax_lf_dataset_keys);
    d->root = ax_lua_cfg_str(L, t, W, "root", NULL);
    if (!d->root) luaL_error(L, "finetune: data.root is required (or give data = \"CACHE_FOLDER\")");
    d->format = ax_lua_cfg_str(L, t, W, "format", "nnunet");
    d->glob = ax_lua_cfg_str(L, t, W, "glob", NULL);
}

static const char *const ax_lf_split_keys[] = {"fraction", "min", "max", "seed", NULL};

/* ---- ax.finetune ------------------------------------------------------------------------ */

static int ax_lua_finetune(lua_State *L) {
    static const char *W = "finetune";
    const int cfg = 1, ax = ax_lua_runner_begin(L, W, ax_lua_finetune_keys);
    ax_finetune_opts o = ax_finetune_opts_default();
    ax_train_opts *t = &o.train;
    ax_dataset_opts dso = ax_dataset_opts_default();
    ax_lua_runner_data(L, cfg, W, &o.input, &dso, ax_lf_dataset_opts);
    if (ax_lua_cfg_get(L, cfg, "split")) {
        int s = lua_gettop(L);
        if (!lua_istable(L, s)) luaL_error(L, "finetune: 'split' must be a table {fraction, min, max, seed}");
        ax_lua_cfg_check_keys(L, s, "finetune: split", ax_lf_split_keys);
        o.split.fraction = ax_lua_cfg_num(L, s, W, "fraction", o.split.fraction, 0, 1);
        o.split.min_val = ax_lua_cfg_int(L, s, W, "min", o.split.min_val, 0, INT64_MAX / 4);
        o.split.max_val = ax_lua_cfg_int(L, s, W, "max", o.split.max_val, 0, INT64_MAX / 4);
        o.split.seed = (uint64_t)ax_lua_cfg_int(L, s, W, "seed", (int64_t)o.split.seed, 0, INT64_MAX);
    }
    if (!ax_lua_cfg_get(L, cfg, "task"))
        luaL_error(L, "finetune: 'task' is required, e.g. ax.task(\"segmentation\", {classes = 2})");
    o.task = ax_lua_cfg_push_instance(L, W, ax, lua_gettop(L), "task", "task_params", cfg);
    if (ax_lua_cfg_get(L, cfg, "arch"))
        o.arch = ax_lua_cfg_push_instance(L, W, ax, lua_gettop(L), "arch", "arch_params", cfg);
    o.init = ax_lua_cfg_str(L, cfg, W, "init", NULL);
    if (!o.arch && !o.init) luaL_error(L, "finetune: give 'arch', or 'init' (a checkpoint that names its arch)");
    o.registry = ax_lf_registry(L);

    /* the reference's recipes: smaller rates when starting from a checkpoint */
    ax_lua_runner r = {t, &o.input, o.init ? 1e-3 : 1e-2, o.init ? 1e-4 : 3e-4};
    ax_lua_runner_read(L, cfg, ax, W, &r);
    o.val_cases = (int32_t)ax_lua_cfg_int(L, cfg, W, "val_cases", 0, 0, 1000000);
    o.deep_supervision = ax_lua_cfg_bool(L, cfg, W, "deep_supervision", false);
    const char *sched = ax_lua_cfg_str(L, cfg, W, "schedule", "warmup_poly");
    if (strcmp(sched, "warmup_poly") == 0)
        o.schedule = AX_FINETUNE_WARMUP_POLY;
    else if (strcmp(sched, "sawtooth") == 0)
        o.schedule = AX_FINETUNE_SAWTOOTH;
    else
        luaL_error(L, "finetune: unknown schedule '%s'; valid: warmup_poly, sawtooth", sched);
    o.warmup = ax_lua_cfg_int(L, cfg, W, "warmup", -1, -1, INT64_MAX / 4);
    o.decoder_steps = ax_lua_cfg_int(L, cfg, W, "decoder_steps", -1, -1, INT64_MAX / 4);

    ax_finetune_result res;
    double t0 = ax_lf_now();
    if (ax_finetune_run(&o, &res) != AX_OK) return ax_lf_fail(L);
    double secs = ax_lf_now() - t0;
    ax_lua_push_train_result(L, &res.train, t->out);
    lua_pushinteger(L, (lua_Integer)res.n_transferred);
    lua_setfield(L, -2, "transferred");
    lua_pushinteger(L, (lua_Integer)res.n_adapted);
    lua_setfield(L, -2, "adapted");
    lua_pushnumber(L, secs);
    lua_setfield(L, -2, "seconds");
    lua_getfield(L, -1, "metrics");
    ax_lua_push_num(L, res.val_dice_mean);
    lua_setfield(L, -2, "val_dice_mean");
    lua_createtable(L, res.n_classes, 0);
    for (int c = 1; c < res.n_classes && c < AX_FINETUNE_MAX_CLASSES; c++) {
        ax_lua_push_num(L, res.val_dice[c]);
        lua_rawseti(L, -2, c);
    }
    lua_setfield(L, -2, "val_dice");
    lua_pop(L, 1); /* metrics */
    return 1;
}

/* ---- ax.predict ---------------------------------------------------------------------------- */

static const char *const ax_lf_predict_keys[] = {"model",   "input",    "output", "mirror",
                                                 "threads", "progress", "device", NULL};

static int ax_lua_predict(lua_State *L) {
    static const char *W = "predict";
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    ax_lua_cfg_check_keys(L, 1, W, ax_lf_predict_keys);
    ax_predict_opts o = ax_predict_opts_default();
    o.model = ax_lua_cfg_str(L, 1, W, "model", NULL);
    o.input = ax_lua_cfg_str(L, 1, W, "input", NULL);
    o.output = ax_lua_cfg_str(L, 1, W, "output", NULL);
    if (!o.model || !o.input || !o.output) luaL_error(L, "predict: 'model', 'input' and 'output' are required");
    if (ax_lua_cfg_get(L, 1, "mirror")) {
        if (!lua_isboolean(L, -1)) luaL_error(L, "predict: 'mirror' must be true or false");
        o.mirror = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    o.threads = (int32_t)ax_lua_cfg_int(L, 1, W, "threads", 0, 0, 1024);
    o.progress = ax_lua_cfg_bool(L, 1, W, "progress", true);
    o.device = ax_lua_cfg_str(L, 1, W, "device", NULL);
    o.registry = ax_lf_registry(L);
    ax_predict_report rep;
    ax_status st = ax_predict_run(&o, &rep);
    if (st != AX_OK) {
        ax_predict_report_free(&rep);
        return ax_lf_fail(L);
    }
    lua_createtable(L, 0, 4);
    lua_createtable(L, (int)rep.n_done, 0);
    for (size_t i = 0; i < rep.n_done; i++) {
        lua_pushstring(L, rep.names[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "done");
    lua_createtable(L, (int)rep.n_failed, 0);
    for (size_t i = 0; i < rep.n_failed; i++) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, rep.failed_names[i]);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, rep.failed_reasons[i]);
        lua_setfield(L, -2, "reason");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "failed");
    lua_pushstring(L, o.output);
    lua_setfield(L, -2, "output");
    ax_predict_report_free(&rep);
    return 1;
}

/* ---- ax.evaluate ---------------------------------------------------------------------------- */

static const char *const ax_lf_evaluate_keys[] = {"pred", "ref", "classes", "hd95", "out", NULL};

static int ax_lua_evaluate(lua_State *L) {
    static const char *W = "evaluate";
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    ax_lua_cfg_check_keys(L, 1, W, ax_lf_evaluate_keys);
    ax_evaluate_opts o = ax_evaluate_opts_default();
    o.pred = ax_lua_cfg_str(L, 1, W, "pred", NULL);
    o.ref = ax_lua_cfg_str(L, 1, W, "ref", NULL);
    if (!o.pred || !o.ref) luaL_error(L, "evaluate: 'pred' and 'ref' (folders) are required");
    if (!ax_lua_cfg_get(L, 1, "classes")) luaL_error(L, "evaluate: 'classes' (K, background included) is required");
    lua_pop(L, 1);
    o.classes = (int32_t)ax_lua_cfg_int(L, 1, W, "classes", 2, 2, 256);
    o.hd95 = ax_lua_cfg_bool(L, 1, W, "hd95", true);
    o.out_json = ax_lua_cfg_str(L, 1, W, "out", NULL);
    char *text = NULL;
    if (ax_evaluate_run(&o, &text) != AX_OK) return ax_lf_fail(L);
    json_t *j = json_loads(text, 0, NULL);
    free(text);
    if (!j) return luaL_error(L, "evaluate: out of memory");
    ax_lua_push_json(L, j);
    json_decref(j);
    return 1;
}

/* ---- ax.report ------------------------------------------------------------------------------- */

static const char *const ax_lf_report_keys[] = {"out",   "title",   "intro", "runs", "table",
                                                "notes", "preview", "cases", NULL};

/* t[key] as a list of strings (GC-anchored array of n). */
static const char **ax_lf_string_list(lua_State *L, int t, const char *what, size_t *n) {
    int list = lua_gettop(L);
    (void)t;
    *n = (size_t)lua_rawlen(L, list);
    luaL_checkstack(L, 8, "report");
    const char **v = lua_newuserdatauv(L, (*n ? *n : 1) * sizeof *v, 0); /* stays on the stack: GC-owned */
    for (size_t i = 0; i < *n; i++) {
        lua_rawgeti(L, list, (lua_Integer)i + 1);
        if (lua_type(L, -1) == LUA_TNUMBER) lua_tostring(L, -1); /* converts in place */
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "report: %s[%d] must be a string", what, (int)i + 1);
        v[i] = lua_tostring(L, -1);
        lua_rawseti(L, list, (lua_Integer)i + 1); /* keep the string alive in the list */
    }
    return v;
}

static int ax_lua_report(lua_State *L) {
    static const char *W = "report";
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkstack(L, 120, "report");
    lua_settop(L, 1);
    ax_lua_cfg_check_keys(L, 1, W, ax_lf_report_keys);
    ax_report_opts o = ax_report_opts_default();
    o.out = ax_lua_cfg_str(L, 1, W, "out", NULL);
    if (!o.out) luaL_error(L, "report: 'out' (the .html file) is required");
    o.title = ax_lua_cfg_str(L, 1, W, "title", o.title);
    o.intro = ax_lua_cfg_str(L, 1, W, "intro", NULL);
    o.notes = ax_lua_cfg_str(L, 1, W, "notes", NULL);
    o.preview_run = ax_lua_cfg_str(L, 1, W, "preview", NULL);
    o.registry = ax_lf_registry(L);
    ax_report_run runs[16];
    if (ax_lua_cfg_get(L, 1, "runs")) {
        int list = lua_gettop(L);
        if (!lua_istable(L, list)) luaL_error(L, "report: 'runs' must be a list of {name =, dir =}");
        size_t n = (size_t)lua_rawlen(L, list);
        if (n > 16) luaL_error(L, "report: at most 16 runs");
        for (size_t i = 0; i < n; i++) {
            lua_rawgeti(L, list, (lua_Integer)i + 1);
            int e = lua_gettop(L);
            if (!lua_istable(L, e)) luaL_error(L, "report: runs[%d] must be {name =, dir =}", (int)i + 1);
            runs[i].name = ax_lua_cfg_str(L, e, W, "name", "run");
            runs[i].dir = ax_lua_cfg_str(L, e, W, "dir", NULL);
            if (!runs[i].dir) luaL_error(L, "report: runs[%d].dir is required", (int)i + 1);
        }
        o.runs = runs;
        o.n_runs = n;
    }
    if (ax_lua_cfg_get(L, 1, "table")) {
        int tb = lua_gettop(L);
        if (!lua_istable(L, tb)) luaL_error(L, "report: 'table' must be {header = {...}, rows = {{...}, ...}}");
        o.table_title = ax_lua_cfg_str(L, tb, W, "title", NULL);
        if (!ax_lua_cfg_get(L, tb, "header")) luaL_error(L, "report: table.header is required");
        o.table_header = ax_lf_string_list(L, tb, "table.header", &o.table_cols);
        if (!ax_lua_cfg_get(L, tb, "rows")) luaL_error(L, "report: table.rows is required");
        int rows = lua_gettop(L);
        o.table_rows = (size_t)lua_rawlen(L, rows);
        size_t n_cells = o.table_rows * o.table_cols;
        const char **cells = lua_newuserdatauv(L, (n_cells > 0 ? n_cells : 1) * sizeof *cells, 0);
        for (size_t r = 0; r < o.table_rows; r++) {
            lua_rawgeti(L, rows, (lua_Integer)r + 1);
            if (!lua_istable(L, -1)) luaL_error(L, "report: table.rows[%d] must be a list", (int)r + 1);
            size_t nc;
            const char **row = ax_lf_string_list(L, 0, "table.rows[]", &nc);
            if (nc != o.table_cols)
                luaL_error(L, "report: table.rows[%d] has %d cells, the header %d", (int)r + 1, (int)nc,
                           (int)o.table_cols);
            memcpy(cells + r * o.table_cols, row, nc * sizeof *row);
        }
        o.table_cells = cells;
    }
    ax_report_case cases[8];
    if (ax_lua_cfg_get(L, 1, "cases")) {
        int list = lua_gettop(L);
        size_t n = (size_t)lua_rawlen(L, list);
        if (n > 8) luaL_error(L, "report: at most 8 cases");
        for (size_t i = 0; i < n; i++) {
            lua_rawgeti(L, list, (lua_Integer)i + 1);
            int e = lua_gettop(L);
            if (!lua_istable(L, e)) luaL_error(L, "report: cases[%d] must be a table", (int)i + 1);
            memset(&cases[i], 0, sizeof cases[i]);
            cases[i].title = ax_lua_cfg_str(L, e, W, "title", "case");
            cases[i].image = ax_lua_cfg_str(L, e, W, "image", NULL);
            cases[i].label = ax_lua_cfg_str(L, e, W, "label", NULL);
            if (!cases[i].image) luaL_error(L, "report: cases[%d].image is required", (int)i + 1);
            if (ax_lua_cfg_get(L, e, "preds")) {
                int pl = lua_gettop(L);
                size_t np = (size_t)lua_rawlen(L, pl);
                if (np > 4) luaL_error(L, "report: at most 4 predictions per case");
                for (size_t k = 0; k < np; k++) {
                    lua_rawgeti(L, pl, (lua_Integer)k + 1);
                    int q = lua_gettop(L);
                    cases[i].pred_names[k] = ax_lua_cfg_str(L, q, W, "name", "prediction");
                    cases[i].preds[k] = ax_lua_cfg_str(L, q, W, "path", NULL);
                    if (!cases[i].preds[k])
                        luaL_error(L, "report: cases[%d].preds[%d].path is required", (int)i + 1, (int)k + 1);
                }
                cases[i].n_preds = np;
            }
        }
        o.cases = cases;
        o.n_cases = n;
    }
    if (ax_report_write(&o) != AX_OK) return ax_lf_fail(L);
    lua_pushstring(L, o.out);
    return 1;
}

void ax_lua_finetune_register(lua_State *L) {
    static const luaL_Reg fns[] = {{"finetune", ax_lua_finetune},
                                   {"predict", ax_lua_predict},
                                   {"evaluate", ax_lua_evaluate},
                                   {"report", ax_lua_report},
                                   {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
}
