/* Tensors in Lua: userdata with arithmetic metamethods, the ops of
 * axon/ops.h as methods and module functions, autograd, no-grad scopes.
 *
 * Conventions (those of Lua and Torch7): dims are 1-based, negative dims
 * count from the end (-1 is the last); shapes are Lua arrays {2, 3, 4}.
 *
 *     local ax = require "axon"
 *     local w = ax.randn({3, 2}, 1):requires_grad()
 *     local x = ax.tensor({{1, 2, 3}})
 *     local loss = ((x:matmul(w) - 1) ^ 2):mean()
 *     loss:backward()
 *     print(w.grad)
 */
#include "lua_tensor.h"

#include "lua_nn.h"

#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "axon/axon.h"

#define AX_LUA_TENSOR "axon.tensor"

typedef struct ax_lua_tensor {
    ax_tensor *t;
} ax_lua_tensor;

/* Push a tensor (steals the reference). */
void ax_lua_push_tensor(lua_State *L, ax_tensor *t) {
    ax_lua_tensor *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->t = t;
    luaL_setmetatable(L, AX_LUA_TENSOR);
}

ax_tensor *ax_lua_check_tensor(lua_State *L, int idx) {
    ax_lua_tensor *u = luaL_checkudata(L, idx, AX_LUA_TENSOR);
    if (!u->t) luaL_error(L, "tensor used after it was closed");
    return u->t;
}

int ax_lua_is_tensor(lua_State *L, int idx) { return luaL_testudata(L, idx, AX_LUA_TENSOR) != NULL; }

ax_tensor *ax_lua_opt_tensor(lua_State *L, int idx) {
    return lua_isnoneornil(L, idx) ? NULL : ax_lua_check_tensor(L, idx);
}

static int ax_lua_fail_op(lua_State *L) { return luaL_error(L, "%s", ax_error_message()); }

/* Push the result of an op returning a tensor, or raise its error. `out`
 * is passed by address: it is read only after the op (an argument of the
 * call) has run. */
static int ax_lua_result(lua_State *L, ax_status st, ax_tensor **out) {
    if (st != AX_OK) return ax_lua_fail_op(L);
    ax_lua_push_tensor(L, *out);
    return 1;
}

/* A tensor argument that may also be a Lua number, which becomes a 0-dim
 * tensor of the other operand's dtype (like a Python scalar in PyTorch),
 * except that a fractional number with an integer tensor gives f32. */
static ax_tensor *ax_lua_tensor_or_number(lua_State *L, int idx, const ax_tensor *like, ax_tensor **tmp) {
    *tmp = NULL;
    if (lua_type(L, idx) == LUA_TNUMBER) {
        ax_dtype dt = !like                                         ? AX_DTYPE_F32
                      : ax_dtype_is_float(like->dtype) || lua_isinteger(L, idx) ? like->dtype
                                                                    : AX_DTYPE_F32;
        if (ax_tensor_scalar(tmp, lua_tonumber(L, idx), dt) != AX_OK) ax_lua_fail_op(L);
        return *tmp;
    }
    return ax_lua_check_tensor(L, idx);
}

/* ---- argument helpers ------------------------------------------------------ */

/* A shape from a Lua array (or from the numbers at idx..top). */
static int ax_lua_shape(lua_State *L, int idx, int64_t *shape) {
    if (lua_istable(L, idx)) {
        int n = (int)lua_rawlen(L, idx);
        if (n > AX_MAX_DIMS) luaL_error(L, "shape has %d dims (at most %d)", n, AX_MAX_DIMS);
        for (int i = 0; i < n; i++) {
            lua_rawgeti(L, idx, i + 1);
            if (!lua_isinteger(L, -1)) luaL_error(L, "shape element %d must be an integer", i + 1);
            shape[i] = (int64_t)lua_tointeger(L, -1);
            lua_pop(L, 1);
        }
        return n;
    }
    int top = lua_gettop(L), n = 0;
    for (int i = idx; i <= top && lua_type(L, i) == LUA_TNUMBER; i++) {
        if (n == AX_MAX_DIMS) luaL_error(L, "shape has more than %d dims", AX_MAX_DIMS);
        shape[n++] = (int64_t)luaL_checkinteger(L, i);
    }
    return n;
}

/* Lua dim (1-based, or negative from the end) -> C dim (0-based, or negative). */
static int ax_lua_dim(lua_State *L, int idx) {
    lua_Integer d = luaL_checkinteger(L, idx);
    if (d == 0) luaL_argerror(L, idx, "dims are 1-based (or negative from the end); 0 is not a dim");
    return d > 0 ? (int)(d - 1) : (int)d;
}

/* dims: nil (all), a number, or an array of numbers. Returns the count. */
static int ax_lua_dims(lua_State *L, int idx, int *dims) {
    if (lua_isnoneornil(L, idx)) return 0;
    if (lua_type(L, idx) == LUA_TNUMBER) {
        dims[0] = ax_lua_dim(L, idx);
        return 1;
    }
    luaL_checktype(L, idx, LUA_TTABLE);
    int n = (int)lua_rawlen(L, idx);
    if (n > AX_MAX_DIMS) luaL_argerror(L, idx, "too many dims");
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, idx, i + 1);
        lua_Integer d = luaL_checkinteger(L, -1);
        if (d == 0) luaL_argerror(L, idx, "dims are 1-based; 0 is not a dim");
        dims[i] = d > 0 ? (int)(d - 1) : (int)d;
        lua_pop(L, 1);
    }
    return n;
}

