/* The training side of the Lua module: optimizers, learning-rate
 * schedules, clipping, losses, regularisation, attention and the shape
 * ops. Options come in a table; dims are 1-based as everywhere in Lua.
 *
 *     local opt = ax.optim("adamw", {w = w, b = b}, {lr = 3e-4, weight_decay = 0.05})
 *     local sched = {kind = "poly", base_lr = 3e-4, total_steps = 1000, warmup_steps = 50}
 *     for step = 0, 999 do
 *       opt:set_lr(ax.lr_at(sched, step))
 *       local loss = ax.mse_loss(net(x), y)
 *       loss:backward()
 *       ax.clip_grad_norm({w, b}, 12)
 *       opt:step(); opt:zero_grad()
 *     end
 */
#include "lua_nn.h"

#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "axon/axon.h"
#include "lua_config.h"
#include "lua_tensor.h"

#define AX_LUA_OPTIM "axon.optim"

static int ax_lua_fail(lua_State *L) { return luaL_error(L, "%s", ax_error_message()); }

static int ax_lua_push_result(lua_State *L, ax_status st, ax_tensor **out) {
    if (st != AX_OK) return ax_lua_fail(L);
    ax_lua_push_tensor(L, *out);
    return 1;
}

/* ---- option tables ------------------------------------------------------------ */

static double ax_opt_number(lua_State *L, int t, const char *key, double def) {
    if (lua_isnoneornil(L, t)) return def;
    lua_getfield(L, t, key);
    double v = def;
    if (!lua_isnil(L, -1)) {
        if (!lua_isnumber(L, -1)) luaL_error(L, "option '%s' must be a number, got %s", key, luaL_typename(L, -1));
        v = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

static bool ax_opt_bool(lua_State *L, int t, const char *key, bool def) {
    if (lua_isnoneornil(L, t)) return def;
    lua_getfield(L, t, key);
    bool v = lua_isnil(L, -1) ? def : lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

static const char *ax_opt_string(lua_State *L, int t, const char *key, const char *def) {
    if (lua_isnoneornil(L, t)) return def;
    lua_getfield(L, t, key);
    const char *v = lua_isnil(L, -1) ? def : luaL_checkstring(L, -1);
    lua_pop(L, 1); /* the string stays alive: it is a field of the table */
    return v;
}

/* A tensor option (borrowed; the table keeps it alive), or NULL. */
static ax_tensor *ax_opt_tensor(lua_State *L, int t, const char *key) {
    if (lua_isnoneornil(L, t)) return NULL;
    lua_getfield(L, t, key);
    ax_tensor *v = lua_isnil(L, -1) ? NULL : ax_lua_check_tensor(L, -1);
    lua_pop(L, 1);
    return v;
}

/* Fail on keys the function does not know, naming the valid ones. */
static void ax_opt_check_keys(lua_State *L, int t, const char *fn, const char *const *valid) {
    if (lua_isnoneornil(L, t)) return;
    luaL_checktype(L, t, LUA_TTABLE);
    for (lua_pushnil(L); lua_next(L, t); lua_pop(L, 1)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        bool ok = false;
        for (const char *const *v = valid; k && *v; v++) ok = ok || strcmp(k, *v) == 0;
        if (!ok) {
            ax_lua_push_key_list(L, valid);
            luaL_error(L, "%s: unknown option '%s'; valid: %s", fn, k ? k : "(non-string key)", lua_tostring(L, -1));
        }
    }
}

static ax_loss_reduction ax_opt_reduction(lua_State *L, int t, const char *fn) {
    const char *r = ax_opt_string(L, t, "reduction", "mean");
    if (strcmp(r, "mean") == 0) return AX_LOSS_MEAN;
    if (strcmp(r, "sum") == 0) return AX_LOSS_SUM;
    if (strcmp(r, "none") == 0) return AX_LOSS_NONE;
    luaL_error(L, "%s: reduction '%s' is not one of mean, sum, none", fn, r);
    return AX_LOSS_MEAN;
}

static int ax_lua_c_dim(lua_State *L, int idx, int def) {
    if (lua_isnoneornil(L, idx)) return def;
    lua_Integer d = luaL_checkinteger(L, idx);
    if (d == 0) luaL_argerror(L, idx, "dims are 1-based (or negative from the end)");
    return d > 0 ? (int)d - 1 : (int)d;
}

/* ---- tensors from a Lua list or name -> tensor table ----------------------------- */

typedef struct ax_lua_plist {
    size_t n;
    ax_tensor **t;
    const char **names; /* NULL entries for a list */
} ax_lua_plist;

/* Collect tensors at idx (an array, or a map sorted by name so the order is
 * stable). Arrays live in Lua userdata pushed on the stack. */
static ax_lua_plist ax_lua_params(lua_State *L, int idx) {
    ax_lua_plist pl = {0};
    luaL_checktype(L, idx, LUA_TTABLE);
    size_t n = 0;
    for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1)) n++;
    pl.t = lua_newuserdatauv(L, (n + 1) * sizeof *pl.t, 0);
    pl.names = lua_newuserdatauv(L, (n + 1) * sizeof *pl.names, 0);
    size_t len = lua_rawlen(L, idx);
    if (len == n) {
        for (size_t i = 0; i < n; i++) {
            lua_rawgeti(L, idx, (lua_Integer)i + 1);
            pl.t[i] = ax_lua_check_tensor(L, -1);
            pl.names[i] = NULL;
            lua_pop(L, 1);
        }
    } else {
        size_t i = 0;
        for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1)) {
            if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "parameter tables are lists or maps from names to tensors");
            pl.names[i] = lua_tostring(L, -2);
            pl.t[i++] = ax_lua_check_tensor(L, -1);
        }
        /* insertion sort by name: deterministic order for state files */
        for (size_t a = 1; a < n; a++)
            for (size_t b = a; b > 0 && strcmp(pl.names[b - 1], pl.names[b]) > 0; b--) {
                const char *tn = pl.names[b];
                pl.names[b] = pl.names[b - 1];
                pl.names[b - 1] = tn;
                ax_tensor *tt = pl.t[b];
                pl.t[b] = pl.t[b - 1];
                pl.t[b - 1] = tt;
            }
    }
    pl.n = n;
    return pl;
}

