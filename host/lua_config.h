/* host/lua_config.h — reading the configuration tables of ax.pretrain{},
 * ax.finetune{}, ax.predict{} ... (lua_train.c, lua_finetune.c): typed
 * fields with ranges, unknown-key checks with a "did you mean", plugin
 * instances given by name or object, and the keys both training runners
 * read the same way (ax_lua_runner_read).
 *
 *     ax_lua_cfg_check_keys(L, 1, "predict", valid_keys);      // valid_keys: NULL-terminated
 *     double lr = ax_lua_cfg_num(L, 1, "predict", "lr", 1e-2, 0, 1e6);
 *     // errors raise a Lua error: "predict: 'lr' = -1 is out of range [0, 1e+06]"
 *
 *     ax_lua_runner r = {&o.train, &o.input, 1e-2, 3e-4};
 *     ax_lua_runner_read(L, cfg, ax, "pretrain", &r);          // out, steps, optim, augs, patch, device ...
 *
 * `what` names the caller in messages ("pretrain", "finetune: data").
 * Every reader raises a Lua error (it does not return) on a bad value.
 */
#ifndef AXON_HOST_LUA_CONFIG_H
#define AXON_HOST_LUA_CONFIG_H

#include <jansson.h>
#include <lua.h>
#include <stdbool.h>
#include <stdint.h>

#include "registry.h"
#include "train_core.h"
#include "train_setup.h"

/* An error naming every key of the table at `cfg` not in `valid`
 * (NULL-terminated), with the nearest valid one and the full list. */
void ax_lua_cfg_check_keys(lua_State *L, int cfg, const char *what, const char *const *valid);
/* Push "a, b, c" for the NULL-terminated keys (for "valid: ..." messages). */
void ax_lua_push_key_list(lua_State *L, const char *const *keys);
/* Pushes cfg[key] and returns true; false (nothing pushed) when nil. */
bool ax_lua_cfg_get(lua_State *L, int cfg, const char *key);
/* cfg[key] or def; numbers in [lo, hi]; a string stays valid while cfg holds it. */
double ax_lua_cfg_num(lua_State *L, int cfg, const char *what, const char *key, double def, double lo, double hi);
int64_t ax_lua_cfg_int(lua_State *L, int cfg, const char *what, const char *key, int64_t def, int64_t lo, int64_t hi);
bool ax_lua_cfg_bool(lua_State *L, int cfg, const char *what, const char *key, bool def);
const char *ax_lua_cfg_str(lua_State *L, int cfg, const char *what, const char *key, const char *def);
/* out: [n] from a list of n numbers, or one number for all n; untouched when nil. */
void ax_lua_cfg_nums(lua_State *L, int cfg, const char *what, const char *key, int n, double *out);
/* The plugin instance at stack index `value`: an ax.<kind>(...) object, or
 * a name made into one with ax.<kind>(name, cfg[params_key]) (ax: the
 * module table's index). Leaves the object on the stack, which keeps it
 * alive; returns it (borrowed). */
const ax_instance *ax_lua_cfg_push_instance(lua_State *L, const char *what, int ax, int value, const char *kindname,
                                            const char *params_key, int cfg);

/* Push v, nil for NaN. */
void ax_lua_push_num(lua_State *L, double v);
/* Push a JSON value: objects as tables, arrays as lists, null as nil. */
void ax_lua_push_json(lua_State *L, json_t *v);

/* What both training runners read alike: ax_lua_runner_read sets train's
 * fields from the keys out, steps, seed, optim, lr, momentum, nesterov,
 * weight_decay, betas, eps, clip, save_every, keep_every, val_every,
 * log_every, max_nonfinite, resume, progress, device, amp, and input's
 * from augs, patch, batch, threads, oversample_fg, spacing (not data). */
typedef struct ax_lua_runner {
    ax_train_opts *train;       /* borrowed: the runner's loop options, defaults in */
    ax_train_input *input;      /* borrowed: its data options, defaults in */
    double sgd_lr, adamw_lr;    /* default learning rates (AdamW also gets weight decay 0.05) */
} ax_lua_runner;

/* The start of ax.<what>{cfg}: argument 1 a table with only `keys`
 * (NULL-terminated), the stack cut to it and grown for the reading; pushes
 * the module table (require "axon") and returns its index. */
int ax_lua_runner_begin(lua_State *L, const char *what, const char *const *keys);
/* cfg.data into in: a cache folder (in->data), an ax.dataset{}
 * (in->dataset_object) or a dataset table that read_table reads into *dso
 * (in->dataset = dso). Leaves the value on the stack, which keeps it alive. */
void ax_lua_runner_data(lua_State *L, int cfg, const char *what, ax_train_input *in, ax_dataset_opts *dso,
                        void (*read_table)(lua_State *L, int t, ax_dataset_opts *dso));
/* cfg, ax: stack indices of the configuration and the module table. */
void ax_lua_runner_read(lua_State *L, int cfg, int ax, const char *what, ax_lua_runner *r);
/* Push {checkpoint, out, step, start_step, skipped, metrics = {step, loss,
 * lr, grad_norm, val_loss, first_val_loss}}: a run's result table. */
void ax_lua_push_train_result(lua_State *L, const ax_train_result *r, const char *out);

#endif
