/* Reductions (sum, max, min with indices) and softmax, forward and backward.
 *
 * Determinism: the arithmetic of every output is fixed by the operands'
 * shapes and strides, never by the thread count. A sum walks its reduced elements in C order in chunks of
 * AX_REDUCE_CHUNK, sums each chunk in double and adds the chunk sums in
 * chunk order; max/min are exact. How the work is spread over threads
 * (whole outputs, chunks of one output, or blocks of neighbouring outputs
 * walked together) only changes who computes what, never the result, so
 * results are bit-identical for any thread count.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "cpu_iter.h"
#include "cpu_kernels.h"
#include "tensor_internal.h"

/* Reduced elements per chunk: fixed, never derived from the thread count. */
#define AX_REDUCE_CHUNK 32768
/* Neighbouring outputs reduced together when they are contiguous in x and
 * their reduced elements are not (e.g. max over channels of NCDHW). */
#define AX_REDUCE_COLS 64

/* ---- the reduced sub-space ------------------------------------------------------ */

/* x's reduced dims, size-1 dims dropped and neighbours merged where the
 * strides allow; merging keeps the C-order linear index (what idx holds). */
typedef struct ax_reduce_space {
    int n; /* >= 1 */
    int64_t shape[AX_MAX_DIMS], stride[AX_MAX_DIMS];
    int64_t size; /* elements reduced into each output */
} ax_reduce_space;

static void ax_reduce_space_init(ax_reduce_space *rs, const ax_tensor *x, uint32_t dims) {
    rs->n = 0;
    rs->size = 1;
    for (int d = 0; d < x->ndim; d++) {
        if (!(dims >> d & 1)) continue;
        rs->size *= x->shape[d];
        if (x->shape[d] == 1) continue;
        if (rs->n > 0 && rs->stride[rs->n - 1] == x->stride[d] * x->shape[d]) {
            rs->shape[rs->n - 1] *= x->shape[d];
            rs->stride[rs->n - 1] = x->stride[d];
        } else {
            rs->shape[rs->n] = x->shape[d];
            rs->stride[rs->n] = x->stride[d];
            rs->n++;
        }
    }
    if (rs->n == 0) {
        rs->n = 1;
        rs->shape[0] = 1;
        rs->stride[0] = 0;
    }
}

/* Offset in x of the start of run q (a run: one pass of the innermost dim). */
static int64_t ax_reduce_run_offset(const ax_reduce_space *rs, int64_t q) {
    int64_t off = 0;
    for (int d = rs->n - 2; d >= 0; d--) {
        off += (q % rs->shape[d]) * rs->stride[d];
        q /= rs->shape[d];
    }
    return off;
}

static int64_t ax_min64(int64_t a, int64_t b) { return a < b ? a : b; }

static int64_t ax_reduce_chunks(int64_t size) { return (size + AX_REDUCE_CHUNK - 1) / AX_REDUCE_CHUNK; }

/* ---- sums ----------------------------------------------------------------------- */

/* Eight interleaved double partial sums: vectorisable, and more accurate
 * than one running sum. */
static double ax_sum_contig(const float *q, int64_t m) {
    double lane[8] = {0};
    int64_t k = 0;
    for (; k + 8 <= m; k += 8)
        for (int t = 0; t < 8; t++) lane[t] += q[k + t];
    double acc = 0;
    for (int t = 0; t < 8; t++) acc += lane[t];
    for (; k < m; k++) acc += q[k];
    return acc;
}

/* Sum of reduced elements [r0, r1) of the output whose elements start at x. */
static double ax_sum_span(const float *x, const ax_reduce_space *rs, int64_t r0, int64_t r1) {
    int64_t len = rs->shape[rs->n - 1], s = rs->stride[rs->n - 1];
    double acc = 0;
    for (int64_t r = r0; r < r1;) {
        int64_t j = r % len, m = ax_min64(len - j, r1 - r);
        const float *q = x + ax_reduce_run_offset(rs, r / len) + j * s;
        if (s == 1) {
            acc += ax_sum_contig(q, m);
        } else {
            for (int64_t k = 0; k < m; k++) acc += q[k * s];
        }
        r += m;
    }
    return acc;
}