/* ---- optimizers -------------------------------------------------------------------- */

typedef struct ax_lua_optim {
    ax_optim *o;
} ax_lua_optim;

static ax_optim *ax_lua_check_optim(lua_State *L) {
    ax_lua_optim *u = luaL_checkudata(L, 1, AX_LUA_OPTIM);
    if (!u->o) luaL_error(L, "optimizer used after it was closed");
    return u->o;
}

/* ax.optim(kind, params, {options}) */
static int ax_lua_optim_new(lua_State *L) {
    const char *kind = luaL_checkstring(L, 1);
    lua_settop(L, 3);
    ax_lua_plist pl = ax_lua_params(L, 2);
    ax_lua_optim *u = lua_newuserdatauv(L, sizeof *u, 1);
    u->o = NULL;
    luaL_setmetatable(L, AX_LUA_OPTIM);
    /* the optimizer retains its tensors; keep the Lua table too so the
     * userdata of the tensors outlives it (for t.grad access by name) */
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, -2, 1);
    bool named = pl.n > 0 && pl.names[0] != NULL;
    ax_status st;
    if (strcmp(kind, "sgd") == 0) {
        static const char *const keys[] = {"lr", "momentum", "dampening", "weight_decay", "nesterov", NULL};
        ax_opt_check_keys(L, 3, "ax.optim('sgd')", keys);
        st = ax_sgd_new(&u->o, pl.n, pl.t, named ? pl.names : NULL, ax_opt_number(L, 3, "lr", 1e-2),
                        ax_opt_number(L, 3, "momentum", 0), ax_opt_number(L, 3, "dampening", 0),
                        ax_opt_number(L, 3, "weight_decay", 0), ax_opt_bool(L, 3, "nesterov", false));
    } else if (strcmp(kind, "adamw") == 0) {
        static const char *const keys[] = {"lr", "beta1", "beta2", "eps", "weight_decay", NULL};
        ax_opt_check_keys(L, 3, "ax.optim('adamw')", keys);
        st = ax_adamw_new(&u->o, pl.n, pl.t, named ? pl.names : NULL, ax_opt_number(L, 3, "lr", 1e-3),
                          ax_opt_number(L, 3, "beta1", 0.9), ax_opt_number(L, 3, "beta2", 0.999),
                          ax_opt_number(L, 3, "eps", 1e-8), ax_opt_number(L, 3, "weight_decay", 1e-2));
    } else {
        return luaL_error(L, "ax.optim: unknown optimizer '%s' (sgd, adamw)", kind);
    }
    if (st != AX_OK) return ax_lua_fail(L);
    return 1;
}

