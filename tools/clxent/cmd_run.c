/* clxent run: cross_entropy, nll_loss, log_softmax or softmax on .npy
 * inputs of PyTorch's shapes, on any device, with every option of the
 * library. This file reads the arguments; run_load.c and run_exec.c do
 * the rest. */
#include "run.h"
#include "shard.h"

#include <stddef.h>
#include <string.h>

static const char *cmd = "run";

const char *const run_op_names[] = {"cross_entropy", "nll_loss",
                                    "log_softmax", "softmax"};

static void help(void) {
    printf(
        "Usage: clxent run [--device SPEC] [--op cross_entropy|nll_loss|"
        "log_softmax|softmax]\n"
        "                  --input X.npy [--targets Y.npy | --probs P.npy] "
        "[--weights W.npy]\n"
        "                  [--reduction none|sum|mean] [--ignore-index N] "
        "[--label-smoothing E]\n"
        "                  [--z-loss Z] [--softcap S] [--logit-scale A] "
        "[--grad-scale G]\n"
        "                  [--dim D] [--dtype f32|f16|bf16]\n"
        "                  [--loss-out L.npy] [--grad-out DX.npy] "
        "[--lse-out LSE.npy] [--out Y.npy]\n"
        "                  [--shard vocab|batch|VxB]   (under mpirun)\n\n"
        "PyTorch's F.cross_entropy (default), F.nll_loss (X holds "
        "log-probabilities),\nF.log_softmax or F.softmax on .npy files "
        "(--logits is --input's old name):\n"
        "  X  float32, float16 or float64: (C), (N, C) or (N, C, d1..dk), "
        "at most 8-d;\n"
        "     any shape, 0-d included, for log_softmax and softmax\n"
        "  Y  int32 or int64 class indices of shape (N, d1..dk), 0-d for "
        "X (C)\n"
        "  P  target probabilities of X's shape (cross_entropy)\n"
        "  W  (C) class weights\n"
        "The class axis is 1 (0 for X (C)); --dim picks it for log_softmax "
        "and softmax\n(default -1, negative counts from the end). float64 "
        "inputs are converted;\nbig-endian and Fortran-order files are "
        "read as they are meant. --dtype is the\nstorage type on the "
        "device (default: X's type, f32 for float64; bf16 rounds to\n"
        "nearest even). --softcap S (0 = off) and --logit-scale A apply "
        "x' = S*tanh(A*x/S)\nbefore everything else. Defaults: reduction "
        "mean, ignore-index -100,\nlabel-smoothing 0, z-loss 0, grad-scale 1 "
        "(the upstream gradient of loss.sum()).\n"
        "--shard (cross_entropy, under mpirun -np K, when clxent was built "
        "with MPI:\n`clxent --version` says): every rank reads the files and "
        "takes its block, the\nclasses split over V ranks and the rows (axis "
        "0) over B, V*B = K (vocab: V = K,\nbatch: B = K); rank 0 writes the "
        "outputs, equal to the unsharded run's.\n"
        "Outputs are float32: loss () for sum/mean or the target's shape "
        "for none,\ngrad X's shape, lse the target's shape, out "
        "(log_softmax/softmax) X's shape.\nExit 1 on bad input, 2 on usage "
        "errors.\n");
}

/* Each option, and the ops it applies to. */
enum {
    OP_CE = 1 << RUN_CROSS_ENTROPY,
    OP_NLL = 1 << RUN_NLL_LOSS,
    OP_SOFTMAXES = 1 << RUN_LOG_SOFTMAX | 1 << RUN_SOFTMAX,
    OP_LOSSES = OP_CE | OP_NLL,
    OP_ALL = OP_LOSSES | OP_SOFTMAXES
};

typedef enum flag_kind {
    K_PATH, K_OP, K_REDUCTION, K_INT, K_FLOAT, K_DTYPE
} flag_kind;

typedef struct flag {
    const char *name;
    flag_kind kind;
    unsigned ops;
} flag;

static const flag flags[] = {
    {"--device", K_PATH, OP_ALL},          {"--op", K_OP, OP_ALL},
    {"--input", K_PATH, OP_ALL},           {"--logits", K_PATH, OP_ALL},
    {"--targets", K_PATH, OP_LOSSES},      {"--probs", K_PATH, OP_CE},
    {"--weights", K_PATH, OP_LOSSES},      {"--reduction", K_REDUCTION, OP_LOSSES},
    {"--ignore-index", K_INT, OP_LOSSES},  {"--label-smoothing", K_FLOAT, OP_CE},
    {"--z-loss", K_FLOAT, OP_CE},          {"--softcap", K_FLOAT, OP_CE | OP_SOFTMAXES},
    {"--logit-scale", K_FLOAT, OP_CE | OP_SOFTMAXES},
    {"--grad-scale", K_FLOAT, OP_LOSSES},  {"--dim", K_INT, OP_SOFTMAXES},
    {"--dtype", K_DTYPE, OP_ALL},          {"--loss-out", K_PATH, OP_LOSSES},
    {"--grad-out", K_PATH, OP_LOSSES},     {"--lse-out", K_PATH, OP_CE},
    {"--out", K_PATH, OP_SOFTMAXES},       {"--shard", K_PATH, OP_CE},
};
#define NFLAGS (sizeof flags / sizeof flags[0])