static double ax_sum_chunked(const float *x, const ax_reduce_space *rs) {
    double tot = 0;
    for (int64_t r0 = 0; r0 < rs->size; r0 += AX_REDUCE_CHUNK)
        tot += ax_sum_span(x, rs, r0, ax_min64(r0 + AX_REDUCE_CHUNK, rs->size));
    return tot;
}

/* ---- max / min ------------------------------------------------------------------ */

typedef struct ax_arg {
    float v;
    int64_t i;
} ax_arg;

/* Does v replace best? A NaN does (the first NaN then stays), and a tie
 * does not, so the first extremum wins. */
static inline bool ax_arg_better(bool max, float v, float best) {
    return best == best && (v != v || (max ? v > best : v < best));
}

static ax_arg ax_arg_span(bool max, const float *x, const ax_reduce_space *rs, int64_t r0, int64_t r1) {
    int64_t len = rs->shape[rs->n - 1], s = rs->stride[rs->n - 1];
    ax_arg best = {x[ax_reduce_run_offset(rs, r0 / len) + (r0 % len) * s], r0};
    for (int64_t r = r0; r < r1 && best.v == best.v;) {
        int64_t j = r % len, m = ax_min64(len - j, r1 - r);
        const float *q = x + ax_reduce_run_offset(rs, r / len) + j * s;
        for (int64_t k = 0; k < m; k++) {
            if (ax_arg_better(max, q[k * s], best.v)) best = (ax_arg){q[k * s], r + k};
        }
        r += m;
    }
    return best;
}

static void ax_arg_combine(bool max, ax_arg *acc, ax_arg part) {
    if (ax_arg_better(max, part.v, acc->v)) *acc = part;
}

/* ---- one output, blocks of outputs, chunks of outputs -------------------------- */

typedef struct ax_reduce_job {
    ax_reduce_op op;
    ax_reduce_space rs;
    ax_iter it; /* over out, x (reduced dims as size 1) and, when given, idx */
    bool has_idx;
    int64_t nout;
} ax_reduce_job;

/* Pointers for output o (C order over out's shape). */
static void ax_reduce_locate(const ax_reduce_job *job, int64_t o, float **out, const float **x, int64_t **idx) {
    const ax_iter *it = &job->it;
    int64_t off[3], t = o % it->inner;
    ax_iter_row(it, o / it->inner, off);
    *out = (float *)it->base[0] + off[0] + t * it->inner_stride[0];
    *x = (const float *)it->base[1] + off[1] + t * it->inner_stride[1];
    *idx = job->has_idx ? (int64_t *)it->base[2] + off[2] + t * it->inner_stride[2] : NULL;
}

static void ax_reduce_one(const ax_reduce_job *job, int64_t o) {
    float *out;
    const float *x;
    int64_t *idx;
    ax_reduce_locate(job, o, &out, &x, &idx);
    if (job->op == AX_REDUCE_SUM) {
        *out = (float)ax_sum_chunked(x, &job->rs);
        return;
    }
    ax_arg a = ax_arg_span(job->op == AX_REDUCE_MAX, x, &job->rs, 0, job->rs.size);
    *out = a.v;
    if (idx) *idx = a.i;
}

/* Outputs t0..t0+nb-1 of row `row`, contiguous in x, walked together: the
 * same per-output arithmetic as ax_reduce_one, in a cache-friendly order. */
