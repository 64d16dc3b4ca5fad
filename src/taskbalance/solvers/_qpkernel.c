/* The compiled fast path of taskbalance.solvers.active_set.solve_qp (without the simplex).

   The same algorithm as the NumPy reference in active_set.py, one problem at a time:
   the primal-dual active set (Hintermueller, Ito & Kunisch 2002) for at most `iters`
   iterations, then, for a problem it has not settled, the primal active set (Lawson &
   Hanson 1974) started from its iterate, which terminates by construction: the
   objective strictly decreases from one face's minimiser to the next. Each face's
   system A_FF x_F = -b_F is solved by Gaussian elimination with partial pivoting.

   The Python caller certifies every solution by its KKT residual (NumPy): a problem
   this kernel could not solve (a zero or non-finite pivot) comes back as NaN, which
   fails the certificate loudly. At K = 10 the NumPy reference spends its time in
   NumPy's per-call overhead, not in arithmetic; here one call solves the whole batch. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    Py_ssize_t k;
    double *mat;    /* k*k: a face's system, destroyed by the elimination */
    double *rhs;    /* k: its right-hand side */
    double *sol;    /* k: its solution */
    Py_ssize_t *perm; /* k: its row permutation */
    Py_ssize_t *idx; /* k: the face's coordinates */
    double *target; /* k: the face's minimiser */
    double *grad;   /* k */
    char *free_;    /* k */
    const double *ainv; /* k*k: A^-1 of a shared, well-conditioned A, or NULL */
    double *z;      /* k: A^-1 b of the current problem (when ainv is set) */
} Work;

/* LU factorisation with partial pivoting of mat (n x n, row-major) in place: L's
   multipliers below the diagonal, U on and above it, and row i of the factors is row
   perm[i] of the input. 0, or -1 on a zero or non-finite pivot. */
static int lu_factor(Py_ssize_t n, double *mat, Py_ssize_t *perm) {
    for (Py_ssize_t i = 0; i < n; i++) perm[i] = i;
    for (Py_ssize_t c = 0; c < n; c++) {
        Py_ssize_t p = c;
        double best = fabs(mat[c * n + c]);
        for (Py_ssize_t i = c + 1; i < n; i++) {
            double v = fabs(mat[i * n + c]);
            if (v > best) {
                best = v;
                p = i;
            }
        }
        if (!(best > 0.0) || !isfinite(best)) return -1;
        if (p != c) {
            for (Py_ssize_t j = 0; j < n; j++) {
                double t = mat[c * n + j];
                mat[c * n + j] = mat[p * n + j];
                mat[p * n + j] = t;
            }
            Py_ssize_t t = perm[c];
            perm[c] = perm[p];
            perm[p] = t;
        }
        for (Py_ssize_t i = c + 1; i < n; i++) {
            double f = mat[i * n + c] /= mat[c * n + c];
            if (f == 0.0) continue;
            for (Py_ssize_t j = c + 1; j < n; j++) mat[i * n + j] -= f * mat[c * n + j];
        }
    }
    return 0;
}

/* Solve (P^T L U) y = rhs from lu_factor's factors; rhs is read, y written (distinct). */
static void lu_solve(Py_ssize_t n, const double *lu, const Py_ssize_t *perm, const double *rhs, double *y) {
    for (Py_ssize_t i = 0; i < n; i++) {
        double s = rhs[perm[i]];
        for (Py_ssize_t q = 0; q < i; q++) s -= lu[i * n + q] * y[q];
        y[i] = s;
    }
    for (Py_ssize_t i = n - 1; i >= 0; i--) {
        double s = y[i];
        for (Py_ssize_t q = i + 1; q < n; q++) s -= lu[i * n + q] * y[q];
        y[i] = s / lu[i * n + i];
    }
}

/* Above this many tasks, a batch sharing one A also uses A^-1 (see face) */
#define INVERSE_MIN_TASKS 16

/* A^-1 into inv (k x k), with scratch lu (k x k), perm (k) and col (2k): 1 if A is
   invertible and conditioned well enough for the small systems through A^-1
   (||A||_1 ||A^-1||_1 <= 1e6), else 0. */
