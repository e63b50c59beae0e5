/* The generic training loop (see train_core.h). */
#include "train_core.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "axon/amp.h"
#include "axon/autograd.h"
#include "axon/cache.h"
#include "axon/log.h"
#include "axon/safetensors.h"
#include "train_checkpoint.h"

#define AX_TRAIN_STATE_FORMAT "axon.train/1"

ax_status ax_train_to_net_device(const ax_module *net, const ax_tensor *x, ax_tensor **out) {
    ax_device d = ax_module_device(net), at = x->storage->device;
    if (d.type == at.type && d.index == at.index) {
        *out = ax_tensor_retain((ax_tensor *)x);
        return AX_OK;
    }
    return ax_tensor_to_device(out, x, d);
}

ax_status ax_train_scalar(const ax_tensor *t, double *v) {
    *v = NAN;
    if (ax_tensor_numel(t) < 1) return AX_ERROR(AX_ERR_INVALID, "expected a scalar, got an empty tensor");
    if (t->storage->device.type == AX_DEVICE_CPU) {
        *v = ax_tensor_get(t, 0);
        return AX_OK;
    }
    ax_tensor *flat = NULL, *one = NULL, *host = NULL;
    ax_no_grad_begin();
    ax_status st = ax_tensor_reshape(&flat, t, 1, (int64_t[]){-1});
    if (st == AX_OK) st = ax_tensor_narrow(&one, flat, 0, 0, 1);
    if (st == AX_OK) st = ax_tensor_to_device(&host, one, AX_CPU);
    ax_no_grad_end();
    if (st == AX_OK) *v = ax_tensor_get(host, 0);
    ax_tensor_free(flat);
    ax_tensor_free(one);
    ax_tensor_free(host);
    return st;
}

ax_train_opts ax_train_opts_default(void) {
    ax_train_opts o = {0};
    o.steps = 1000;
    o.seed = 1234;
    o.optim.kind = AX_OPTIM_SGD;
    o.optim.lr = 1e-2;
    o.optim.momentum = 0.99;
    o.optim.nesterov = true;
    o.optim.weight_decay = 3e-5;
    o.optim.beta1 = 0.9;
    o.optim.beta2 = 0.98;
    o.optim.eps = 1e-8;
    o.schedule.kind = AX_LR_POLY;
    o.schedule.power = 0.9;
    o.clip = 12.0;
    o.save_every = 50;
    o.max_nonfinite = 5;
    o.progress = -1;
    return o;
}

ax_status ax_train_optim_parse(const char *name, ax_optim_kind *kind) {
    if (name && strcmp(name, "sgd") == 0) return *kind = AX_OPTIM_SGD, AX_OK;
    if (name && strcmp(name, "adamw") == 0) return *kind = AX_OPTIM_ADAMW, AX_OK;
    return AX_ERROR(AX_ERR_INVALID, "unknown optimizer '%s'; valid: sgd, adamw", name ? name : "(null)");
}

/* ---- files ------------------------------------------------------------------ */

ax_status ax_train_mkdirs(const char *path) {
    char buf[AX_TRAIN_PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return AX_ERROR(AX_ERR_INVALID, "path too long: %s", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return AX_ERROR(AX_ERR_IO, "%s: cannot create folder: %s", buf, strerror(errno));
            *p = c;
            if (c == '\0') break;
        }
    }
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) return AX_ERROR(AX_ERR_IO, "%s: not a folder", path);
    return AX_OK;
}

static bool ax_train_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* ---- signals -------------------------------------------------------------------- */

static volatile sig_atomic_t ax_train_stop_signal = 0;

static void ax_train_on_signal(int sig) { ax_train_stop_signal = sig; }

typedef struct ax_train_signals {
    struct sigaction old_int, old_term;
} ax_train_signals;

static void ax_train_signals_install(ax_train_signals *s) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = ax_train_on_signal;
    sigemptyset(&sa.sa_mask);
    ax_train_stop_signal = 0;
    sigaction(SIGINT, &sa, &s->old_int);
    sigaction(SIGTERM, &sa, &s->old_term);
}

static void ax_train_signals_restore(const ax_train_signals *s) {
    sigaction(SIGINT, &s->old_int, NULL);
    sigaction(SIGTERM, &s->old_term, NULL);
}