static void ax_reduce_cols(const ax_reduce_job *job, int64_t row, int64_t t0, int64_t nb) {
    const ax_iter *it = &job->it;
    const ax_reduce_space *rs = &job->rs;
    int64_t off[3], len = rs->shape[rs->n - 1], s = rs->stride[rs->n - 1];
    ax_iter_row(it, row, off);
    const float *x = (const float *)it->base[1] + off[1] + t0;
    float *out = (float *)it->base[0] + off[0] + t0 * it->inner_stride[0];
    int64_t os = it->inner_stride[0];
    if (job->op == AX_REDUCE_SUM) {
        double tot[AX_REDUCE_COLS] = {0}, part[AX_REDUCE_COLS];
        for (int64_t r0 = 0; r0 < rs->size; r0 += AX_REDUCE_CHUNK) {
            int64_t r1 = ax_min64(r0 + AX_REDUCE_CHUNK, rs->size);
            for (int64_t t = 0; t < nb; t++) part[t] = 0;
            for (int64_t r = r0; r < r1;) {
                int64_t j = r % len, m = ax_min64(len - j, r1 - r);
                const float *q = x + ax_reduce_run_offset(rs, r / len) + j * s;
                for (int64_t k = 0; k < m; k++) {
                    const float *e = q + k * s;
#pragma omp simd
                    for (int64_t t = 0; t < nb; t++) part[t] += e[t];
                }
                r += m;
            }
            for (int64_t t = 0; t < nb; t++) tot[t] += part[t];
        }
        for (int64_t t = 0; t < nb; t++) out[t * os] = (float)tot[t];
        return;
    }
    bool max = job->op == AX_REDUCE_MAX;
    float best[AX_REDUCE_COLS];
    int64_t bi[AX_REDUCE_COLS];
    for (int64_t t = 0; t < nb; t++) best[t] = x[t], bi[t] = 0;
    for (int64_t r = 0; r < rs->size;) {
        int64_t j = r % len, m = ax_min64(len - j, rs->size - r);
        const float *q = x + ax_reduce_run_offset(rs, r / len) + j * s;
        for (int64_t k = 0; k < m; k++) {
            const float *e = q + k * s;
            for (int64_t t = 0; t < nb; t++)
                if (ax_arg_better(max, e[t], best[t])) best[t] = e[t], bi[t] = r + k;
        }
        r += m;
    }
    for (int64_t t = 0; t < nb; t++) out[t * os] = best[t];
    if (job->has_idx) {
        int64_t *idx = (int64_t *)it->base[2] + off[2] + t0 * it->inner_stride[2];
        for (int64_t t = 0; t < nb; t++) idx[t * it->inner_stride[2]] = bi[t];
    }
}

/* Few outputs, many elements each: every (output, chunk) pair is a task;
 * chunk results are combined in chunk order. false when out of memory
 * (the caller then reduces output by output, with the same result). */
static bool ax_reduce_split(const ax_reduce_job *job) {
    int64_t nch = ax_reduce_chunks(job->rs.size), tasks = job->nout * nch;
    bool sum = job->op == AX_REDUCE_SUM, max = job->op == AX_REDUCE_MAX;
    void *buf = malloc((size_t)tasks * (sum ? sizeof(double) : sizeof(ax_arg)));
    if (!buf) return false;
    double *psum = buf;
    ax_arg *parg = buf;
#pragma omp parallel for schedule(static)
    for (int64_t w = 0; w < tasks; w++) {
        float *out;
        const float *x;
        int64_t *idx, r0 = (w % nch) * AX_REDUCE_CHUNK, r1 = ax_min64(r0 + AX_REDUCE_CHUNK, job->rs.size);
        ax_reduce_locate(job, w / nch, &out, &x, &idx);
        if (sum)
            psum[w] = ax_sum_span(x, &job->rs, r0, r1);
        else
            parg[w] = ax_arg_span(max, x, &job->rs, r0, r1);
    }
    for (int64_t o = 0; o < job->nout; o++) {
        float *out;
        const float *x;
        int64_t *idx;
        ax_reduce_locate(job, o, &out, &x, &idx);
        if (sum) {
            double tot = 0;
            for (int64_t c = 0; c < nch; c++) tot += psum[o * nch + c];
            *out = (float)tot;
        } else {
            ax_arg a = parg[o * nch];
            for (int64_t c = 1; c < nch; c++) ax_arg_combine(max, &a, parg[o * nch + c]);
            *out = a.v;
            if (idx) *idx = a.i;
        }
    }
    free(buf);
    return true;
}