static int inverse(Py_ssize_t k, const double *a, double *inv, double *lu, Py_ssize_t *perm, double *col) {
    memcpy(lu, a, (size_t)k * k * sizeof(double));
    if (lu_factor(k, lu, perm)) return 0;
    for (Py_ssize_t j = 0; j < k; j++) {
        for (Py_ssize_t i = 0; i < k; i++) col[i] = i == j;
        lu_solve(k, lu, perm, col, col + k);
        for (Py_ssize_t i = 0; i < k; i++) inv[i * k + j] = col[k + i];
    }
    double na = 0.0, ni = 0.0;
    for (Py_ssize_t j = 0; j < k; j++) {
        double sa = 0.0, si = 0.0;
        for (Py_ssize_t i = 0; i < k; i++) {
            sa += fabs(a[i * k + j]);
            si += fabs(inv[i * k + j]);
        }
        if (sa > na) na = sa;
        if (si > ni) ni = si;
    }
    return isfinite(ni) && na * ni <= 1e6;
}

/* Solve mat y = rhs (n x n) into y: 0, or -1 on a zero or non-finite pivot. */
static int solve_system(Py_ssize_t n, double *mat, const double *rhs, double *y, Work *w) {
    if (lu_factor(n, mat, w->perm)) return -1;
    lu_solve(n, mat, w->perm, rhs, y);
    return 0;
}

/* The QP's minimiser on the affine hull of the face `free` (0 off it), into out. With
   A^-1 known and fewer fixed coordinates C than free ones, through the smaller system
   (A^-1)_CC mu_C = (A^-1 b)_C, x = A^-1 (mu - b): UPGrad's projections at large K often
   fix only a few coordinates. */
static int face(const double *a, const double *b, const char *free_, double *out, Work *w) {
    Py_ssize_t k = w->k, n = 0;
    for (Py_ssize_t i = 0; i < k; i++) {
        out[i] = 0.0;
        if (free_[i]) w->idx[n++] = i;
    }
    if (n == 0) return 0;
    if (w->ainv && k - n < n) {
        Py_ssize_t m = 0;
        for (Py_ssize_t i = 0; i < k; i++)
            if (!free_[i]) w->idx[m++] = i;
        for (Py_ssize_t r = 0; r < m; r++) {
            const double *row = w->ainv + w->idx[r] * k;
            for (Py_ssize_t c = 0; c < m; c++) w->mat[r * m + c] = row[w->idx[c]];
            w->rhs[r] = w->z[w->idx[r]];
        }
        if (m && solve_system(m, w->mat, w->rhs, w->sol, w)) return -1;
        for (Py_ssize_t i = 0; i < k; i++) {
            if (!free_[i]) continue;
            const double *row = w->ainv + i * k;
            double s = -w->z[i];
            for (Py_ssize_t r = 0; r < m; r++) s += row[w->idx[r]] * w->sol[r];
            out[i] = s;
        }
        return 0;
    }
    for (Py_ssize_t r = 0; r < n; r++) {
        const double *row = a + w->idx[r] * k;
        for (Py_ssize_t c = 0; c < n; c++) w->mat[r * n + c] = row[w->idx[c]];
        w->rhs[r] = -b[w->idx[r]];
    }
    if (solve_system(n, w->mat, w->rhs, w->sol, w)) return -1;
    for (Py_ssize_t r = 0; r < n; r++) out[w->idx[r]] = w->sol[r];
    return 0;
}

static void gradient(const double *a, const double *b, const double *x, double *g, Py_ssize_t k) {
    for (Py_ssize_t i = 0; i < k; i++) {
        double s = b[i];
        const double *row = a + i * k;
        for (Py_ssize_t j = 0; j < k; j++) s += row[j] * x[j];
        g[i] = s;
    }
}

