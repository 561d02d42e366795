"""SeAClassifier on many feature rows: time per epoch, peak memory, float32 vs float64.

For every row count (default 12.5k, 50k and 200k rows of 2,048 float32
features, 10 classes, Gaussian), each precision runs in its own child
process, which:

1. imports skfeat and runs a tiny fit, then reads its peak RSS (``VmHWM``):
   the footprint of Python, torch and the engine before any data;
2. draws the feature matrix in float32, in chunks (no float64 temporary);
3. fits ``SeAClassifier(max_epochs=--epochs)`` on it and reads its peak RSS
   again.

Printed per run: seconds per epoch (the shortest of the engine's own epoch
durations, the most repeatable figure on a shared machine; the collapse
check is left out), and the fit's peak memory relative to the
feature matrix, ``(peak - footprint before data) / matrix bytes``: the
matrix itself is 1.0, so this counts the matrix plus the fit's working set
(target <= 1.5).  Then, per row count, float64 / float32 time (target >= 1.6
on CPU), and per precision the seconds per epoch per 10k rows across sizes
(linear growth keeps it flat).

Usage: python benchmarks/bench_sea_scale.py [--rows 12500 50000 200000]
       [--features 2048] [--epochs 3] [--threads 1] [--device cpu]
"""

import argparse
import subprocess
import sys

# The child's own high-water mark: VmHWM belongs to the process image and is
# reset by exec, while getrusage's ru_maxrss keeps the parent's peak from fork.
_CHILD = """
import sys
import numpy as np
import torch
from skfeat import SeAClassifier

def peak_rss_bytes():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) * 1024

n, d, epochs, threads = (int(value) for value in sys.argv[1:5])
precision, device = sys.argv[5], sys.argv[6]
torch.set_num_threads(threads)
rng = np.random.default_rng(0)
tiny = rng.standard_normal((64, d), dtype=np.float32)
SeAClassifier(max_epochs=1, precision=precision, device=device).fit(
    tiny, np.arange(64) % 10)
before = peak_rss_bytes()
X = np.empty((n, d), dtype=np.float32)
for start in range(0, n, 512):  # small chunks: the generator's temporaries stay small
    X[start:start + 512] = rng.standard_normal(
        (len(X[start:start + 512]), d), dtype=np.float32)
y = rng.integers(0, 10, n)
clf = SeAClassifier(eta=0.4, max_epochs=epochs, precision=precision, device=device,
                    random_state=0).fit(X, y)
seconds = float(np.min(clf.net_.history[:, "dur"]))
print(seconds, (peak_rss_bytes() - before) / X.nbytes, X.nbytes)
"""


def run_child(n, d, epochs, threads, precision, device):
    arguments = [str(n), str(d), str(epochs), str(threads), precision, device]
    output = subprocess.run(
        [sys.executable, "-c", _CHILD, *arguments],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return float(output[0]), float(output[1]), int(output[2])


def main(rows, d, epochs, threads, device):
    print(
        f"SeAClassifier(eta=0.4, batch_size=256), {d} features, 10 classes, "
        f"device={device}, torch threads={threads}, epochs={epochs}"
    )
    per_epoch = {}
    for n in rows:
        for precision in ("float32", "float64"):
            seconds, memory, nbytes = run_child(
                n, d, epochs, threads, precision, device
            )
            per_epoch[n, precision] = seconds
            print(
                f"  rows={n:>8d} {precision}: {seconds:8.2f} s/epoch   peak "
                f"memory / matrix ({nbytes / 2**20:.0f} MiB) = {memory:.2f} "
                "(target <= 1.5)"
            )
        ratio = per_epoch[n, "float64"] / per_epoch[n, "float32"]
        print(f"  rows={n:>8d} float64 / float32 time = {ratio:.2f} (target >= 1.6)")
    for precision in ("float32", "float64"):
        rates = ", ".join(f"{per_epoch[n, precision] / n * 1e4:.3f}" for n in rows)
        print(f"{precision} s/epoch per 10k rows at rows={list(rows)}: {rates}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[12500, 50000, 200000])
    parser.add_argument("--features", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    main(args.rows, args.features, args.epochs, args.threads, args.device)