static ax_status ax_reduce_check(ax_reduce_op op, const ax_tensor *out, const ax_tensor *idx, const ax_tensor *x,
                                 uint32_t dims) {
    char s1[160], s2[160];
    if (op < AX_REDUCE_SUM || op > AX_REDUCE_MIN)
        return AX_ERROR(AX_ERR_INVALID, "ax_cpu_reduce: unknown reduce op %d", (int)op);
    if (x->dtype != AX_DTYPE_F32 || out->dtype != AX_DTYPE_F32)
        return AX_ERROR(AX_ERR_UNSUPPORTED, "reduce op %d: x %s into out %s not supported on the CPU (f32 only)",
                        (int)op, ax_dtype_name(x->dtype), ax_dtype_name(out->dtype));
    if (x->ndim < 32 && (dims >> x->ndim) != 0)
        return AX_ERROR(AX_ERR_INVALID, "ax_cpu_reduce: dims mask 0x%x names dims beyond %d", (unsigned)dims,
                        x->ndim);
    bool ok = out->ndim == x->ndim;
    for (int d = 0; ok && d < x->ndim; d++) ok = out->shape[d] == (dims >> d & 1 ? 1 : x->shape[d]);
    if (ok && idx) ok = idx->dtype == AX_DTYPE_I64 && ax_tensor_same_shape(idx, out);
    if (!ok)
        return AX_ERROR(AX_ERR_INVALID, "ax_cpu_reduce: x %s reduced over dims mask 0x%x cannot give out %s%s", 
                        ax_shape_str(s1, sizeof s1, x->ndim, x->shape), (unsigned)dims,
                        ax_shape_str(s2, sizeof s2, out->ndim, out->shape),
                        idx ? " (or idx is not i64 of out's shape)" : "");
    return AX_OK;
}

ax_status ax_cpu_reduce(ax_reduce_op op, ax_tensor *out, ax_tensor *idx, const ax_tensor *x, uint32_t dims) {
    if (ax_reduce_check(op, out, idx, x, dims) != AX_OK) return ax_error_status();
    ax_reduce_job job = {.op = op, .has_idx = idx && op != AX_REDUCE_SUM};
    job.nout = ax_tensor_numel(out);
    ax_reduce_space_init(&job.rs, x, dims);
    if (job.nout == 0) return AX_OK;
    if (job.rs.size == 0) {
        if (op != AX_REDUCE_SUM)
            return AX_ERROR(AX_ERR_INVALID, "ax_cpu_reduce: max/min over zero elements (dims mask 0x%x)",
                            (unsigned)dims);
        return ax_cpu_kernels()->fill(out, 0.0);
    }
    /* x seen with its reduced dims as size 1 walks the outputs beside out. */
    ax_tensor xk = *x;
    for (int d = 0; d < x->ndim; d++)
        if (dims >> d & 1) xk.shape[d] = 1;
    ax_iter_init(&job.it, job.has_idx ? 3 : 2, (const ax_tensor *[]){out, &xk, idx});
    const ax_iter *it = &job.it;
    int64_t total = job.nout * job.rs.size;
    if (job.nout < 4 * (int64_t)ax_num_threads() && job.rs.size > AX_REDUCE_CHUNK && ax_reduce_split(&job))
        return AX_OK;
    if (it->inner_stride[1] == 1 && it->inner >= 8 && job.rs.stride[job.rs.n - 1] != 1) {
        int64_t nb = (it->inner + AX_REDUCE_COLS - 1) / AX_REDUCE_COLS, tasks = it->rows * nb;
#pragma omp parallel for if (total >= AX_PAR_MIN_ELEMS) schedule(static)
        for (int64_t w = 0; w < tasks; w++) {
            int64_t t0 = (w % nb) * AX_REDUCE_COLS;
            ax_reduce_cols(&job, w / nb, t0, ax_min64(AX_REDUCE_COLS, it->inner - t0));
        }
        return AX_OK;
    }
#pragma omp parallel for if (total >= AX_PAR_MIN_ELEMS) schedule(static)
    for (int64_t o = 0; o < job.nout; o++) ax_reduce_one(&job, o);
    return AX_OK;
}