static ax_dtype ax_lua_dtype(lua_State *L, int idx, ax_dtype def) {
    if (lua_isnoneornil(L, idx)) return def;
    const char *name = luaL_checkstring(L, idx);
    ax_dtype d = ax_dtype_parse(name);
    if (!d) luaL_error(L, "unknown dtype '%s' (f32, bf16, f16, i32, i64, u8)", name);
    return d;
}

/* ---- construction ------------------------------------------------------------ */

/* Walk a nested Lua table: record the shape on the first descent, then
 * check every sub-table matches it. */
static void ax_lua_nested_shape(lua_State *L, int idx, int depth, int *ndim, int64_t *shape) {
    if (!lua_istable(L, idx)) {
        if (*ndim < 0) *ndim = depth;
        return;
    }
    if (depth >= AX_MAX_DIMS) luaL_error(L, "ax.tensor: nested deeper than %d", AX_MAX_DIMS);
    int64_t n = (int64_t)lua_rawlen(L, idx);
    if (*ndim < 0) shape[depth] = n;
    lua_rawgeti(L, idx, 1);
    if (n > 0) ax_lua_nested_shape(L, lua_gettop(L), depth + 1, ndim, shape);
    else if (*ndim < 0) *ndim = depth + 1;
    lua_pop(L, 1);
}

static void ax_lua_nested_fill(lua_State *L, int idx, int depth, int ndim, const int64_t *shape, ax_tensor *t,
                               int64_t *pos) {
    if (depth == ndim) {
        if (lua_type(L, idx) != LUA_TNUMBER && lua_type(L, idx) != LUA_TBOOLEAN)
            luaL_error(L, "ax.tensor: element %I is a %s, not a number", (lua_Integer)(*pos + 1), luaL_typename(L, idx));
        ax_tensor_set(t, (*pos)++, lua_isboolean(L, idx) ? lua_toboolean(L, idx) : lua_tonumber(L, idx));
        return;
    }
    if (!lua_istable(L, idx) || (int64_t)lua_rawlen(L, idx) != shape[depth])
        luaL_error(L, "ax.tensor: ragged nested table (dim %d should have %I elements)", depth + 1,
                   (lua_Integer)shape[depth]);
    for (int64_t i = 0; i < shape[depth]; i++) {
        lua_rawgeti(L, idx, (lua_Integer)i + 1);
        ax_lua_nested_fill(L, lua_gettop(L), depth + 1, ndim, shape, t, pos);
        lua_pop(L, 1);
    }
}

/* ax.tensor(number | nested table [, dtype]) */
static int ax_lua_tensor_new(lua_State *L) {
    ax_dtype dtype = ax_lua_dtype(L, 2, AX_DTYPE_F32);
    ax_tensor *t;
    if (lua_type(L, 1) == LUA_TNUMBER) return ax_lua_result(L, ax_tensor_scalar(&t, lua_tonumber(L, 1), dtype), &t);
    luaL_checktype(L, 1, LUA_TTABLE);
    int ndim = -1;
    int64_t shape[AX_MAX_DIMS];
    ax_lua_nested_shape(L, 1, 0, &ndim, shape);
    if (ax_tensor_empty(&t, ndim, shape, dtype) != AX_OK) return ax_lua_fail_op(L);
    ax_lua_push_tensor(L, t); /* owned by Lua before anything can raise */
    int64_t pos = 0;
    ax_lua_nested_fill(L, 1, 0, ndim, shape, t, &pos);
    return 1;
}

static int ax_lua_filled(lua_State *L, double value) {
    int64_t shape[AX_MAX_DIMS];
    int n = ax_lua_shape(L, 1, shape);
    int didx = lua_istable(L, 1) ? 2 : n + 1;
    ax_tensor *t;
    return ax_lua_result(L, ax_tensor_full(&t, n, shape, ax_lua_dtype(L, didx, AX_DTYPE_F32), value), &t);
}

static int ax_lua_zeros(lua_State *L) { return ax_lua_filled(L, 0); }
static int ax_lua_ones(lua_State *L) { return ax_lua_filled(L, 1); }

/* ax.full(shape, value [, dtype]) */
static int ax_lua_full(lua_State *L) {
    int64_t shape[AX_MAX_DIMS];
    luaL_checktype(L, 1, LUA_TTABLE);
    int n = ax_lua_shape(L, 1, shape);
    ax_tensor *t;
    return ax_lua_result(L, ax_tensor_full(&t, n, shape, ax_lua_dtype(L, 3, AX_DTYPE_F32), luaL_checknumber(L, 2)), &t);
}

/* ax.arange(stop) / ax.arange(start, stop [, step [, dtype]]) */
static int ax_lua_arange(lua_State *L) {
    double start = 0, stop, step = 1;
    if (lua_isnoneornil(L, 2)) {
        stop = luaL_checknumber(L, 1);
    } else {
        start = luaL_checknumber(L, 1);
        stop = luaL_checknumber(L, 2);
        step = luaL_optnumber(L, 3, 1);
    }
    ax_dtype def = lua_isinteger(L, 1) && (lua_isnoneornil(L, 2) || lua_isinteger(L, 2)) &&
                           (lua_isnoneornil(L, 3) || lua_isinteger(L, 3))
                       ? AX_DTYPE_I64
                       : AX_DTYPE_F32;
    ax_tensor *t;
    return ax_lua_result(L, ax_tensor_arange(&t, start, stop, step, ax_lua_dtype(L, 4, def)), &t);
}