static int ax_lua_optim_step(lua_State *L) {
    if (ax_optim_step(ax_lua_check_optim(L)) != AX_OK) return ax_lua_fail(L);
    return 0;
}

static int ax_lua_optim_zero_grad(lua_State *L) {
    ax_optim_zero_grad(ax_lua_check_optim(L));
    return 0;
}

/* opt:lr() -> current; opt:set_lr(x) */
static int ax_lua_optim_lr(lua_State *L) {
    lua_pushnumber(L, ax_optim_lr(ax_lua_check_optim(L)));
    return 1;
}

static int ax_lua_optim_set_lr(lua_State *L) {
    if (ax_optim_set_lr(ax_lua_check_optim(L), luaL_checknumber(L, 2)) != AX_OK) return ax_lua_fail(L);
    return 0;
}

static int ax_lua_optim_steps(lua_State *L) {
    lua_pushinteger(L, ax_optim_steps(ax_lua_check_optim(L)));
    return 1;
}

static int ax_lua_optim_save(lua_State *L) {
    if (ax_optim_state_save(ax_lua_check_optim(L), luaL_checkstring(L, 2)) != AX_OK) return ax_lua_fail(L);
    return 0;
}

static int ax_lua_optim_load(lua_State *L) {
    if (ax_optim_state_load(ax_lua_check_optim(L), luaL_checkstring(L, 2)) != AX_OK) return ax_lua_fail(L);
    return 0;
}

static int ax_lua_optim_gc(lua_State *L) {
    ax_lua_optim *u = luaL_checkudata(L, 1, AX_LUA_OPTIM);
    ax_optim_free(u->o);
    u->o = NULL;
    return 0;
}

/* ax.clip_grad_norm(params, max_norm [, norm_type]) -> total norm before clipping */
static int ax_lua_clip_grad_norm(lua_State *L) {
    double max_norm = luaL_checknumber(L, 2), p = luaL_optnumber(L, 3, 2);
    lua_settop(L, 3);
    ax_lua_plist pl = ax_lua_params(L, 1);
    double total;
    if (ax_clip_grad_norm(&total, pl.n, pl.t, max_norm, p) != AX_OK) return ax_lua_fail(L);
    lua_pushnumber(L, total);
    return 1;
}

/* ax.lr_at({kind=, base_lr=, total_steps=, warmup_steps=, power=, min_lr=}, step) */
static int ax_lua_lr_at(lua_State *L) {
    static const char *const keys[] = {"kind", "base_lr", "total_steps", "warmup_steps", "power", "min_lr", NULL};
    luaL_checktype(L, 1, LUA_TTABLE);
    ax_opt_check_keys(L, 1, "ax.lr_at", keys);
    ax_lr_schedule s = {0};
    if (ax_lr_kind_parse(ax_opt_string(L, 1, "kind", "constant"), &s.kind) != AX_OK) return ax_lua_fail(L);
    s.base_lr = ax_opt_number(L, 1, "base_lr", NAN);
    s.total_steps = (int64_t)ax_opt_number(L, 1, "total_steps", 0);
    s.warmup_steps = (int64_t)ax_opt_number(L, 1, "warmup_steps", 0);
    s.power = ax_opt_number(L, 1, "power", 0.9);
    s.min_lr = ax_opt_number(L, 1, "min_lr", 0);
    if (ax_lr_schedule_check(&s) != AX_OK) return ax_lua_fail(L);
    lua_pushnumber(L, ax_lr_schedule_at(&s, (int64_t)luaL_checkinteger(L, 2)));
    return 1;
}

/* ---- losses ------------------------------------------------------------------------- */

/* ax.mse_loss(pred, target [, {mask=, reduction=}]) ; same for l1 */
static int ax_lua_masked_loss(lua_State *L, bool l1) {
    static const char *const keys[] = {"mask", "reduction", NULL};
    ax_tensor *p = ax_lua_check_tensor(L, 1), *t = ax_lua_check_tensor(L, 2), *o;
    ax_opt_check_keys(L, 3, l1 ? "ax.l1_loss" : "ax.mse_loss", keys);
    ax_tensor *mask = ax_opt_tensor(L, 3, "mask");
    ax_loss_reduction r = ax_opt_reduction(L, 3, "loss");
    return ax_lua_push_result(L, l1 ? ax_l1_loss(&o, p, t, mask, r) : ax_mse_loss(&o, p, t, mask, r), &o);
}
static int ax_lua_mse_loss(lua_State *L) { return ax_lua_masked_loss(L, false); }
static int ax_lua_l1_loss(lua_State *L) { return ax_lua_masked_loss(L, true); }