/* ---- softmax ---------------------------------------------------------------------- *
 * Each position (an index of every dim but `dim`) is independent, with
 * fixed arithmetic: the max, then a double sum in order along dim. Rows
 * walk one position at a time; when neighbouring positions are contiguous
 * and dim is not (channel softmax of NCDHW), columns walk a block of them
 * together along dim. Both go through the same per-element helpers, so
 * they agree bit for bit. */

#define AX_SOFTMAX_COLS 64

/* The running max; a NaN sticks. */
static inline float ax_sm_max(float m, float v) { return m == m && (v > m || v != v) ? v : m; }

/* What y is finished with: log(sum) for log_softmax, 1/sum for softmax. */
static inline double ax_sm_scale(double sum, bool log_) { return log_ ? log(sum) : 1.0 / sum; }

/* log_softmax from x; softmax from e = exp(x - m), which the sum pass left in y. */
static inline float ax_sm_finish_log(float x, float m, double scale) { return (float)((double)(x - m) - scale); }
static inline float ax_sm_finish_exp(float e, double scale) { return (float)(e * scale); }

/* The sum term of the backward: sum(dy) for log_softmax, sum(dy * y) for softmax. */
static inline double ax_smb_term(float g, float y, bool log_) { return log_ ? (double)g : (double)g * y; }

static inline float ax_smb_finish(float g, float y, double sum, bool log_) {
    return (float)(log_ ? g - exp((double)y) * sum : (double)y * (g - sum));
}

/* One position: n elements with strides ys, xs. y may be x. */
static void ax_softmax_row(float *y, int64_t ys, const float *x, int64_t xs, int64_t n, bool log_) {
    float m = -INFINITY;
    double sum = 0;
    for (int64_t j = 0; j < n; j++) m = ax_sm_max(m, x[j * xs]);
    for (int64_t j = 0; j < n; j++) {
        float e = expf(x[j * xs] - m);
        sum += e;
        if (!log_) y[j * ys] = e; /* x[j] was read just above */
    }
    double scale = ax_sm_scale(sum, log_);
    for (int64_t j = 0; j < n; j++)
        y[j * ys] = log_ ? ax_sm_finish_log(x[j * xs], m, scale) : ax_sm_finish_exp(y[j * ys], scale);
}

/* nb neighbouring positions (unit stride between them), dim strides ys, xs. */
static void ax_softmax_cols(float *y, int64_t ys, const float *x, int64_t xs, int64_t n, int64_t nb, bool log_) {
    float m[AX_SOFTMAX_COLS];
    double sum[AX_SOFTMAX_COLS], scale[AX_SOFTMAX_COLS];
    for (int64_t t = 0; t < nb; t++) m[t] = -INFINITY, sum[t] = 0;
    for (int64_t j = 0; j < n; j++)
        for (int64_t t = 0; t < nb; t++) m[t] = ax_sm_max(m[t], x[j * xs + t]);
    for (int64_t j = 0; j < n; j++)
        for (int64_t t = 0; t < nb; t++) {
            float e = expf(x[j * xs + t] - m[t]);
            sum[t] += e;
            if (!log_) y[j * ys + t] = e;
        }
    for (int64_t t = 0; t < nb; t++) scale[t] = ax_sm_scale(sum[t], log_);
    for (int64_t j = 0; j < n; j++) {
        const float *xj = x + j * xs;
        float *yj = y + j * ys;
        if (log_) {
#pragma omp simd
            for (int64_t t = 0; t < nb; t++) yj[t] = ax_sm_finish_log(xj[t], m[t], scale[t]);
        } else {
#pragma omp simd
            for (int64_t t = 0; t < nb; t++) yj[t] = ax_sm_finish_exp(yj[t], scale[t]);
        }
    }
}

