"""Throughput of data-parallel ``AugSelfExtractor.fit`` on 1 and 2 processes.

SimCLR with the crop and colour AugSelf heads on random uint8 images, the
same global batch for every run, each process on one thread (CPU) or one GPU.
Every run is started by ``torchrun``; its rank 0 reports the images per
second of the epochs after the first (skorch's per-epoch ``dur``).  Compared:

* 1 process;
* 2 processes, negatives gathered and batch norm synchronised (the defaults,
  equal to the 1-process fit);
* 2 processes, negatives kept local (``gather_negatives=False``), for the cost
  of gathering: the ratio of the gathered run's images per second to this one's;
* 2 processes, local negatives and plain batch norm (no collective but the
  gradient all-reduce and the logged losses).

Usage: python benchmarks/bench_distributed.py [--model resnet18] [--n 128]
       [--size 32] [--batch 64] [--epochs 2] [--device cpu]

``--device cuda`` runs one process per GPU (2 GPUs needed).
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from skfeat import AugSelfExtractor

RUN_VARIABLE = "SKFEAT_BENCH_DISTRIBUTED_RUN"  # a run's settings, for its processes
RUNS = [  # (processes, gather_negatives, sync_batchnorm)
    (1, True, True),
    (2, True, True),
    (2, False, True),
    (2, False, False),
]


def worker(args):
    """One process of a run: fit, then rank 0 writes the images per second."""
    from accelerate import Accelerator

    args = argparse.Namespace(**args)
    torch.set_num_threads(1)
    accelerator = Accelerator(cpu=args.device == "cpu")
    images = np.random.RandomState(0).randint(
        0, 256, (args.n, args.size, args.size, 3), np.uint8
    )
    extractor = AugSelfExtractor(
        args.model,
        weights=None,
        base="simclr",
        aug_types=("crop", "color"),
        max_epochs=args.epochs,
        batch_size=args.batch,
        lr=0.03,
        accelerator=accelerator,
        gather_negatives=args.gather,
        sync_batchnorm=args.sync,
        random_state=0,
    ).fit(images)
    seconds = [float(d) for d in extractor.net_.history[1:, "dur"]]
    if accelerator.is_main_process:
        Path(args.report).write_text(json.dumps(args.n / float(np.mean(seconds))))


def launch(args, processes, gather, sync, report):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(processes),
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(port),
        __file__,
    ]
    run = {**vars(args), "gather": gather, "sync": sync, "report": report}
    env = dict(os.environ, OMP_NUM_THREADS="1", **{RUN_VARIABLE: json.dumps(run)})
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{processes} processes failed:\n{done.stderr[-3000:]}")
    return json.loads(Path(report).read_text())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(
        f"{args.model}, {args.n} images of {args.size} px, global batch "
        f"{args.batch}, {args.epochs} epochs ({args.device}, 1 thread per process)"
    )
    rates = {}
    with tempfile.TemporaryDirectory() as directory:
        for i, (processes, gather, sync) in enumerate(RUNS):
            report = os.path.join(directory, f"run{i}.json")
            rates[processes, gather, sync] = launch(
                args, processes, gather, sync, report
            )
    print(f"{'processes':>9} {'negatives':>9} {'batch norm':>10} {'images/s':>9}")
    for (processes, gather, sync), rate in rates.items():
        negatives = "gathered" if gather else "local"
        norm = "synced" if sync else "local"
        if processes == 1:
            negatives = norm = "-"
        print(f"{processes:>9} {negatives:>9} {norm:>10} {rate:>9.1f}")
    speedup = rates[2, True, True] / rates[1, True, True]
    gathering = rates[2, True, True] / rates[2, False, True]
    print(f"speed-up of 2 processes over 1 (gathered, synced): {speedup:.2f}x")
    print(f"gathered / local negatives, 2 processes: {gathering:.3f}")


if __name__ == "__main__":
    if RUN_VARIABLE in os.environ:  # a process started by launch()
        worker(json.loads(os.environ[RUN_VARIABLE]))
    else:
        main()