/* The primal-dual active set: 1 if its free set settled within iters, 0 if not, -1 on failure. */
static int pdas(const double *a, const double *b, double *x, Py_ssize_t iters, Work *w) {
    Py_ssize_t k = w->k;
    for (Py_ssize_t i = 0; i < k; i++) {
        w->free_[i] = b[i] < 0.0;
        x[i] = 0.0;
    }
    for (Py_ssize_t it = 0; it < iters; it++) {
        if (face(a, b, w->free_, x, w)) return -1;
        gradient(a, b, x, w->grad, k);
        int changed = 0;
        for (Py_ssize_t i = 0; i < k; i++) {
            char now = w->free_[i] ? (x[i] > 0.0) : (w->grad[i] < 0.0);
            changed |= now != w->free_[i];
            w->free_[i] = now;
        }
        if (!changed) return 1;
    }
    return 0;
}

/* The primal active set from the feasible point nearest x; 0, or -1 on failure. */
static int primal(const double *a, const double *b, double *x, Work *w) {
    Py_ssize_t k = w->k;
    double best = INFINITY;
    for (Py_ssize_t i = 0; i < k; i++) {
        if (!(x[i] > 0.0)) x[i] = 0.0; /* NaN included */
        w->free_[i] = x[i] > 0.0;
    }
    for (;;) {
        /* inner loop: from feasible x, reach the minimiser of the current face. A free
           coordinate whose target is not > 0 blocks the step (at once if it is already
           0), so each pass that does not end the loop fixes at least one coordinate and
           k + 1 passes suffice */
        int reached = 0;
        for (Py_ssize_t pass = 0; pass <= k && !reached; pass++) {
            if (face(a, b, w->free_, w->target, w)) return -1;
            int inside = 1;
            for (Py_ssize_t i = 0; i < k; i++)
                if (w->free_[i] && !(w->target[i] > 0.0)) inside = 0;
            if (inside) {
                memcpy(x, w->target, (size_t)k * sizeof(double));
                reached = 1;
                break;
            }
            double t = 1.0;
            int any = 0;
            for (Py_ssize_t i = 0; i < k; i++) {
                if (!w->free_[i] || w->target[i] > 0.0) continue;
                /* leaves the orthant (NaN included); x[i] == target[i] == 0: blocks at once */
                double step = w->target[i] - x[i];
                double ratio = step < 0.0 ? x[i] / -step : 0.0;
                if (ratio < t) t = ratio;
                any = 1;
            }
            if (!any) return -1; /* cannot happen: not inside means some free target <= 0 */
            for (Py_ssize_t i = 0; i < k; i++) {
                if (!w->free_[i]) {
                    x[i] = 0.0;
                    continue;
                }
                double step = w->target[i] - x[i];
                int hit = !(w->target[i] > 0.0) && (step < 0.0 ? x[i] / -step : 0.0) <= t;
                double v = x[i] + t * step;
                x[i] = hit || !(v > 0.0) ? 0.0 : v;
                if (hit) w->free_[i] = 0;
            }
        }
        if (!reached) return -1; /* cannot happen, see above */
        gradient(a, b, x, w->grad, k);
        double value = 0.0;
        for (Py_ssize_t i = 0; i < k; i++) value += x[i] * (0.5 * (w->grad[i] - b[i]) + b[i]);
        if (!(value < best)) return 0; /* no strict decrease left: rounding level */
        best = value;
        Py_ssize_t j = -1;
        double most = 0.0;
        for (Py_ssize_t i = 0; i < k; i++)
            if (!w->free_[i] && w->grad[i] < most) {
                most = w->grad[i];
                j = i;
            }
        if (j < 0) return 0;
        w->free_[j] = 1;
    }
}

/* A C-contiguous float64 buffer of obj into view, or -1 with TypeError. */
static int doubles(PyObject *obj, Py_buffer *view, int writable, const char *name) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) return -1;
    const char *f = view->format;
    if (view->itemsize != 8 || !f || (strcmp(f, "d") && strcmp(f, "<d") && strcmp(f, "=d"))) {
        PyBuffer_Release(view);
        view->obj = NULL;
        PyErr_Format(PyExc_TypeError, "_qpkernel.solve: %s must be a C-contiguous float64 array", name);
        return -1;
    }
    return 0;
}