/* One position of the backward. dx may be dy (each dy is read before dx
 * at the same place is written). */
static void ax_softmax_backward_row(float *dx, int64_t dxs, const float *dy, int64_t dys, const float *y, int64_t ys,
                                    int64_t n, bool log_) {
    double sum = 0;
    for (int64_t j = 0; j < n; j++) sum += ax_smb_term(dy[j * dys], y[j * ys], log_);
    for (int64_t j = 0; j < n; j++) dx[j * dxs] = ax_smb_finish(dy[j * dys], y[j * ys], sum, log_);
}

static void ax_softmax_backward_cols(float *dx, int64_t dxs, const float *dy, int64_t dys, const float *y,
                                     int64_t ys, int64_t n, int64_t nb, bool log_) {
    double sum[AX_SOFTMAX_COLS];
    for (int64_t t = 0; t < nb; t++) sum[t] = 0;
    for (int64_t j = 0; j < n; j++) {
        const float *gj = dy + j * dys, *yj = y + j * ys;
#pragma omp simd
        for (int64_t t = 0; t < nb; t++) sum[t] += ax_smb_term(gj[t], yj[t], log_);
    }
    for (int64_t j = 0; j < n; j++)
        for (int64_t t = 0; t < nb; t++) dx[j * dxs + t] = ax_smb_finish(dy[j * dys + t], y[j * ys + t], sum[t], log_);
}

typedef struct ax_softmax_job {
    ax_iter it;    /* over the operands with `dim` as size 1: the positions */
    int64_t len;   /* along dim */
    int64_t ds[3]; /* strides along dim */
    bool log;
    bool cols;     /* neighbouring positions contiguous in every operand, dim not */
} ax_softmax_job;

static void ax_softmax_job_init(ax_softmax_job *job, int nop, const ax_tensor *const *ops, int dim, bool log_) {
    ax_tensor v[3];
    const ax_tensor *vp[3];
    for (int k = 0; k < nop; k++) {
        v[k] = *ops[k];
        v[k].shape[dim] = 1;
        vp[k] = &v[k];
        job->ds[k] = ops[k]->stride[dim];
    }
    job->len = ops[0]->shape[dim];
    job->log = log_;
    ax_iter_init(&job->it, nop, vp);
    job->cols = job->it.inner > 1 && job->ds[0] != 1;
    for (int k = 0; k < nop; k++) job->cols = job->cols && job->it.inner_stride[k] == 1;
}

/* Positions t0..t0+nb-1 of row `row`: y from x. */
static void ax_softmax_block(const ax_softmax_job *job, int64_t row, int64_t t0, int64_t nb) {
    const ax_iter *it = &job->it;
    const int64_t *ps = it->inner_stride, *ds = job->ds;
    int64_t off[2];
    ax_iter_row(it, row, off);
    float *y = (float *)it->base[0] + off[0] + t0 * ps[0];
    const float *x = (const float *)it->base[1] + off[1] + t0 * ps[1];
    if (job->cols) {
        ax_softmax_cols(y, ds[0], x, ds[1], job->len, nb, job->log);
        return;
    }
    for (int64_t t = 0; t < nb; t++) ax_softmax_row(y + t * ps[0], ds[0], x + t * ps[1], ds[1], job->len, job->log);
}