static int ax_lua_smooth_l1_loss(lua_State *L) {
    static const char *const keys[] = {"beta", "reduction", NULL};
    ax_tensor *p = ax_lua_check_tensor(L, 1), *t = ax_lua_check_tensor(L, 2), *o;
    ax_opt_check_keys(L, 3, "ax.smooth_l1_loss", keys);
    return ax_lua_push_result(
        L, ax_smooth_l1_loss(&o, p, t, ax_opt_number(L, 3, "beta", 1.0), ax_opt_reduction(L, 3, "ax.smooth_l1_loss")),
        &o);
}

/* ax.cross_entropy(logits, target [, {weight=, ignore_index=, label_smoothing=, reduction=}]) */
static int ax_lua_cross_entropy(lua_State *L) {
    static const char *const keys[] = {"weight", "ignore_index", "label_smoothing", "reduction", NULL};
    ax_tensor *x = ax_lua_check_tensor(L, 1), *t = ax_lua_check_tensor(L, 2), *o;
    ax_opt_check_keys(L, 3, "ax.cross_entropy", keys);
    return ax_lua_push_result(L,
                              ax_cross_entropy(&o, x, t, ax_opt_tensor(L, 3, "weight"),
                                               (int64_t)ax_opt_number(L, 3, "ignore_index", AX_IGNORE_INDEX),
                                               ax_opt_number(L, 3, "label_smoothing", 0),
                                               ax_opt_reduction(L, 3, "ax.cross_entropy")),
                              &o);
}

static int ax_lua_bce_with_logits(lua_State *L) {
    static const char *const keys[] = {"pos_weight", "reduction", NULL};
    ax_tensor *x = ax_lua_check_tensor(L, 1), *t = ax_lua_check_tensor(L, 2), *o;
    ax_opt_check_keys(L, 3, "ax.bce_with_logits", keys);
    return ax_lua_push_result(L,
                              ax_bce_with_logits(&o, x, t, ax_opt_tensor(L, 3, "pos_weight"),
                                                 ax_opt_reduction(L, 3, "ax.bce_with_logits")),
                              &o);
}

/* ax.soft_dice_loss(probs, target [, {mask=, smooth=, batch_dice=, do_bg=}]) (nnU-Net's, negative) */
static int ax_lua_soft_dice_loss(lua_State *L) {
    static const char *const keys[] = {"mask", "smooth", "batch_dice", "do_bg", NULL};
    ax_tensor *p = ax_lua_check_tensor(L, 1), *t = ax_lua_check_tensor(L, 2), *o;
    ax_opt_check_keys(L, 3, "ax.soft_dice_loss", keys);
    return ax_lua_push_result(L,
                              ax_soft_dice_loss(&o, p, t, ax_opt_tensor(L, 3, "mask"),
                                                ax_opt_number(L, 3, "smooth", 1e-5),
                                                ax_opt_bool(L, 3, "batch_dice", false),
                                                ax_opt_bool(L, 3, "do_bg", true)),
                              &o);
}

static int ax_lua_cosine_similarity(lua_State *L) {
    ax_tensor *a = ax_lua_check_tensor(L, 1), *b = ax_lua_check_tensor(L, 2), *o;
    return ax_lua_push_result(L, ax_cosine_similarity(&o, a, b, ax_lua_c_dim(L, 3, 1), luaL_optnumber(L, 4, 1e-8)),
                              &o);
}

static int ax_lua_normalize(lua_State *L) {
    ax_tensor *x = ax_lua_check_tensor(L, 1), *o;
    return ax_lua_push_result(L, ax_l2_normalize(&o, x, ax_lua_c_dim(L, 2, 1), luaL_optnumber(L, 3, 1e-12)), &o);
}

/* ax.dropout(x, p, training, seed [, stream]) ; ax.drop_path(...) */
static int ax_lua_dropout_common(lua_State *L, bool path) {
    ax_tensor *x = ax_lua_check_tensor(L, 1), *o;
    double p = luaL_checknumber(L, 2);
    bool training = lua_toboolean(L, 3);
    uint64_t seed = (uint64_t)luaL_checkinteger(L, 4), stream = (uint64_t)luaL_optinteger(L, 5, 0);
    return ax_lua_push_result(L, path ? ax_drop_path(&o, x, p, training, seed, stream)
                                      : ax_dropout(&o, x, p, training, seed, stream),
                              &o);
}
static int ax_lua_dropout(lua_State *L) { return ax_lua_dropout_common(L, false); }
static int ax_lua_drop_path(lua_State *L) { return ax_lua_dropout_common(L, true); }