/* ---- progress --------------------------------------------------------------------- */

static double ax_train_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void ax_train_fmt_duration(char *buf, size_t n, double s) {
    if (!isfinite(s) || s < 0) {
        snprintf(buf, n, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

typedef struct ax_train_progress {
    int mode; /* 0 quiet, 1 lines, 2 bar */
    double t0;
    int64_t s0, total;
    bool bar_open;
} ax_train_progress;

static void ax_train_progress_show(ax_train_progress *p, int64_t done, double loss, double lr, double val,
                                   bool line_due) {
    if (p->mode == 0) return;
    double el = ax_train_now() - p->t0;
    double rate = el > 0 ? (double)(done - p->s0) / el : 0;
    char eta[32], vbuf[48] = "";
    ax_train_fmt_duration(eta, sizeof eta, rate > 0 ? (double)(p->total - done) / rate : NAN);
    if (isfinite(val)) snprintf(vbuf, sizeof vbuf, " val %.4g", val);
    if (p->mode == 2) {
        int width = 24, fill = p->total > 0 ? (int)(width * done / p->total) : width;
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\r[%s] %" PRId64 "/%" PRId64 " loss %.4g%s lr %.3g %.2f steps/s ETA %s\033[K", bar, done,
                p->total, loss, vbuf, lr, rate, eta);
        p->bar_open = true;
    } else if (line_due) {
        fprintf(stderr, "step %" PRId64 "/%" PRId64 " loss %.4g%s lr %.3g %.2f steps/s ETA %s\n", done, p->total, loss,
                vbuf, lr, rate, eta);
    }
    fflush(stderr);
}

static void ax_train_progress_end(ax_train_progress *p) {
    if (p->bar_open) fputc('\n', stderr);
    p->bar_open = false;
}

/* ---- metrics.jsonl ------------------------------------------------------------------ */

static void ax_json_set_num(json_t *o, const char *k, double v) {
    json_object_set_new(o, k, isfinite(v) ? json_real(v) : json_null());
}

/* The runner's extra validation numbers (ax_train_hooks.val_metric_*). */
static void ax_train_val_metrics(json_t *m, const ax_train_hooks *h) {
    for (size_t i = 0; i < h->n_val_metrics && h->val_metric_names && h->val_metric_values; i++)
        ax_json_set_num(m, h->val_metric_names[i], h->val_metric_values[i]);
}

/* Keep only the lines of an earlier run up to `step` (a resumed run
 * rewrites what came after its checkpoint). */
static ax_status ax_train_metrics_truncate(const char *path, int64_t step) {
    FILE *f = fopen(path, "r");
    if (!f) return AX_OK;
    size_t cap = 1 << 16, len = 0;
    char *keep = malloc(cap), *line = NULL;
    size_t lcap = 0;
    ssize_t n;
    if (!keep) {
        fclose(f);
        return AX_ERROR(AX_ERR_NOMEM, "out of memory");
    }
    while ((n = getline(&line, &lcap, f)) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        json_t *s = j ? json_object_get(j, "step") : NULL;
        bool ok = s && json_is_integer(s) && json_integer_value(s) <= step;
        json_decref(j);
        if (!ok) continue;
        if (len + (size_t)n + 1 > cap) {
            while (len + (size_t)n + 1 > cap) cap *= 2;
            char *k2 = realloc(keep, cap);
            if (!k2) {
                free(keep);
                free(line);
                fclose(f);
                return AX_ERROR(AX_ERR_NOMEM, "out of memory");
            }
            keep = k2;
        }
        memcpy(keep + len, line, (size_t)n);
        len += (size_t)n;
    }
    free(line);
    fclose(f);
    ax_status st = ax_cache_write_file(path, keep, len);
    free(keep);
    return st;
}

/* ---- checkpoints ----------------------------------------------------------------------- */

typedef struct ax_train_state {
    int64_t step, skipped, consecutive;
    uint64_t seed;
    double elapsed;
} ax_train_state;

/* Paths that do not fit come out empty, and fail to open, naming nothing
 * wrong; run folders are checked to be far shorter than that. */
static void ax_train_state_paths(const char *dir, int64_t step, char *optim, char *json, size_t n) {
    if ((size_t)snprintf(optim, n, "%s/state_%09" PRId64 ".optim.safetensors", dir, step) >= n) optim[0] = '\0';
    if ((size_t)snprintf(json, n, "%s/state_%09" PRId64 ".json", dir, step) >= n) json[0] = '\0';
}

static void ax_train_join(char *out, size_t n, const char *dir, const char *name) {
    if ((size_t)snprintf(out, n, "%s/%s", dir, name) >= n) out[0] = '\0';
}

/* Remove state files other than the one for `keep`. */
static void ax_train_prune_states(const char *dir, int64_t keep) {
    DIR *d = opendir(dir);
    if (!d) return;
    char mine[64];
    snprintf(mine, sizeof mine, "state_%09" PRId64 ".", keep);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "state_", 6) != 0 || strncmp(e->d_name, mine, strlen(mine)) == 0) continue;
        char p[AX_TRAIN_PATH_MAX];
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) < (int)sizeof p) unlink(p);
    }
    closedir(d);
}

