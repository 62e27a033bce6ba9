#!/usr/bin/python3
"""`clxent run --shard` under mpirun against the unsharded `clxent run`:

    /usr/bin/python3 tools/check_run_shard.py --clxent build/clxent
        --mpiexec mpirun [--device SPEC]

For every case (class indices with weights, ignored rows, smoothing and
z-loss; probability targets; each reduction; f32, bf16 and f16 storage;
shapes (C), (N, C) and (N, C, d1, d2)) and every grid (vocab and batch over 2 ranks, vocab,
batch and 2x2 over 4), the sharded loss, lse and gradient files must equal
the unsharded ones within 1e-5 (a 16-bit gradient: within one rounding
of its storage type); a bad class index on the ranks must fail
every rank with TARGET_OUT_OF_RANGE. Exit 0 when all pass.

Needs numpy (Debian: apt-get install python3-numpy; run with
/usr/bin/python3).
"""
import argparse
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
except ImportError:
    sys.exit("check_run_shard: needs numpy (apt-get install python3-numpy)")


def cases(rng):
    """(name, arrays, run options) for each case."""
    def idx(shape, C, ignore=True):
        y = rng.integers(0, C, shape).astype(np.int64)
        if ignore and y.size > 1:
            y.flat[1] = -100
        return y
    x = rng.standard_normal((6, 37, 2, 3)).astype(np.float32)
    yield ("nd indices, weights, smoothing, z-loss, mean",
           {"x": x, "y": idx((6, 2, 3), 37),
            "w": rng.uniform(0.5, 2, 37).astype(np.float32)},
           ["--label-smoothing", "0.1", "--z-loss", "0.001"])
    x2 = rng.standard_normal((9, 50)).astype(np.float32)
    for red in ("sum", "none"):
        yield ("2-d indices, reduction " + red,
               {"x": x2, "y": idx((9,), 50)}, ["--reduction", red])
    p = rng.uniform(0, 1, (9, 50)).astype(np.float32)
    yield ("2-d probabilities, smoothing",
           {"x": x2, "p": p / p.sum(axis=1, keepdims=True)},
           ["--label-smoothing", "0.2", "--softcap", "5"])
    for dt in ("bf16", "f16"):
        yield ("nd indices, weights, smoothing, storage " + dt,
               {"x": x, "y": idx((6, 2, 3), 37),
                "w": rng.uniform(0.5, 2, 37).astype(np.float32)},
               ["--label-smoothing", "0.1", "--dtype", dt])
    yield ("unbatched (C)",
           {"x": rng.standard_normal(11).astype(np.float32),
            "y": np.array(4, dtype=np.int64)}, [])


def run(cmd):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clxent", required=True)
    ap.add_argument("--mpiexec", required=True)
    ap.add_argument("--device", default=None)
    args = ap.parse_args()
    mpi = [args.mpiexec, "--oversubscribe"]
    if os.geteuid() == 0:
        mpi.append("--allow-run-as-root")
    dev = ["--device", args.device] if args.device else []
    grids = [(2, "vocab"), (2, "batch"), (4, "vocab"), (4, "batch"),
             (4, "2x2")]
    rng = np.random.default_rng(5)
    failures = 0
    with tempfile.TemporaryDirectory() as d:
        def path(name):
            return os.path.join(d, name + ".npy")
        for name, arrays, opts in cases(rng):
            flags = ["--input", path("x")]
            for key, flag in (("y", "--targets"), ("p", "--probs"),
                              ("w", "--weights")):
                if key in arrays:
                    flags += [flag, path(key)]
            for key, value in arrays.items():
                np.save(path(key), value)
            outs = ["--loss-out", "--grad-out", "--lse-out"]
            ref = run([args.clxent, "run"] + dev + flags + opts +
                      [o for k, o in enumerate(outs)
                       for o in (o, path("r%d" % k))])
            if ref.returncode != 0:
                print("FAIL %s: unsharded run: %s" % (name, ref.stderr))
                failures += 1
                continue
            for ranks, grid in grids:
                for k in range(3):  # a run that writes nothing fails
                    if os.path.exists(path("s%d" % k)):
                        os.remove(path("s%d" % k))
                got = run(mpi + ["-np", str(ranks), args.clxent, "run"] + dev +
                          flags + opts + ["--shard", grid] +
                          [o for k, o in enumerate(outs)
                           for o in (o, path("s%d" % k))])
                what = "%s, %d ranks, --shard %s" % (name, ranks, grid)
                if got.returncode != 0:
                    print("FAIL %s: exit %d: %s" % (what, got.returncode,
                                                   got.stderr[-2000:]))
                    failures += 1
                    continue
                worst = 0.0
                diffs = []
                for k in range(3):
                    a, b = np.load(path("r%d" % k)), np.load(path("s%d" % k))
                    if a.shape != b.shape:
                        worst = float("inf")
                        break
                    diffs.append(float(np.max(np.abs(a - b), initial=0.0)))
                    tol = 1e-5 * np.maximum(1.0, np.abs(a)) if k != 1 else 1e-5
                    if k == 1 and "--dtype" in opts:
                        # a gradient stored in 16 bits: the two runs may
                        # round one f32 value to neighbouring 16-bit ones
                        tol = np.maximum(1e-5, 2.0 ** -7 * np.abs(a))
                    # NaN where the unsharded run has none is the worst
                    # error (max(0.0, nan) would be 0.0)
                    with np.errstate(invalid="ignore"):
                        err = np.atleast_1d(np.abs(a - b) / tol)
                    a, b = np.atleast_1d(a), np.atleast_1d(b)
                    err[(a == b) | (np.isnan(a) & np.isnan(b))] = 0.0
                    err[np.isnan(err)] = np.inf
                    worst = max(worst, float(np.max(err, initial=0.0)))
                ok = worst <= 1.0
                failures += not ok
                print("%s %s (worst error / bound %.3g; max |diff| loss %.3g, "
                      "grad %.3g, lse %.3g)" %
                      (("ok  " if ok else "FAIL", what, worst) +
                       tuple(diffs + [float("nan")] * (3 - len(diffs)))))
        # a class index past C on the ranks: every rank fails alike
        np.save(path("x"), rng.standard_normal((4, 10)).astype(np.float32))
        np.save(path("y"), np.array([1, 2, 10, 3], dtype=np.int64))
        bad = run(mpi + ["-np", "2", args.clxent, "run"] + dev +
                  ["--input", path("x"), "--targets", path("y"),
                   "--shard", "batch"])
        ok = bad.returncode == 1 and "TARGET_OUT_OF_RANGE" in bad.stderr
        failures += not ok
        print("%s bad class index: exit %d, %s" %
              ("ok  " if ok else "FAIL", bad.returncode,
               bad.stderr.strip().splitlines()[-1:] or ""))
    print("check_run_shard: %d failure(s)" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