/* ax.sdpa(q, k, v [, {mask=, causal=, scale=}]) */
static int ax_lua_sdpa(lua_State *L) {
    static const char *const keys[] = {"mask", "causal", "scale", NULL};
    ax_tensor *q = ax_lua_check_tensor(L, 1), *k = ax_lua_check_tensor(L, 2), *v = ax_lua_check_tensor(L, 3), *o;
    ax_opt_check_keys(L, 4, "ax.sdpa", keys);
    return ax_lua_push_result(L,
                              ax_scaled_dot_product_attention(&o, q, k, v, ax_opt_tensor(L, 4, "mask"),
                                                              ax_opt_bool(L, 4, "causal", false),
                                                              ax_opt_number(L, 4, "scale", 0)),
                              &o);
}

/* ---- shape ops ------------------------------------------------------------------------ */

/* ax.cat({a, b, ...} [, dim]) ; ax.stack(...) */
static int ax_lua_cat_common(lua_State *L, bool stack) {
    luaL_checktype(L, 1, LUA_TTABLE);
    int dim = ax_lua_c_dim(L, 2, 0);
    int n = (int)lua_rawlen(L, 1);
    const ax_tensor **ts = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *ts, 0);
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, 1, i + 1);
        ts[i] = ax_lua_check_tensor(L, -1);
        lua_pop(L, 1);
    }
    ax_tensor *o;
    return ax_lua_push_result(L, stack ? ax_stack(&o, n, ts, dim) : ax_cat(&o, n, ts, dim), &o);
}
static int ax_lua_cat(lua_State *L) { return ax_lua_cat_common(L, false); }
static int ax_lua_stack(lua_State *L) { return ax_lua_cat_common(L, true); }