static ax_status ax_train_save(ax_module *net, const ax_optim *opt, const ax_train_opts *o, const char *dir,
                               const ax_train_state *s, ax_train_result *res) {
    char optim_path[AX_TRAIN_PATH_MAX], json_path[AX_TRAIN_PATH_MAX], w_path[AX_TRAIN_PATH_MAX];
    ax_train_state_paths(dir, s->step, optim_path, json_path, sizeof optim_path);
    /* 1. optimizer buffers, 2. trainer state, 3. the weights naming them */
    ax_status st = ax_optim_state_save(opt, optim_path);
    if (st != AX_OK) return st;
    json_t *j = json_object();
    json_object_set_new(j, "format", json_string(AX_TRAIN_STATE_FORMAT));
    json_object_set_new(j, "step", json_integer(s->step));
    json_object_set_new(j, "seed", json_integer((json_int_t)s->seed));
    /* The loader's batch k and the method's RNG stream are functions of
     * (seed, k): the position is the step itself. */
    json_object_set_new(j, "loader_step", json_integer(s->step));
    json_object_set_new(j, "rng", json_pack("{s:I,s:I,s:I}", "seed", (json_int_t)s->seed, "stream",
                                            (json_int_t)s->step, "counter", (json_int_t)0));
    json_object_set_new(j, "skipped", json_integer(s->skipped));
    json_object_set_new(j, "consecutive_nonfinite", json_integer(s->consecutive));
    json_object_set_new(j, "elapsed", json_real(s->elapsed));
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(j);
    if (!text) return AX_ERROR(AX_ERR_NOMEM, "out of memory");
    st = ax_cache_write_file(json_path, text, strlen(text));
    free(text);
    if (st != AX_OK) return st;

    size_t nm = o->n_meta + 2;
    const char **keys = malloc(nm * sizeof *keys), **vals = malloc(nm * sizeof *vals);
    char step_txt[32], state_txt[64];
    if (!keys || !vals) {
        free(keys);
        free(vals);
        return AX_ERROR(AX_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < o->n_meta; i++) keys[i] = o->meta_keys[i], vals[i] = o->meta_values[i];
    snprintf(step_txt, sizeof step_txt, "%" PRId64, s->step);
    snprintf(state_txt, sizeof state_txt, "state_%09" PRId64, s->step);
    keys[o->n_meta] = "step", vals[o->n_meta] = step_txt;
    keys[o->n_meta + 1] = "state", vals[o->n_meta + 1] = state_txt;
    ax_train_join(w_path, sizeof w_path, dir, "latest.safetensors");
    st = ax_module_save_safetensors(net, w_path, nm, keys, vals);
    if (st == AX_OK && o->keep_every > 0 && s->step % o->keep_every == 0) {
        char k_path[AX_TRAIN_PATH_MAX];
        snprintf(k_path, sizeof k_path, "%s/step_%09" PRId64 ".safetensors", dir, s->step);
        st = ax_module_save_safetensors(net, k_path, nm, keys, vals);
    }
    free(keys);
    free(vals);
    if (st != AX_OK) return st;
    ax_train_prune_states(dir, s->step);
    snprintf(res->checkpoint, sizeof res->checkpoint, "%s", w_path);
    return AX_OK;
}

static ax_status ax_train_json_int(json_t *j, const char *path, const char *key, int64_t *out) {
    json_t *v = json_object_get(j, key);
    if (!json_is_integer(v)) return AX_ERROR(AX_ERR_FORMAT, "%s: '%s' missing or not an integer", path, key);
    *out = json_integer_value(v);
    return AX_OK;
}

static ax_status ax_train_load(ax_module *net, ax_optim *opt, const ax_train_opts *o, const char *dir,
                               ax_train_state *s, ax_train_result *res) {
    char w_path[AX_TRAIN_PATH_MAX], optim_path[AX_TRAIN_PATH_MAX], json_path[AX_TRAIN_PATH_MAX];
    ax_train_join(w_path, sizeof w_path, dir, "latest.safetensors");
    ax_safetensors *f;
    ax_status st = ax_safetensors_open(&f, w_path);
    if (st != AX_OK) return st;
    const char *step_txt = ax_safetensors_metadata(f, "step");
    char *end = NULL;
    long long step = step_txt ? strtoll(step_txt, &end, 10) : -1;
    bool bad = !step_txt || *end || step < 0;
    /* the weights must come from the same kind of run */
    for (size_t i = 0; !bad && i < o->n_meta; i++) {
        if (strcmp(o->meta_keys[i], "arch") != 0 && strcmp(o->meta_keys[i], "method") != 0) continue;
        const char *v = ax_safetensors_metadata(f, o->meta_keys[i]);
        if (!v || strcmp(v, o->meta_values[i]) != 0) {
            st = AX_ERROR(AX_ERR_INVALID, "%s: cannot resume: checkpoint has %s '%s', this run uses '%s'", w_path,
                          o->meta_keys[i], v ? v : "(none)", o->meta_values[i]);
            ax_safetensors_close(f);
            return st;
        }
    }
    ax_safetensors_close(f);
    if (bad) return AX_ERROR(AX_ERR_FORMAT, "%s: metadata 'step' missing or invalid", w_path);
    ax_train_state_paths(dir, step, optim_path, json_path, sizeof optim_path);

    json_error_t je;
    json_t *j = json_load_file(json_path, 0, &je);
    if (!j)
        return AX_ERROR(ax_train_exists(json_path) ? AX_ERR_FORMAT : AX_ERR_NOT_FOUND, "%s: %s", json_path, je.text);
    int64_t js = 0, seed = 0;
    const char *fmt = json_string_value(json_object_get(j, "format"));
    if (!fmt || strcmp(fmt, AX_TRAIN_STATE_FORMAT) != 0)
        st = AX_ERROR(AX_ERR_FORMAT, "%s: format is not %s", json_path, AX_TRAIN_STATE_FORMAT);
    if (st == AX_OK) st = ax_train_json_int(j, json_path, "step", &js);
    if (st == AX_OK) st = ax_train_json_int(j, json_path, "seed", &seed);
    if (st == AX_OK) st = ax_train_json_int(j, json_path, "skipped", &s->skipped);
    if (st == AX_OK) st = ax_train_json_int(j, json_path, "consecutive_nonfinite", &s->consecutive);
    if (st == AX_OK && js != step)
        st = AX_ERROR(AX_ERR_FORMAT, "%s: step %lld does not match the weights' step %lld", json_path,
                      (long long)js, step);
    if (st == AX_OK && (uint64_t)seed != o->seed)
        st = AX_ERROR(AX_ERR_INVALID, "%s: cannot resume with seed %" PRIu64 ": the run used seed %lld", json_path,
                      o->seed, (long long)seed);
    s->elapsed = json_number_value(json_object_get(j, "elapsed"));
    json_decref(j);
    if (st != AX_OK) return st;
    st = ax_checkpoint_load_weights(net, w_path);
    if (st == AX_OK) st = ax_optim_state_load(opt, optim_path);
    if (st != AX_OK) return st;
    s->step = step;
    s->seed = o->seed;
    snprintf(res->checkpoint, sizeof res->checkpoint, "%s", w_path);
    return AX_OK;
}

/* ---- the loop --------------------------------------------------------------------------- */

static ax_status ax_train_make_optim(ax_module *net, const ax_train_opts *o, ax_optim **opt) {
    ax_named_tensors p = {0};
    ax_status st = ax_module_parameters(net, &p);
    if (st != AX_OK) return st;
    const ax_train_optim *c = &o->optim;
    if (c->kind == AX_OPTIM_ADAMW)
        st = ax_adamw_new(opt, p.n, p.tensors, (const char *const *)p.names, c->lr, c->beta1, c->beta2, c->eps,
                          c->weight_decay);
    else
        st = ax_sgd_new(opt, p.n, p.tensors, (const char *const *)p.names, c->lr, c->momentum, 0.0, c->weight_decay,
                        c->nesterov);
    ax_named_tensors_clear(&p);
    return st;
}

static ax_status ax_train_check(const ax_train_opts *o, const ax_train_hooks *h, ax_lr_schedule *sched) {
    if (!o->out || !*o->out) return AX_ERROR(AX_ERR_INVALID, "train: 'out' (the run folder) is required");
    if (o->steps < 1) return AX_ERROR(AX_ERR_INVALID, "train: steps must be >= 1, got %lld", (long long)o->steps);
    if (!h || !h->train_loss) return AX_ERROR(AX_ERR_INVALID, "train: no train_loss hook");
    if (o->save_every < 1)
        return AX_ERROR(AX_ERR_INVALID, "train: save_every must be >= 1, got %lld", (long long)o->save_every);
    if (o->keep_every < 0 || o->val_every < 0 || o->log_every < 0)
        return AX_ERROR(AX_ERR_INVALID, "train: keep_every, val_every and log_every must be >= 0");
    if (o->max_nonfinite < 1)
        return AX_ERROR(AX_ERR_INVALID, "train: max_nonfinite must be >= 1, got %d", o->max_nonfinite);
    if (!(o->optim.lr >= 0) || !isfinite(o->optim.lr))
        return AX_ERROR(AX_ERR_INVALID, "train: lr must be a finite number >= 0, got %g", o->optim.lr);
    *sched = o->schedule;
    if (sched->base_lr == 0) sched->base_lr = o->optim.lr;
    if (sched->total_steps == 0) sched->total_steps = o->steps;
    if (sched->kind != AX_LR_CONSTANT && sched->total_steps <= sched->warmup_steps)
        return AX_ERROR(AX_ERR_INVALID, "train: warm-up (%lld steps) must be shorter than the run (%lld steps)",
                        (long long)sched->warmup_steps, (long long)sched->total_steps);
    return ax_lr_schedule_check(sched);
}

static ax_status ax_train_validate(ax_module *net, const ax_train_hooks *h, double *val) {
    ax_module_eval(net);
    ax_no_grad_begin();
    ax_status st = h->val_loss(h->ctx, val);
    ax_no_grad_end();
    ax_module_train(net, true);
    return st;
}

ax_status ax_train_run(ax_module *net, const ax_train_opts *o, const ax_train_hooks *h, ax_train_result *res) {
    memset(res, 0, sizeof *res);
    res->loss = res->lr = res->grad_norm = res->val_loss = res->first_val_loss = NAN;
    ax_lr_schedule sched;
    ax_status st = ax_train_check(o, h, &sched);
    if (st != AX_OK) return st;
    char dir[AX_TRAIN_PATH_MAX], path[AX_TRAIN_PATH_MAX];
    if (strlen(o->out) > AX_TRAIN_PATH_MAX / 2) return AX_ERROR(AX_ERR_INVALID, "path too long: %s", o->out);
    ax_train_join(dir, sizeof dir, o->out, "checkpoints");
    if ((st = ax_train_mkdirs(dir)) != AX_OK) return st;
    ax_train_join(path, sizeof path, dir, "latest.safetensors");
    bool have = ax_train_exists(path);
    if (have && !o->resume)
        return AX_ERROR(AX_ERR_STATE, "%s: the run folder already holds a checkpoint; resume it (resume = true / "
                        "--resume) or choose another folder", o->out);

    bool amp_bf16 = o->amp && strcmp(o->amp, "bf16") == 0;
    if (o->amp && !amp_bf16 && strcmp(o->amp, "off") != 0)
        return AX_ERROR(AX_ERR_INVALID, "amp '%s' is not one of bf16, off", o->amp);
    ax_device dev, home = ax_module_device(net);
    dev = home;
    if (o->device && (st = ax_device_parse(o->device, &dev)) != AX_OK) return ax_error_prefix("device");
    bool moved = dev.type != home.type || dev.index != home.index;
    if (moved && (st = ax_module_to_device(net, dev)) != AX_OK) {
        ax_error_prefix("device %s", o->device);
        ax_module_to_device(net, home);
        return st;
    }
    ax_optim *opt = NULL;
    if ((st = ax_train_make_optim(net, o, &opt)) != AX_OK) goto out;
    ax_train_state s = {.seed = o->seed};
    if (have && (st = ax_train_load(net, opt, o, dir, &s, res)) != AX_OK) {
        ax_error_prefix("resume");
        goto out;
    }
    res->start_step = res->step = s.step;
    res->skipped = s.skipped;
    if (o->config_json) {
        snprintf(path, sizeof path, "%s/config.json", o->out);
        if ((st = ax_cache_write_file(path, o->config_json, strlen(o->config_json))) != AX_OK) goto out;
    }
    char mpath[AX_TRAIN_PATH_MAX];
    snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", o->out);
    if (have) {
        if ((st = ax_train_metrics_truncate(mpath, s.step)) != AX_OK) goto out;
    } else {
        unlink(mpath); /* a fresh run starts a fresh log */
    }
    FILE *mf = fopen(mpath, "a");
    if (!mf) {
        st = AX_ERROR(AX_ERR_IO, "%s: cannot open: %s", mpath, strerror(errno));
        goto out;
    }
    if (have) AX_LOG_INFO("resuming %s at step %lld", o->out, (long long)s.step);

    ax_train_progress prog = {.mode = o->progress < 0 ? (isatty(STDERR_FILENO) ? 2 : 1) : o->progress,
                              .t0 = ax_train_now(),
                              .s0 = s.step,
                              .total = o->steps};
    int64_t log_every = o->log_every > 0 ? o->log_every : (o->steps + 19) / 20;
    size_t np = ax_optim_count(opt);
    ax_tensor **params = malloc((np ? np : 1) * sizeof *params);
    if (!params) {
        fclose(mf);
        st = AX_ERROR(AX_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < np; i++) params[i] = ax_optim_param(opt, i);
    double t_start = ax_train_now() - s.elapsed;
    ax_train_signals sigs;
    ax_train_signals_install(&sigs);
    ax_module_train(net, true);

    if (s.step == 0 && h->val_loss) {
        /* the untrained network's validation loss: the curve's first point */
        double val = NAN;
        if ((st = ax_train_validate(net, h, &val)) != AX_OK) {
            ax_error_prefix("validation before the first step");
            goto loop_end;
        }
        res->val_loss = res->first_val_loss = val;
        json_t *m = json_pack("{s:i,s:o}", "step", 0, "val_loss", isfinite(val) ? json_real(val) : json_null());
        ax_train_val_metrics(m, h);
        json_object_set_new(m, "time", json_real(ax_train_now() - t_start));
        char *line = json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(m);
        if (line) fprintf(mf, "%s\n", line), fflush(mf), free(line);
    }
    for (int64_t step = s.step; step < o->steps; step++) {
        if (ax_train_stop_signal) {
            ax_train_progress_end(&prog);
            s.step = step;
            s.elapsed = ax_train_now() - t_start;
            st = ax_train_save(net, opt, o, dir, &s, res);
            if (st == AX_OK) {
                res->interrupted = true;
                st = AX_ERROR(AX_ERR_INTERRUPTED, "interrupted by signal %d at step %lld; checkpoint saved in %s",
                              (int)ax_train_stop_signal, (long long)step, res->checkpoint);
            }
            break;
        }
        double lr = h->lr_at ? h->lr_at(h->ctx, step) : ax_lr_schedule_at(&sched, step);
        ax_optim_set_lr(opt, lr);
        ax_module_set_rng(net, o->seed, (uint64_t)step);
        ax_optim_zero_grad(opt);
        ax_tensor *loss = NULL;
        if (amp_bf16) ax_autocast_begin(AX_DTYPE_BF16);
        st = h->train_loss(h->ctx, step, &loss);
        if (amp_bf16) ax_autocast_end();
        if (st != AX_OK) {
            ax_error_prefix("step %lld", (long long)step);
            break;
        }
        double lv = NAN, norm = NAN;
        if ((st = ax_train_scalar(loss, &lv)) != AX_OK) { /* the step's one wait for a GPU, besides the norm */
            ax_tensor_free(loss);
            ax_error_prefix("step %lld: reading the loss", (long long)step);
            break;
        }
        bool finite = isfinite(lv);
        if (finite) {
            st = ax_backward(loss, NULL);
            if (st == AX_OK) st = ax_clip_grad_norm(&norm, np, params, o->clip > 0 ? o->clip : INFINITY, 2.0);
            finite = isfinite(norm);
            if (st == AX_OK && finite) st = ax_optim_step(opt);
        }
        ax_tensor_free(loss);
        ax_optim_zero_grad(opt);
        if (st != AX_OK) {
            ax_error_prefix("step %lld", (long long)step);
            break;
        }
        int64_t done = step + 1;
        if (!finite) {
            s.skipped++;
            s.consecutive++;
            res->skipped = s.skipped;
            AX_LOG_WARN("step %lld: %s is %s; step skipped (%lld in a row, %lld in all)", (long long)step,
                        isfinite(lv) ? "gradient norm" : "loss", isnan(isfinite(lv) ? norm : lv) ? "NaN" : "Inf",
                        (long long)s.consecutive, (long long)s.skipped);
            if (s.consecutive >= o->max_nonfinite) {
                ax_train_progress_end(&prog);
                st = AX_ERROR(AX_ERR_INVALID,
                              "stopping: %d consecutive steps with a non-finite loss or gradient (last at step %lld); "
                              "the last good checkpoint is %s",
                              o->max_nonfinite, (long long)step, res->checkpoint[0] ? res->checkpoint : "(none)");
                break;
            }
        } else {
            s.consecutive = 0;
            res->loss = lv;
            res->grad_norm = norm;
        }
        res->lr = lr;
        res->step = done;
        double val = NAN;
        bool val_due = h->val_loss && ((o->val_every > 0 && done % o->val_every == 0) || done == o->steps);
        if (val_due) {
            if ((st = ax_train_validate(net, h, &val)) != AX_OK) {
                ax_error_prefix("validation after step %lld", (long long)done);
                break;
            }
            res->val_loss = val;
        }
        bool line_due = done % log_every == 0 || done == o->steps || val_due || !finite;
        if (line_due) {
            json_t *m = json_object();
            json_object_set_new(m, "step", json_integer(done));
            ax_json_set_num(m, "loss", lv);
            ax_json_set_num(m, "lr", lr);
            ax_json_set_num(m, "grad_norm", norm);
            if (val_due) ax_json_set_num(m, "val_loss", val);
            if (val_due) ax_train_val_metrics(m, h);
            if (!finite) json_object_set_new(m, "skipped", json_integer(s.skipped));
            json_object_set_new(m, "time", json_real(ax_train_now() - t_start));
            char *line = json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER);
            json_decref(m);
            if (line) {
                fprintf(mf, "%s\n", line);
                fflush(mf);
                free(line);
            }
        }
        ax_train_progress_show(&prog, done, finite ? lv : res->loss, lr, res->val_loss, line_due);
        /* not inside a run of skipped steps: the last checkpoint stays the
         * last good one */
        if ((done % o->save_every == 0 || done == o->steps) && s.consecutive == 0) {
            s.step = done;
            s.elapsed = ax_train_now() - t_start;
            if ((st = ax_train_save(net, opt, o, dir, &s, res)) != AX_OK) break;
        }
    }
loop_end:
    ax_train_progress_end(&prog);
    ax_train_signals_restore(&sigs);
    free(params);
    fclose(mf);
out:
    ax_optim_free(opt);
    if (moved) { /* the caller gets its net back where it was; a run error is the one reported */
        char first[1024];
        snprintf(first, sizeof first, "%s", ax_error_message());
        ax_status mv = ax_module_to_device(net, home);
        if (st == AX_OK) st = mv;
        else AX_ERROR(st, "%s", first);
    }
    return st;
}