/* ax.rand(shape, seed [, stream [, dtype]]), ax.randn(...) */
static int ax_lua_random(lua_State *L, int normal) {
    int64_t shape[AX_MAX_DIMS];
    luaL_checktype(L, 1, LUA_TTABLE);
    int n = ax_lua_shape(L, 1, shape);
    uint64_t seed = (uint64_t)luaL_checkinteger(L, 2), stream = (uint64_t)luaL_optinteger(L, 3, 0);
    ax_dtype dt = ax_lua_dtype(L, 4, AX_DTYPE_F32);
    ax_tensor *t;
    ax_status st = normal ? ax_tensor_randn(&t, n, shape, dt, seed, stream) : ax_tensor_rand(&t, n, shape, dt, seed, stream);
    return ax_lua_result(L, st, &t);
}
static int ax_lua_rand(lua_State *L) { return ax_lua_random(L, 0); }
static int ax_lua_randn(lua_State *L) { return ax_lua_random(L, 1); }

/* ---- fields and conversions ------------------------------------------------------ */

static int ax_lua_t_shape(lua_State *L) {
    ax_tensor *t = ax_lua_check_tensor(L, 1);
    lua_createtable(L, t->ndim, 0);
    for (int i = 0; i < t->ndim; i++) {
        lua_pushinteger(L, t->shape[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int ax_lua_t_size(lua_State *L) {
    ax_tensor *t = ax_lua_check_tensor(L, 1);
    if (lua_isnoneornil(L, 2)) return ax_lua_t_shape(L);
    int d = ax_tensor_dim(t, ax_lua_dim(L, 2));
    if (d < 0 || t->ndim == 0) return luaL_argerror(L, 2, "dim out of range");
    lua_pushinteger(L, t->shape[d]);
    return 1;
}

static int ax_lua_t_numel(lua_State *L) {
    lua_pushinteger(L, ax_tensor_numel(ax_lua_check_tensor(L, 1)));
    return 1;
}

static void ax_lua_push_elem(lua_State *L, const ax_tensor *t, int64_t i) {
    double v = ax_tensor_get(t, i);
    if (ax_dtype_is_float(t->dtype))
        lua_pushnumber(L, v);
    else
        lua_pushinteger(L, (lua_Integer)v);
}

static int ax_lua_t_item(lua_State *L) {
    ax_tensor *t = ax_lua_check_tensor(L, 1);
    if (ax_tensor_numel(t) != 1) {
        char s[160];
        return luaL_error(L, "item: tensor %s has %I elements, not 1", ax_shape_str(s, sizeof s, t->ndim, t->shape),
                          (lua_Integer)ax_tensor_numel(t));
    }
    if (t->storage->device.type != AX_DEVICE_CPU) return luaL_error(L, "item: tensor is not on the CPU");
    ax_lua_push_elem(L, t, 0);
    return 1;
}

static void ax_lua_push_nested(lua_State *L, const ax_tensor *t, int dim, int64_t *pos) {
    if (dim == t->ndim) {
        ax_lua_push_elem(L, t, (*pos)++);
        return;
    }
    lua_createtable(L, (int)t->shape[dim], 0);
    for (int64_t i = 0; i < t->shape[dim]; i++) {
        ax_lua_push_nested(L, t, dim + 1, pos);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

/* t:totable() -> nested Lua tables (a number for a 0-dim tensor) */
static int ax_lua_t_totable(lua_State *L) {
    ax_tensor *t = ax_lua_check_tensor(L, 1);
    int64_t pos = 0;
    ax_lua_push_nested(L, t, 0, &pos);
    return 1;
}

/* t:get(i, j, ...) with 1-based indices */
static int ax_lua_t_get(lua_State *L) {
    ax_tensor *t = ax_lua_check_tensor(L, 1);
    if (lua_gettop(L) - 1 != t->ndim) return luaL_error(L, "get: need %d indices, got %d", t->ndim, lua_gettop(L) - 1);
    int64_t flat = 0;
    for (int d = 0; d < t->ndim; d++) {
        lua_Integer i = luaL_checkinteger(L, d + 2);
        if (i < 1 || i > t->shape[d])
            return luaL_error(L, "get: index %I out of range [1, %I] for dim %d", (lua_Integer)i,
                              (lua_Integer)t->shape[d], d + 1);
        flat = flat * t->shape[d] + (i - 1);
    }
    ax_lua_push_elem(L, t, flat);
    return 1;
}

static int ax_lua_t_tostring(lua_State *L) {
    ax_lua_tensor *u = luaL_checkudata(L, 1, AX_LUA_TENSOR);
    if (!u->t) return lua_pushliteral(L, "tensor (closed)"), 1;
    char *s = ax_tensor_to_string(u->t);
    lua_pushstring(L, s ? s : "tensor");
    free(s);
    return 1;
}

static int ax_lua_t_gc(lua_State *L) {
    ax_lua_tensor *u = luaL_checkudata(L, 1, AX_LUA_TENSOR);
    ax_tensor_free(u->t);
    u->t = NULL;
    return 0;
}

/* ---- views ---------------------------------------------------------------------- */

static int ax_lua_t_view(lua_State *L) {
    ax_tensor *t = ax_lua_check_tensor(L, 1), *o;
    int64_t shape[AX_MAX_DIMS];
    int n = ax_lua_shape(L, 2, shape);
    return ax_lua_result(L, ax_tensor_view(&o, t, n, shape), &o);
}

static int ax_lua_t_reshape(lua_State *L) {
    ax_tensor *t = ax_lua_check_tensor(L, 1), *o;
    int64_t shape[AX_MAX_DIMS];
    int n = ax_lua_shape(L, 2, shape);
    return ax_lua_result(L, ax_tensor_reshape(&o, t, n, shape), &o);
}

static int ax_lua_t_permute(lua_State *L) {
    ax_tensor *t = ax_lua_check_tensor(L, 1), *o;
    int perm[AX_MAX_DIMS];
    int n = lua_istable(L, 2) ? ax_lua_dims(L, 2, perm) : 0;
    if (!lua_istable(L, 2))
        for (int i = 2; i <= lua_gettop(L) && n < AX_MAX_DIMS; i++) perm[n++] = ax_lua_dim(L, i);
    if (n != t->ndim) return luaL_error(L, "permute: need %d dims, got %d", t->ndim, n);
    return ax_lua_result(L, ax_tensor_permute(&o, t, perm), &o);
}

static int ax_lua_t_transpose(lua_State *L) {
    ax_tensor *t = ax_lua_check_tensor(L, 1), *o;
    return ax_lua_result(L, ax_tensor_transpose(&o, t, ax_lua_dim(L, 2), ax_lua_dim(L, 3)), &o);
}

/* t:narrow(dim, start, length) with a 1-based start */
static int ax_lua_t_narrow(lua_State *L) {
    ax_tensor *t = ax_lua_check_tensor(L, 1), *o;
    lua_Integer start = luaL_checkinteger(L, 3);
    if (start < 1) return luaL_argerror(L, 3, "start is 1-based");
    return ax_lua_result(L, ax_tensor_narrow(&o, t, ax_lua_dim(L, 2), start - 1, luaL_checkinteger(L, 4)), &o);
}

/* t:slice(dim, first, last [, step]) — inclusive 1-based bounds, negatives from the end */
static int ax_lua_t_slice(lua_State *L) {
    ax_tensor *t = ax_lua_check_tensor(L, 1), *o;
    int dim = ax_lua_dim(L, 2);
    lua_Integer first = luaL_checkinteger(L, 3), last = luaL_optinteger(L, 4, -1), step = luaL_optinteger(L, 5, 1);
    int d = ax_tensor_dim(t, dim);
    if (d < 0) return luaL_argerror(L, 2, "dim out of range");
    int64_t n = t->shape[d];
    int64_t s = first > 0 ? first - 1 : n + first, e = last > 0 ? last : n + last + 1;
    return ax_lua_result(L, ax_tensor_slice(&o, t, dim, s, e, step), &o);
}

static int ax_lua_t_expand(lua_State *L) {
    ax_tensor *t = ax_lua_check_tensor(L, 1), *o;
    int64_t shape[AX_MAX_DIMS];
    int n = ax_lua_shape(L, 2, shape);
    return ax_lua_result(L, ax_tensor_expand(&o, t, n, shape), &o);
}

static int ax_lua_t_squeeze(lua_State *L) {
    ax_tensor *t = ax_lua_check_tensor(L, 1), *o;
    int dim = lua_isnoneornil(L, 2) ? AX_ALL_DIMS : ax_lua_dim(L, 2);
    return ax_lua_result(L, ax_tensor_squeeze(&o, t, dim), &o);
}

static int ax_lua_t_unsqueeze(lua_State *L) {
    ax_tensor *t = ax_lua_check_tensor(L, 1), *o;
    lua_Integer d = luaL_checkinteger(L, 2);
    if (d == 0) return luaL_argerror(L, 2, "dims are 1-based");
    /* a new dim at position d (1-based) of the result; -1 appends */
    return ax_lua_result(L, ax_tensor_unsqueeze(&o, t, d > 0 ? (int)d - 1 : (int)d), &o);
}

static int ax_lua_t_contiguous(lua_State *L) {
    ax_tensor *t = ax_lua_check_tensor(L, 1), *o;
    return ax_lua_result(L, ax_tensor_contiguous(&o, t), &o);
}

static int ax_lua_t_to(lua_State *L) {
    ax_tensor *t = ax_lua_check_tensor(L, 1), *o;
    /* t:to() moves to the default device ($AXON_DEVICE, else the CPU) */
    const char *what = luaL_optstring(L, 2, "default");
    ax_device dev;
    if (strcmp(what, "default") == 0) {
        if (ax_device_default(&dev) != AX_OK) return luaL_error(L, "%s", ax_error_message());
        return ax_lua_result(L, ax_tensor_to_device(&o, t, dev), &o);
    }
    if (strcmp(what, "cpu") == 0 || strncmp(what, "cuda", 4) == 0) {
        if (ax_device_parse(what, &dev) != AX_OK) return luaL_error(L, "to: %s", ax_error_message());
        return ax_lua_result(L, ax_tensor_to_device(&o, t, dev), &o);
    }
    return ax_lua_result(L, ax_tensor_to_dtype(&o, t, ax_lua_dtype(L, 2, AX_DTYPE_F32)), &o);
}

static int ax_lua_t_detach(lua_State *L) {
    ax_tensor *t = ax_lua_check_tensor(L, 1), *o;
    return ax_lua_result(L, ax_tensor_detach(&o, t), &o);
}

/* t:clone(): a contiguous copy with its own storage (differentiable) */
static int ax_lua_t_clone(lua_State *L) {
    ax_tensor *t = ax_lua_check_tensor(L, 1), *o;
    return ax_lua_result(L, ax_tensor_to_dtype(&o, t, t->dtype), &o);
}

/* ---- autograd ---------------------------------------------------------------------- */

/* t:requires_grad([flag]) -> t (marks a leaf) */
static int ax_lua_t_requires_grad(lua_State *L) {
    ax_tensor *t = ax_lua_check_tensor(L, 1);
    bool flag = lua_isnoneornil(L, 2) ? true : lua_toboolean(L, 2);
    if (ax_tensor_set_requires_grad(t, flag) != AX_OK) return ax_lua_fail_op(L);
    lua_settop(L, 1);
    return 1;
}

static int ax_lua_t_backward(lua_State *L) {
    ax_tensor *t = ax_lua_check_tensor(L, 1), *g = ax_lua_opt_tensor(L, 2);
    if (ax_backward(t, g) != AX_OK) return ax_lua_fail_op(L);
    return 0;
}

static int ax_lua_t_zero_grad(lua_State *L) {
    ax_tensor_zero_grad(ax_lua_check_tensor(L, 1));
    return 0;
}

/* ax.no_grad(fn, ...) -> fn's results, with recording off while it runs */
static int ax_lua_no_grad(lua_State *L) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    int n = lua_gettop(L);
    ax_no_grad_begin();
    int st = lua_pcall(L, n - 1, LUA_MULTRET, 0);
    ax_no_grad_end();
    if (st != LUA_OK) return lua_error(L);
    return lua_gettop(L);
}

/* ---- ops ---------------------------------------------------------------------------- */

typedef ax_status (*ax_unary_fn)(ax_tensor **, const ax_tensor *);
typedef ax_status (*ax_binary_fn)(ax_tensor **, const ax_tensor *, const ax_tensor *);

static int ax_lua_unary(lua_State *L, ax_unary_fn f) {
    ax_tensor *t = ax_lua_check_tensor(L, 1), *o;
    return ax_lua_result(L, f(&o, t), &o);
}

static int ax_lua_binary(lua_State *L, ax_binary_fn f) {
    ax_tensor *ta, *tb, *o;
    const ax_tensor *la = ax_lua_is_tensor(L, 1) ? ax_lua_check_tensor(L, 1) : NULL;
    const ax_tensor *lb = ax_lua_is_tensor(L, 2) ? ax_lua_check_tensor(L, 2) : NULL;
    if (!la && !lb) return luaL_error(L, "expected a tensor operand, got %s and %s", luaL_typename(L, 1), luaL_typename(L, 2));
    ax_tensor *a = ax_lua_tensor_or_number(L, 1, lb, &ta);
    ax_tensor *b = ax_lua_tensor_or_number(L, 2, la, &tb);
    ax_status st = f(&o, a, b);
    ax_tensor_free(ta);
    ax_tensor_free(tb);
    return ax_lua_result(L, st, &o);
}

static int ax_lua_neg(lua_State *L) { return ax_lua_unary(L, ax_neg); }
static int ax_lua_exp(lua_State *L) { return ax_lua_unary(L, ax_exp); }
int ax_lua_tensor_log(lua_State *L) { return ax_lua_unary(L, ax_log); }
static int ax_lua_sqrt(lua_State *L) { return ax_lua_unary(L, ax_sqrt); }
static int ax_lua_rsqrt(lua_State *L) { return ax_lua_unary(L, ax_rsqrt); }
static int ax_lua_abs(lua_State *L) { return ax_lua_unary(L, ax_abs); }
static int ax_lua_relu(lua_State *L) { return ax_lua_unary(L, ax_relu); }
static int ax_lua_silu(lua_State *L) { return ax_lua_unary(L, ax_silu); }
static int ax_lua_sigmoid(lua_State *L) { return ax_lua_unary(L, ax_sigmoid); }
static int ax_lua_tanh(lua_State *L) { return ax_lua_unary(L, ax_tanh); }
static int ax_lua_add(lua_State *L) { return ax_lua_binary(L, ax_add); }
static int ax_lua_sub(lua_State *L) { return ax_lua_binary(L, ax_sub); }
static int ax_lua_mul(lua_State *L) { return ax_lua_binary(L, ax_mul); }
static int ax_lua_div(lua_State *L) { return ax_lua_binary(L, ax_div); }
static int ax_lua_pow(lua_State *L) { return ax_lua_binary(L, ax_pow); }
static int ax_lua_maximum(lua_State *L) { return ax_lua_binary(L, ax_maximum); }
static int ax_lua_minimum(lua_State *L) { return ax_lua_binary(L, ax_minimum); }
static int ax_lua_eq(lua_State *L) { return ax_lua_binary(L, ax_eq); }
static int ax_lua_ne(lua_State *L) { return ax_lua_binary(L, ax_ne); }
static int ax_lua_lt(lua_State *L) { return ax_lua_binary(L, ax_lt); }
static int ax_lua_le(lua_State *L) { return ax_lua_binary(L, ax_le); }
static int ax_lua_gt(lua_State *L) { return ax_lua_binary(L, ax_gt); }
static int ax_lua_ge(lua_State *L) { return ax_lua_binary(L, ax_ge); }
static int ax_lua_matmul(lua_State *L) { return ax_lua_binary(L, ax_matmul); }

static int ax_lua_where(lua_State *L) {
    ax_tensor *ta, *tb, *o;
    ax_tensor *c = ax_lua_check_tensor(L, 1);
    const ax_tensor *la = ax_lua_is_tensor(L, 2) ? ax_lua_check_tensor(L, 2) : NULL;
    const ax_tensor *lb = ax_lua_is_tensor(L, 3) ? ax_lua_check_tensor(L, 3) : NULL;
    ax_tensor *a = ax_lua_tensor_or_number(L, 2, lb, &ta), *b = ax_lua_tensor_or_number(L, 3, la, &tb);
    ax_status st = ax_where(&o, c, a, b);
    ax_tensor_free(ta);
    ax_tensor_free(tb);
    return ax_lua_result(L, st, &o);
}

static int ax_lua_clamp(lua_State *L) {
    ax_tensor *t = ax_lua_check_tensor(L, 1), *o;
    double lo = lua_isnoneornil(L, 2) ? -INFINITY : luaL_checknumber(L, 2);
    double hi = lua_isnoneornil(L, 3) ? INFINITY : luaL_checknumber(L, 3);
    return ax_lua_result(L, ax_clamp(&o, t, lo, hi), &o);
}

static int ax_lua_leaky_relu(lua_State *L) {
    ax_tensor *t = ax_lua_check_tensor(L, 1), *o;
    return ax_lua_result(L, ax_leaky_relu(&o, t, luaL_optnumber(L, 2, 0.01)), &o);
}

static int ax_lua_gelu(lua_State *L) {
    ax_tensor *t = ax_lua_check_tensor(L, 1), *o;
    const char *approx = luaL_optstring(L, 2, "none");
    if (strcmp(approx, "none") && strcmp(approx, "tanh"))
        return luaL_argerror(L, 2, "approximate must be 'none' or 'tanh'");
    return ax_lua_result(L, ax_gelu(&o, t, strcmp(approx, "tanh") == 0), &o);
}

static int ax_lua_softplus(lua_State *L) {
    ax_tensor *t = ax_lua_check_tensor(L, 1), *o;
    return ax_lua_result(L, ax_softplus(&o, t, luaL_optnumber(L, 2, 1), luaL_optnumber(L, 3, 20)), &o);
}

typedef ax_status (*ax_reduce_fn)(ax_tensor **, const ax_tensor *, int, const int *, bool);

/* t:sum([dims [, keepdim]]) and friends */
static int ax_lua_reduce(lua_State *L, ax_reduce_fn f) {
    ax_tensor *t = ax_lua_check_tensor(L, 1), *o;
    int dims[AX_MAX_DIMS];
    int n = ax_lua_dims(L, 2, dims);
    return ax_lua_result(L, f(&o, t, n, dims, lua_toboolean(L, 3)), &o);
}
static int ax_lua_sum(lua_State *L) { return ax_lua_reduce(L, ax_sum); }
static int ax_lua_mean(lua_State *L) { return ax_lua_reduce(L, ax_mean); }
static int ax_lua_logsumexp(lua_State *L) { return ax_lua_reduce(L, ax_logsumexp); }

/* t:var([dims [, correction [, keepdim]]]) */
static int ax_lua_varstd(lua_State *L, bool sd) {
    ax_tensor *t = ax_lua_check_tensor(L, 1), *o;
    int dims[AX_MAX_DIMS];
    int n = ax_lua_dims(L, 2, dims);
    int corr = (int)luaL_optinteger(L, 3, 1);
    bool keep = lua_toboolean(L, 4);
    return ax_lua_result(L, sd ? ax_std(&o, t, n, dims, corr, keep) : ax_var(&o, t, n, dims, corr, keep), &o);
}
static int ax_lua_var(lua_State *L) { return ax_lua_varstd(L, false); }
static int ax_lua_std(lua_State *L) { return ax_lua_varstd(L, true); }

/* t:norm([p [, dims [, keepdim]]]) */
static int ax_lua_norm(lua_State *L) {
    ax_tensor *t = ax_lua_check_tensor(L, 1), *o;
    int dims[AX_MAX_DIMS];
    int n = ax_lua_dims(L, 3, dims);
    return ax_lua_result(L, ax_norm(&o, t, luaL_optnumber(L, 2, 2), n, dims, lua_toboolean(L, 4)), &o);
}

/* t:max(dim [, keepdim]) -> values, indices; t:max() -> the largest element.
 * Index tensors hold 0-based positions, like labels and the inputs of
 * gather/index_select/cross_entropy: indices are data, not arguments. */
static int ax_lua_maxmin(lua_State *L, bool is_max) {
    ax_tensor *t = ax_lua_check_tensor(L, 1), *v, *i;
    if (lua_isnoneornil(L, 2)) {
        ax_tensor *flat;
        if (ax_tensor_reshape(&flat, t, 1, (int64_t[]){-1}) != AX_OK) return ax_lua_fail_op(L);
        ax_status st = is_max ? ax_max(&v, NULL, flat, 0, false) : ax_min(&v, NULL, flat, 0, false);
        ax_tensor_free(flat);
        return ax_lua_result(L, st, &v);
    }
    int dim = ax_lua_dim(L, 2);
    bool keep = lua_toboolean(L, 3);
    ax_status st = is_max ? ax_max(&v, &i, t, dim, keep) : ax_min(&v, &i, t, dim, keep);
    if (st != AX_OK) return ax_lua_fail_op(L);
    ax_lua_push_tensor(L, v);
    ax_lua_push_tensor(L, i);
    return 2;
}
static int ax_lua_max(lua_State *L) { return ax_lua_maxmin(L, true); }
static int ax_lua_min(lua_State *L) { return ax_lua_maxmin(L, false); }

static int ax_lua_softmax(lua_State *L) {
    ax_tensor *t = ax_lua_check_tensor(L, 1), *o;
    return ax_lua_result(L, ax_softmax(&o, t, ax_lua_dim(L, 2)), &o);
}

static int ax_lua_log_softmax(lua_State *L) {
    ax_tensor *t = ax_lua_check_tensor(L, 1), *o;
    return ax_lua_result(L, ax_log_softmax(&o, t, ax_lua_dim(L, 2)), &o);
}

/* ax.linear(x, weight [, bias]) */
static int ax_lua_linear(lua_State *L) {
    ax_tensor *x = ax_lua_check_tensor(L, 1), *w = ax_lua_check_tensor(L, 2), *b = ax_lua_opt_tensor(L, 3), *o;
    return ax_lua_result(L, ax_linear(&o, x, w, b), &o);
}

/* ---- safetensors -------------------------------------------------------------- */

/* ax.load(path) -> {name = tensor, ...}, {metadata key = value, ...} */
static int ax_lua_load(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    ax_safetensors *f;
    if (ax_safetensors_open(&f, path) != AX_OK) return ax_lua_fail_op(L);
    size_t n = ax_safetensors_count(f), nm = ax_safetensors_metadata_count(f);
    lua_createtable(L, 0, (int)n);
    for (size_t i = 0; i < n; i++) {
        ax_tensor *t;
        const char *name = ax_safetensors_name(f, i);
        if (ax_safetensors_get(f, name, &t) != AX_OK) {
            ax_safetensors_close(f);
            return ax_lua_fail_op(L);
        }
        ax_lua_push_tensor(L, t);
        lua_setfield(L, -2, name);
    }
    lua_createtable(L, 0, (int)nm);
    for (size_t i = 0; i < nm; i++) {
        const char *k = ax_safetensors_metadata_key(f, i);
        lua_pushstring(L, ax_safetensors_metadata(f, k));
        lua_setfield(L, -2, k);
    }
    ax_safetensors_close(f);
    return 2;
}

/* ax.save(path, {name = tensor, ...} [, {key = string, ...}]) — atomic */
static int ax_lua_save(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3); /* the arrays pushed below start at index 4 */
    size_t n = 0, nm = 0;
    for (lua_pushnil(L); lua_next(L, 2); lua_pop(L, 1)) n++;
    if (!lua_isnoneornil(L, 3))
        for (lua_pushnil(L); lua_next(L, 3); lua_pop(L, 1)) nm++;
    /* arrays owned by Lua userdata, so an error below frees them */
    const char **names = lua_newuserdatauv(L, (n + 1) * sizeof *names, 0);
    const ax_tensor **ts = lua_newuserdatauv(L, (n + 1) * sizeof *ts, 0);
    const char **keys = lua_newuserdatauv(L, (nm + 1) * sizeof *keys, 0);
    const char **vals = lua_newuserdatauv(L, (nm + 1) * sizeof *vals, 0);
    size_t i = 0;
    for (lua_pushnil(L); lua_next(L, 2); lua_pop(L, 1)) {
        if (lua_type(L, -2) != LUA_TSTRING) return luaL_error(L, "ax.save: tensor names must be strings");
        if (!ax_lua_is_tensor(L, -1))
            return luaL_error(L, "ax.save: '%s' is a %s, not a tensor", lua_tostring(L, -2), luaL_typename(L, -1));
        names[i] = lua_tostring(L, -2); /* keys stay alive: they are in the table */
        ts[i++] = ax_lua_check_tensor(L, -1);
    }
    i = 0;
    if (!lua_isnoneornil(L, 3))
        for (lua_pushnil(L); lua_next(L, 3); lua_pop(L, 1)) {
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                return luaL_error(L, "ax.save: metadata keys and values must be strings");
            keys[i] = lua_tostring(L, -2);
            vals[i++] = lua_tostring(L, -1);
        }
    if (ax_safetensors_save(path, n, names, ts, nm, keys, vals) != AX_OK) return ax_lua_fail_op(L);
    return 0;
}

/* ---- metamethods ----------------------------------------------------------------- */

static const luaL_Reg ax_lua_tensor_methods[] = {
    {"shape", ax_lua_t_shape},       {"size", ax_lua_t_size},
    {"numel", ax_lua_t_numel},       {"item", ax_lua_t_item},
    {"totable", ax_lua_t_totable},   {"get", ax_lua_t_get},
    {"view", ax_lua_t_view},         {"reshape", ax_lua_t_reshape},
    {"permute", ax_lua_t_permute},   {"transpose", ax_lua_t_transpose},
    {"narrow", ax_lua_t_narrow},     {"slice", ax_lua_t_slice},
    {"expand", ax_lua_t_expand},     {"squeeze", ax_lua_t_squeeze},
    {"unsqueeze", ax_lua_t_unsqueeze}, {"contiguous", ax_lua_t_contiguous},
    {"to", ax_lua_t_to},             {"detach", ax_lua_t_detach},
    {"clone", ax_lua_t_clone},       {"requires_grad", ax_lua_t_requires_grad},
    {"backward", ax_lua_t_backward}, {"zero_grad", ax_lua_t_zero_grad},
    {"close", ax_lua_t_gc},
    {"neg", ax_lua_neg},             {"exp", ax_lua_exp},
    {"log", ax_lua_tensor_log},             {"sqrt", ax_lua_sqrt},
    {"rsqrt", ax_lua_rsqrt},         {"abs", ax_lua_abs},
    {"clamp", ax_lua_clamp},         {"relu", ax_lua_relu},
    {"leaky_relu", ax_lua_leaky_relu}, {"gelu", ax_lua_gelu},
    {"silu", ax_lua_silu},           {"sigmoid", ax_lua_sigmoid},
    {"tanh", ax_lua_tanh},           {"softplus", ax_lua_softplus},
    {"add", ax_lua_add},             {"sub", ax_lua_sub},
    {"mul", ax_lua_mul},             {"div", ax_lua_div},
    {"pow", ax_lua_pow},             {"maximum", ax_lua_maximum},
    {"minimum", ax_lua_minimum},     {"eq", ax_lua_eq},
    {"ne", ax_lua_ne},               {"lt", ax_lua_lt},
    {"le", ax_lua_le},               {"gt", ax_lua_gt},
    {"ge", ax_lua_ge},               {"matmul", ax_lua_matmul},
    {"sum", ax_lua_sum},             {"mean", ax_lua_mean},
    {"var", ax_lua_var},             {"std", ax_lua_std},
    {"max", ax_lua_max},             {"min", ax_lua_min},
    {"logsumexp", ax_lua_logsumexp}, {"norm", ax_lua_norm},
    {"softmax", ax_lua_softmax},     {"log_softmax", ax_lua_log_softmax},
    {NULL, NULL}};

/* t.grad, t.dtype, t.ndim, t.is_leaf, t.grad_fn, t.device, then methods */
static int ax_lua_t_index(lua_State *L) {
    ax_tensor *t = ax_lua_check_tensor(L, 1);
    const char *k = lua_tostring(L, 2);
    if (k) {
        if (strcmp(k, "grad") == 0) {
            if (!t->grad) return lua_pushnil(L), 1;
            ax_lua_push_tensor(L, ax_tensor_retain(t->grad));
            return 1;
        }
        if (strcmp(k, "dtype") == 0) return lua_pushstring(L, ax_dtype_name(t->dtype)), 1;
        if (strcmp(k, "ndim") == 0) return lua_pushinteger(L, t->ndim), 1;
        if (strcmp(k, "is_leaf") == 0) return lua_pushboolean(L, t->grad_fn == NULL), 1;
        if (strcmp(k, "grad_fn") == 0) return t->grad_fn ? (lua_pushstring(L, t->grad_fn->name), 1) : (lua_pushnil(L), 1);
        if (strcmp(k, "device") == 0) {
            ax_device d = t->storage->device;
            if (d.type == AX_DEVICE_CPU) return lua_pushliteral(L, "cpu"), 1;
            return lua_pushfstring(L, "cuda:%d", (int)d.index), 1;
        }
    }
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "methods");
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
    return 1;
}

static int ax_lua_t_len(lua_State *L) {
    ax_tensor *t = ax_lua_check_tensor(L, 1);
    lua_pushinteger(L, t->ndim ? t->shape[0] : 0);
    return 1;
}

void ax_lua_tensor_open(lua_State *L) {
    luaL_newmetatable(L, AX_LUA_TENSOR);
    static const luaL_Reg meta[] = {
        {"__gc", ax_lua_t_gc},   {"__close", ax_lua_t_gc},    {"__tostring", ax_lua_t_tostring},
        {"__index", ax_lua_t_index}, {"__len", ax_lua_t_len},  {"__add", ax_lua_add},
        {"__sub", ax_lua_sub},   {"__mul", ax_lua_mul},        {"__div", ax_lua_div},
        {"__pow", ax_lua_pow},   {"__unm", ax_lua_neg},        {NULL, NULL}};
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, ax_lua_tensor_methods);
    ax_lua_nn_methods(L);
    lua_setfield(L, -2, "methods");
    lua_pop(L, 1);
}

/* Module functions: constructors, the ops as functions, no_grad. */
void ax_lua_tensor_register(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"tensor", ax_lua_tensor_new}, {"zeros", ax_lua_zeros},       {"ones", ax_lua_ones},
        {"full", ax_lua_full},         {"arange", ax_lua_arange},     {"rand", ax_lua_rand},
        {"randn", ax_lua_randn},       {"no_grad", ax_lua_no_grad},   {"where", ax_lua_where},
        {"linear", ax_lua_linear},     {"load", ax_lua_load},         {"save", ax_lua_save},
        {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
    /* every method is also a function: ax.relu(x), ax.matmul(a, b), ... */
    luaL_setfuncs(L, ax_lua_tensor_methods, 0);
    ax_lua_nn_register(L);
}