static int ax_lua_push_list(lua_State *L, ax_tensor **outs, int n) {
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        ax_lua_push_tensor(L, outs[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* x:split(size [, dim]) -> list of views ; x:chunk(n [, dim]) */
static int ax_lua_split_common(lua_State *L, bool chunk) {
    ax_tensor *x = ax_lua_check_tensor(L, 1);
    lua_Integer k = luaL_checkinteger(L, 2);
    int dim = ax_lua_c_dim(L, 3, 0);
    int d = ax_tensor_dim(x, dim);
    int64_t len = d >= 0 && x->ndim ? x->shape[d] : 1;
    int max = chunk ? (int)(k > 0 ? k : 1) : (int)(k > 0 ? (len + k - 1) / k + 1 : 1);
    ax_tensor **outs = lua_newuserdatauv(L, (size_t)max * sizeof *outs, 0);
    int n = 0;
    ax_status st = chunk ? ax_chunk(outs, &n, max, x, (int)k, dim) : ax_split(outs, &n, max, x, k, dim);
    if (st != AX_OK) return ax_lua_fail(L);
    return ax_lua_push_list(L, outs, n);
}
static int ax_lua_split(lua_State *L) { return ax_lua_split_common(L, false); }
static int ax_lua_chunk(lua_State *L) { return ax_lua_split_common(L, true); }

/* x:gather(dim, index) (0-based index values, as stored in tensors) */
static int ax_lua_gather(lua_State *L) {
    ax_tensor *x = ax_lua_check_tensor(L, 1), *i = ax_lua_check_tensor(L, 3), *o;
    return ax_lua_push_result(L, ax_gather(&o, x, ax_lua_c_dim(L, 2, 0), i), &o);
}

static int ax_lua_index_select(lua_State *L) {
    ax_tensor *x = ax_lua_check_tensor(L, 1), *i = ax_lua_check_tensor(L, 3), *o;
    return ax_lua_push_result(L, ax_index_select(&o, x, ax_lua_c_dim(L, 2, 0), i), &o);
}

static int ax_lua_masked_fill(lua_State *L) {
    ax_tensor *x = ax_lua_check_tensor(L, 1), *m = ax_lua_check_tensor(L, 2), *o;
    return ax_lua_push_result(L, ax_masked_fill(&o, x, m, luaL_checknumber(L, 3)), &o);
}

static int ax_lua_embedding(lua_State *L) {
    ax_tensor *w = ax_lua_check_tensor(L, 1), *i = ax_lua_check_tensor(L, 2), *o;
    return ax_lua_push_result(L, ax_embedding(&o, w, i), &o);
}

/* ---- convolution, normalisation, pooling ------------------------------------------- */

/* The 3-vector at idx: an integer (all three) or a list of three. */
static void ax_lua_triple(lua_State *L, int idx, const char *what, int64_t *out) {
    if (lua_isinteger(L, idx)) {
        out[0] = out[1] = out[2] = (int64_t)lua_tointeger(L, idx);
    } else if (lua_istable(L, idx)) {
        if (lua_rawlen(L, idx) != 3) luaL_error(L, "%s needs 3 values (D, H, W)", what);
        for (int i = 0; i < 3; i++) {
            lua_rawgeti(L, idx, i + 1);
            if (!lua_isinteger(L, -1)) luaL_error(L, "%s element %d must be an integer", what, i + 1);
            out[i] = (int64_t)lua_tointeger(L, -1);
            lua_pop(L, 1);
        }
    } else {
        luaL_error(L, "%s must be an integer or a list of 3, got %s", what, luaL_typename(L, idx));
    }
}

/* A 3-vector option; def for all three when absent. Returns whether given. */
static bool ax_opt_triple(lua_State *L, int t, const char *key, int64_t def, int64_t *out) {
    out[0] = out[1] = out[2] = def;
    if (lua_isnoneornil(L, t)) return false;
    lua_getfield(L, t, key);
    bool given = !lua_isnil(L, -1);
    if (given) ax_lua_triple(L, lua_gettop(L), key, out);
    lua_pop(L, 1);
    return given;
}

/* ax.conv3d(x, w [, b [, {stride=, padding=, dilation=, groups=}]]) ; ax.conv_transpose3d(... output_padding=) */
static int ax_lua_conv_common(lua_State *L, bool transposed) {
    static const char *const keys[] = {"stride", "padding", "dilation", "groups", "output_padding", NULL};
    ax_tensor *x = ax_lua_check_tensor(L, 1), *w = ax_lua_check_tensor(L, 2), *b = ax_lua_opt_tensor(L, 3), *o;
    ax_opt_check_keys(L, 4, transposed ? "ax.conv_transpose3d" : "ax.conv3d", keys);
    ax_conv_params p = ax_conv_params_default();
    ax_opt_triple(L, 4, "stride", 1, p.stride);
    ax_opt_triple(L, 4, "padding", 0, p.padding);
    ax_opt_triple(L, 4, "dilation", 1, p.dilation);
    ax_opt_triple(L, 4, "output_padding", 0, p.output_padding);
    p.groups = (int64_t)ax_opt_number(L, 4, "groups", 1);
    return ax_lua_push_result(L, transposed ? ax_conv_transpose3d(&o, x, w, b, &p) : ax_conv3d(&o, x, w, b, &p), &o);
}
static int ax_lua_conv3d(lua_State *L) { return ax_lua_conv_common(L, false); }
static int ax_lua_conv_transpose3d(lua_State *L) { return ax_lua_conv_common(L, true); }

/* ax.instance_norm(x [, weight [, bias [, eps]]]) */
static int ax_lua_instance_norm(lua_State *L) {
    ax_tensor *x = ax_lua_check_tensor(L, 1), *o;
    return ax_lua_push_result(L,
                              ax_instance_norm(&o, x, ax_lua_opt_tensor(L, 2), ax_lua_opt_tensor(L, 3),
                                               luaL_optnumber(L, 4, 1e-5)),
                              &o);
}

/* ax.group_norm(x, groups [, weight [, bias [, eps]]]) */
static int ax_lua_group_norm(lua_State *L) {
    ax_tensor *x = ax_lua_check_tensor(L, 1), *o;
    return ax_lua_push_result(L,
                              ax_group_norm(&o, x, luaL_checkinteger(L, 2), ax_lua_opt_tensor(L, 3),
                                            ax_lua_opt_tensor(L, 4), luaL_optnumber(L, 5, 1e-5)),
                              &o);
}

/* ax.layer_norm(x, n_trailing_dims [, weight [, bias [, eps]]]) */
static int ax_lua_layer_norm(lua_State *L) {
    ax_tensor *x = ax_lua_check_tensor(L, 1), *o;
    return ax_lua_push_result(L,
                              ax_layer_norm(&o, x, (int)luaL_checkinteger(L, 2), ax_lua_opt_tensor(L, 3),
                                            ax_lua_opt_tensor(L, 4), luaL_optnumber(L, 5, 1e-5)),
                              &o);
}

/* ax.batch_norm(x, {running_mean=, running_var=, weight=, bias=, training=, momentum=, eps=}) */
static int ax_lua_batch_norm(lua_State *L) {
    static const char *const keys[] = {"running_mean", "running_var", "weight", "bias", "training", "momentum", "eps", NULL};
    ax_tensor *x = ax_lua_check_tensor(L, 1), *o;
    ax_opt_check_keys(L, 2, "ax.batch_norm", keys);
    return ax_lua_push_result(L,
                              ax_batch_norm(&o, x, ax_opt_tensor(L, 2, "running_mean"),
                                            ax_opt_tensor(L, 2, "running_var"), ax_opt_tensor(L, 2, "weight"),
                                            ax_opt_tensor(L, 2, "bias"), ax_opt_bool(L, 2, "training", true),
                                            ax_opt_number(L, 2, "momentum", 0.1), ax_opt_number(L, 2, "eps", 1e-5)),
                              &o);
}

/* ax.max_pool3d(x, kernel [, {stride=, padding=, ceil_mode=}]) -> y, indices */
static int ax_lua_max_pool3d(lua_State *L) {
    static const char *const keys[] = {"stride", "padding", "ceil_mode", NULL};
    ax_tensor *x = ax_lua_check_tensor(L, 1), *y, *idx;
    int64_t k[3], st[3], pad[3];
    ax_lua_triple(L, 2, "kernel", k);
    ax_opt_check_keys(L, 3, "ax.max_pool3d", keys);
    bool strided = ax_opt_triple(L, 3, "stride", 0, st);
    ax_opt_triple(L, 3, "padding", 0, pad);
    if (ax_max_pool3d(&y, &idx, x, k, strided ? st : NULL, pad, ax_opt_bool(L, 3, "ceil_mode", false)) != AX_OK)
        return ax_lua_fail(L);
    ax_lua_push_tensor(L, y);
    ax_lua_push_tensor(L, idx);
    return 2;
}

/* ax.avg_pool3d(x, kernel [, {stride=, padding=, ceil_mode=, count_include_pad=}]) */
static int ax_lua_avg_pool3d(lua_State *L) {
    static const char *const keys[] = {"stride", "padding", "ceil_mode", "count_include_pad", NULL};
    ax_tensor *x = ax_lua_check_tensor(L, 1), *y;
    int64_t k[3], st[3], pad[3];
    ax_lua_triple(L, 2, "kernel", k);
    ax_opt_check_keys(L, 3, "ax.avg_pool3d", keys);
    bool strided = ax_opt_triple(L, 3, "stride", 0, st);
    ax_opt_triple(L, 3, "padding", 0, pad);
    return ax_lua_push_result(L,
                              ax_avg_pool3d(&y, x, k, strided ? st : NULL, pad, ax_opt_bool(L, 3, "ceil_mode", false),
                                            ax_opt_bool(L, 3, "count_include_pad", true)),
                              &y);
}

/* ax.interpolate(x, {D, H, W} [, {mode = "nearest"|"trilinear", align_corners = false}]) */
static int ax_lua_interpolate(lua_State *L) {
    static const char *const keys[] = {"mode", "align_corners", NULL};
    ax_tensor *x = ax_lua_check_tensor(L, 1), *y;
    luaL_checktype(L, 2, LUA_TTABLE);
    int64_t size[3];
    int n = (int)lua_rawlen(L, 2);
    if (n < 1 || n > 3) return luaL_argerror(L, 2, "size needs 1 to 3 values");
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, 2, i + 1);
        size[i] = (int64_t)luaL_checkinteger(L, -1);
        lua_pop(L, 1);
    }
    ax_opt_check_keys(L, 3, "ax.interpolate", keys);
    const char *mode = ax_opt_string(L, 3, "mode", "nearest");
    ax_interp_mode m = strcmp(mode, "nearest") == 0 ? AX_INTERP_NEAREST
                       : (strcmp(mode, "trilinear") == 0 || strcmp(mode, "bilinear") == 0 || strcmp(mode, "linear") == 0)
                           ? AX_INTERP_TRILINEAR
                           : 0;
    if (!m) return luaL_error(L, "ax.interpolate: mode '%s' is not nearest, linear, bilinear or trilinear", mode);
    return ax_lua_push_result(L, ax_interpolate(&y, x, size, m, ax_opt_bool(L, 3, "align_corners", false)), &y);
}

/* ax.pad(x, {w0, w1, h0, h1, d0, d1} [, {mode = "constant"|"reflect"|"replicate", value = 0}]) (torch order) */
static int ax_lua_pad(lua_State *L) {
    static const char *const keys[] = {"mode", "value", NULL};
    ax_tensor *x = ax_lua_check_tensor(L, 1), *y;
    luaL_checktype(L, 2, LUA_TTABLE);
    int64_t pads[6];
    int n = (int)lua_rawlen(L, 2);
    if (n < 2 || n > 6 || n % 2) return luaL_argerror(L, 2, "pads need 2, 4 or 6 values");
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, 2, i + 1);
        pads[i] = (int64_t)luaL_checkinteger(L, -1);
        lua_pop(L, 1);
    }
    ax_opt_check_keys(L, 3, "ax.pad", keys);
    const char *mode = ax_opt_string(L, 3, "mode", "constant");
    ax_pad_mode m = strcmp(mode, "constant") == 0   ? AX_PAD_CONSTANT
                    : strcmp(mode, "reflect") == 0   ? AX_PAD_REFLECT
                    : strcmp(mode, "replicate") == 0 ? AX_PAD_REPLICATE
                                                     : 0;
    if (!m) return luaL_error(L, "ax.pad: mode '%s' is not constant, reflect or replicate", mode);
    return ax_lua_push_result(L, ax_pad(&y, x, n, pads, m, ax_opt_number(L, 3, "value", 0)), &y);
}