/* Where flag k's value goes (paths, numbers). */
static void *slot(run_args *a, const char *name) {
    static const struct { const char *name; size_t at; } slots[] = {
#define S(n, f) {n, offsetof(run_args, f)}
        S("--device", device),     S("--input", input),
        S("--logits", input),      S("--targets", targets),
        S("--probs", probs),       S("--weights", weights),
        S("--loss-out", loss_out), S("--grad-out", grad_out),
        S("--lse-out", lse_out),   S("--out", out),
        S("--shard", shard),
        S("--ignore-index", opt.loss.ignore_index), S("--dim", dim),
        S("--label-smoothing", opt.loss.label_smoothing),
        S("--z-loss", opt.loss.z_loss), S("--softcap", opt.softcap),
        S("--logit-scale", opt.logit_scale),
        S("--grad-scale", opt.loss.grad_scale),
#undef S
    };
    for (size_t k = 0; k < sizeof slots / sizeof slots[0]; k++)
        if (strcmp(slots[k].name, name) == 0)
            return (char *)a + slots[k].at;
    return NULL;
}

static int parse_value(run_args *a, const flag *f, const char *v) {
    void *to = slot(a, f->name);
    switch (f->kind) {
    case K_PATH: *(const char **)to = v; return 0;
    case K_INT: return cli_parse_int64(cmd, f->name, v, to);
    case K_FLOAT: return cli_parse_float(cmd, f->name, v, to);
    case K_DTYPE: return cli_parse_dtype(cmd, f->name, v, &a->dtype);
    case K_OP:
        for (int k = 0; k <= RUN_SOFTMAX; k++)
            if (strcmp(v, run_op_names[k]) == 0) {
                a->op = (run_op)k;
                return 0;
            }
        return cli_usage_error(cmd, "--op: '%s' is not cross_entropy, "
                               "nll_loss, log_softmax or softmax", v);
    case K_REDUCTION: {
        static const char *names[] = {"none", "sum", "mean"};
        for (int k = 0; k < 3; k++)
            if (strcmp(v, names[k]) == 0) {
                a->opt.loss.reduction = (clxent_reduction)k;
                return 0;
            }
        return cli_usage_error(cmd, "--reduction: '%s' is not none, sum or "
                               "mean", v);
    }
    }
    return 0;
}

static int was_given(const unsigned char *given, const char *name) {
    for (size_t k = 0; k < NFLAGS; k++)
        if (strcmp(flags[k].name, name) == 0) return given[k];
    return 0;
}

/* The rules between options, once the op is known. */
static int check_args(const run_args *a, const unsigned char *given) {
    const char *op = run_op_names[a->op];
    for (size_t k = 0; k < NFLAGS; k++)
        if (given[k] && !(flags[k].ops & (1u << a->op)))
            return cli_usage_error(cmd, "%s does not apply to --op %s",
                                   flags[k].name, op);
    if (!a->input) return cli_usage_error(cmd, "--input is required");
    if (a->op == RUN_CROSS_ENTROPY && !a->targets == !a->probs)
        return cli_usage_error(cmd, "give exactly one of --targets and "
                               "--probs");
    if (a->op == RUN_NLL_LOSS && !a->targets)
        return cli_usage_error(cmd, "--op nll_loss needs --targets");
    const clxent_loss_options *o = &a->opt.loss;
    if (a->probs && was_given(given, "--ignore-index"))
        return cli_usage_error(cmd, "--ignore-index applies to --targets "
                               "(class indices) only");
    if (o->label_smoothing < 0 || o->label_smoothing > 1)
        return cli_usage_error(cmd, "--label-smoothing must be in [0, 1], "
                               "not %g", (double)o->label_smoothing);
    if (o->z_loss < 0)
        return cli_usage_error(cmd, "--z-loss must be >= 0, not %g",
                               (double)o->z_loss);
    if (a->opt.softcap < 0)
        return cli_usage_error(cmd, "--softcap must be >= 0 (0 = off), not "
                               "%g", (double)a->opt.softcap);
    if (!(a->opt.logit_scale > 0))
        return cli_usage_error(cmd, "--logit-scale must be > 0, not %g",
                               (double)a->opt.logit_scale);
    const char *outs[] = {a->loss_out, a->grad_out, a->lse_out, a->out};
    const char *names[] = {"--loss-out", "--grad-out", "--lse-out", "--out"};
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            if (outs[i] && outs[j] && strcmp(outs[i], outs[j]) == 0)
                return cli_usage_error(cmd, "%s and %s name the same file "
                                       "'%s'; each output needs its own",
                                       names[i], names[j], outs[i]);
    int V, B;
    if (a->shard) return shard_parse(cmd, a->shard, &V, &B);
    return 0;
}

static int run_parse(int argc, char **argv, run_args *a) {
    memset(a, 0, sizeof *a);
    clxent_options_init(&a->opt);
    a->dim = -1;
    unsigned char given[NFLAGS] = {0};
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { help(); return -1; }
        size_t k = 0;
        const char *v = NULL;
        int r = 0;
        for (; k < NFLAGS; k++)
            if ((r = cli_option(cmd, argc, argv, &i, flags[k].name, &v)))
                break;
        if (k == NFLAGS)
            return cli_usage_error(cmd, "unknown argument '%s'", argv[i]);
        if (r != 1) return r;
        given[k] = 1;
        if ((r = parse_value(a, &flags[k], v))) return r;
    }
    return check_args(a, given);
}

int clxent_cmd_run(int argc, char **argv) {
    run_args a;
    int rc = run_parse(argc, argv, &a);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (a.shard) return run_sharded(&a);
    run_inputs in;
    clxent_context *ctx = NULL;
    if (!(rc = run_load(&a, &in)) &&
        !(rc = cli_open_context(cmd, a.device, &ctx)))
        rc = run_exec(&a, &in, ctx);
    clxent_context_destroy(ctx);
    run_inputs_free(&in);
    return rc;
}