static PyObject *solve(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *ao, *bo, *xo;
    Py_buffer ab = {0}, bb = {0}, xb = {0};
    Py_ssize_t batch, k, iters;
    int shared;
    if (!PyArg_ParseTuple(args, "OOOnnnp", &ao, &bo, &xo, &batch, &k, &iters, &shared)) return NULL;
    PyObject *result = NULL;
    if (doubles(ao, &ab, 0, "a") || doubles(bo, &bb, 0, "b") || doubles(xo, &xb, 1, "x")) goto done;
    /* bound k and batch first, so that the size products below cannot overflow */
    if (k < 1 || k > 4096 || batch < 0 || batch > PY_SSIZE_T_MAX / ((Py_ssize_t)sizeof(double) * k * k)) {
        PyErr_SetString(PyExc_ValueError, "_qpkernel.solve: batch or k out of range");
        goto done;
    }
    Py_ssize_t need_a = (shared ? 1 : batch) * k * k * (Py_ssize_t)sizeof(double);
    Py_ssize_t need_b = batch * k * (Py_ssize_t)sizeof(double);
    if (k < 1 || batch < 0 || iters < 0 || ab.len != need_a || bb.len != need_b || xb.len != need_b) {
        PyErr_SetString(PyExc_ValueError, "_qpkernel.solve: buffer sizes do not match (batch, k)");
        goto done;
    }
    Work w;
    w.k = k;
    /* doubles: mat and A^-1 (k*k each), rhs, sol, target, grad, z (k each); then idx and
       perm (k Py_ssize_t each), free_ (k chars) */
    char *mem = malloc((size_t)k * (2 * k + 5) * sizeof(double) + 2 * (size_t)k * sizeof(Py_ssize_t) + (size_t)k);
    if (!mem) {
        PyErr_NoMemory();
        goto done;
    }
    w.mat = (double *)mem;
    double *ainv = w.mat + k * k;
    w.rhs = ainv + k * k;
    w.sol = w.rhs + k; /* rhs and sol are contiguous: inverse's 2k column scratch */
    w.target = w.sol + k;
    w.grad = w.target + k;
    w.z = w.grad + k;
    w.idx = (Py_ssize_t *)(w.z + k);
    w.perm = w.idx + k;
    w.free_ = (char *)(w.perm + k);
    const double *a = ab.buf, *b = bb.buf;
    double *x = xb.buf;
    Py_ssize_t failed = 0;
    Py_BEGIN_ALLOW_THREADS
    int use_inverse = shared && batch > 1 && k > INVERSE_MIN_TASKS;
    w.ainv = use_inverse && inverse(k, a, ainv, w.mat, w.perm, w.rhs) ? ainv : NULL;
    for (Py_ssize_t p = 0; p < batch; p++) {
        const double *ap = shared ? a : a + p * k * k;
        const double *bp = b + p * k;
        double *xp = x + p * k;
        if (w.ainv)
            for (Py_ssize_t i = 0; i < k; i++) {
                double s = 0.0;
                for (Py_ssize_t j = 0; j < k; j++) s += w.ainv[i * k + j] * bp[j];
                w.z[i] = s;
            }
        int status = iters > 0 ? pdas(ap, bp, xp, iters, &w) : 0;
        if (status == 0) status = primal(ap, bp, xp, &w);
        if (status < 0) {
            for (Py_ssize_t i = 0; i < k; i++) xp[i] = NAN;
            failed++;
        }
    }
    Py_END_ALLOW_THREADS
    free(mem);
    result = PyLong_FromSsize_t(failed);
done:
    PyBuffer_Release(&ab);
    PyBuffer_Release(&bb);
    PyBuffer_Release(&xb);
    return result;
}

static PyMethodDef methods[] = {
    {"solve", solve, METH_VARARGS,
     "solve(a, b, x, batch, k, iters, shared) -> failures\n\n"
     "Solve min 1/2 x'Ax + b'x s.t. x >= 0 for each row of b (float64, C-contiguous), into x:\n"
     "the primal-dual active set for at most iters iterations, then the primal active set\n"
     "started from its iterate (iters = 0: from x as given). a is (k, k) if shared, else\n"
     "(batch, k, k). A problem that could not be solved is set to NaN and counted."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_qpkernel",
    .m_doc = "Compiled fast path of taskbalance.solvers.active_set.solve_qp.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__qpkernel(void) { return PyModule_Create(&module); }