void ax_lua_nn_open(lua_State *L) {
    luaL_newmetatable(L, AX_LUA_OPTIM);
    static const luaL_Reg methods[] = {
        {"step", ax_lua_optim_step}, {"zero_grad", ax_lua_optim_zero_grad}, {"lr", ax_lua_optim_lr},
        {"set_lr", ax_lua_optim_set_lr}, {"steps", ax_lua_optim_steps},     {"save", ax_lua_optim_save},
        {"load", ax_lua_optim_load}, {"close", ax_lua_optim_gc},            {NULL, NULL}};
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, ax_lua_optim_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, ax_lua_optim_gc);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);
}

void ax_lua_nn_register(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"optim", ax_lua_optim_new},
        {"clip_grad_norm", ax_lua_clip_grad_norm},
        {"lr_at", ax_lua_lr_at},
        {"mse_loss", ax_lua_mse_loss},
        {"l1_loss", ax_lua_l1_loss},
        {"smooth_l1_loss", ax_lua_smooth_l1_loss},
        {"cross_entropy", ax_lua_cross_entropy},
        {"bce_with_logits", ax_lua_bce_with_logits},
        {"soft_dice_loss", ax_lua_soft_dice_loss},
        {"cosine_similarity", ax_lua_cosine_similarity},
        {"normalize", ax_lua_normalize},
        {"dropout", ax_lua_dropout},
        {"drop_path", ax_lua_drop_path},
        {"sdpa", ax_lua_sdpa},
        {"cat", ax_lua_cat},
        {"stack", ax_lua_stack},
        {"split", ax_lua_split},
        {"chunk", ax_lua_chunk},
        {"gather", ax_lua_gather},
        {"index_select", ax_lua_index_select},
        {"masked_fill", ax_lua_masked_fill},
        {"embedding", ax_lua_embedding},
        {"conv3d", ax_lua_conv3d},
        {"conv_transpose3d", ax_lua_conv_transpose3d},
        {"instance_norm", ax_lua_instance_norm},
        {"group_norm", ax_lua_group_norm},
        {"layer_norm", ax_lua_layer_norm},
        {"batch_norm", ax_lua_batch_norm},
        {"max_pool3d", ax_lua_max_pool3d},
        {"avg_pool3d", ax_lua_avg_pool3d},
        {"interpolate", ax_lua_interpolate},
        {"pad", ax_lua_pad},
        {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
}

/* The tensor methods that live here too (x:split(2), x:gather(...)). */
void ax_lua_nn_methods(lua_State *L) {
    static const luaL_Reg m[] = {{"split", ax_lua_split},           {"chunk", ax_lua_chunk},
                                 {"gather", ax_lua_gather},         {"index_select", ax_lua_index_select},
                                 {"masked_fill", ax_lua_masked_fill}, {NULL, NULL}};
    luaL_setfuncs(L, m, 0);
}