/* Positions t0..t0+nb-1 of row `row`: dx from dy and y. */
static void ax_softmax_backward_block(const ax_softmax_job *job, int64_t row, int64_t t0, int64_t nb) {
    const ax_iter *it = &job->it;
    const int64_t *ps = it->inner_stride, *ds = job->ds;
    int64_t off[3];
    ax_iter_row(it, row, off);
    float *dx = (float *)it->base[0] + off[0] + t0 * ps[0];
    const float *dy = (const float *)it->base[1] + off[1] + t0 * ps[1];
    const float *y = (const float *)it->base[2] + off[2] + t0 * ps[2];
    if (job->cols) {
        ax_softmax_backward_cols(dx, ds[0], dy, ds[1], y, ds[2], job->len, nb, job->log);
        return;
    }
    for (int64_t t = 0; t < nb; t++)
        ax_softmax_backward_row(dx + t * ps[0], ds[0], dy + t * ps[1], ds[1], y + t * ps[2], ds[2], job->len, job->log);
}

static ax_status ax_softmax_check(const char *fn, const ax_tensor *a, const char *an, const ax_tensor *b,
                                  const char *bn, int dim) {
    char s1[160], s2[160];
    if (a->dtype != AX_DTYPE_F32 || b->dtype != AX_DTYPE_F32)
        return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: %s %s, %s %s not supported on the CPU (f32 only)", fn, an,
                        ax_dtype_name(a->dtype), bn, ax_dtype_name(b->dtype));
    if (!ax_tensor_same_shape(a, b))
        return AX_ERROR(AX_ERR_INVALID, "%s: %s %s and %s %s differ", fn, an, ax_shape_str(s1, sizeof s1, a->ndim, a->shape),
                        bn, ax_shape_str(s2, sizeof s2, b->ndim, b->shape));
    if (dim < 0 || dim >= a->ndim)
        return AX_ERROR(AX_ERR_INVALID, "%s: dim %d out of range for %s %s", fn, dim, an,
                        ax_shape_str(s1, sizeof s1, a->ndim, a->shape));
    return AX_OK;
}

/* Blocks of AX_SOFTMAX_COLS positions are the unit of work. */
static void ax_softmax_run(const ax_softmax_job *job, bool backward) {
    const ax_iter *it = &job->it;
    int64_t nb = (it->inner + AX_SOFTMAX_COLS - 1) / AX_SOFTMAX_COLS, tasks = it->rows * nb;
    int64_t total = it->rows * it->inner * job->len;
#pragma omp parallel for if (total >= AX_PAR_MIN_ELEMS) schedule(static)
    for (int64_t w = 0; w < tasks; w++) {
        int64_t t0 = (w % nb) * AX_SOFTMAX_COLS, n = ax_min64(AX_SOFTMAX_COLS, it->inner - t0);
        if (backward)
            ax_softmax_backward_block(job, w / nb, t0, n);
        else
            ax_softmax_block(job, w / nb, t0, n);
    }
}

ax_status ax_cpu_softmax(ax_tensor *y, const ax_tensor *x, int dim, bool log) {
    if (ax_softmax_check("ax_cpu_softmax", y, "y", x, "x", dim) != AX_OK) return ax_error_status();
    if (ax_tensor_numel(x) == 0) return AX_OK;
    ax_softmax_job job;
    ax_softmax_job_init(&job, 2, (const ax_tensor *[]){y, x}, dim, log);
    ax_softmax_run(&job, false);
    return AX_OK;
}

ax_status ax_cpu_softmax_backward(ax_tensor *dx, const ax_tensor *dy, const ax_tensor *y, int dim, bool log) {
    const char *fn = "ax_cpu_softmax_backward";
    if (ax_softmax_check(fn, dx, "dx", dy, "dy", dim) != AX_OK || ax_softmax_check(fn, dx, "dx", y, "y", dim) != AX_OK)
        return ax_error_status();
    if (ax_tensor_numel(y) == 0) return AX_OK;
    ax_softmax_job job;
    ax_softmax_job_init(&job, 3, (const ax_tensor *[]){dx, dy, y}, dim, log);
    ax_softmax_run(&job, true);
    return AX_OK;
}
