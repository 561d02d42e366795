"""Throughput of DeepFeatureExtractor.transform against hand-written torch loops.

Prints images/second for three ways of featurising the same uint8 images with
the same resnet50 (random weights; speed does not depend on them):

* skfeat: ``DeepFeatureExtractor.transform`` on the raw uint8 arrays, so its
  time includes decoding, resizing and normalising;
* bare: a torch loop over tensors resized and normalised beforehand (eval,
  inference mode, channels-last): the floor for the forward pass alone;
* naive: the same loop in fp32 NCHW with autograd left on.

Then reports the peak RSS of a separate process that extracts features of
``--files`` PNG images read from disk, next to that process's footprint with
torch and the model loaded but no image, and to the memory the images would
take decoded in one array.

Targets (CPU, resnet50, 224 px): skfeat >= 0.9x bare and >= 1.3x naive.

Usage: python benchmarks/bench_extract.py [--images 96] [--rounds 2] [--files 5000]
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import PIL.Image
import torch
from _timing import best_of

from skfeat import DeepFeatureExtractor
from skfeat.extraction._cache import cached_backbone
from skfeat.extraction._inputs import image_dataset
from skfeat.models import get_backbone

MODEL = "resnet50"


def _loop(network, tensors, batch_size, channels_last, inference):
    context = torch.inference_mode() if inference else torch.enable_grad()
    with context:
        for start in range(0, len(tensors), batch_size):
            batch = tensors[start : start + batch_size]
            if channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            network(batch)


def throughput(n_images, rounds, batch_size):
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, (n_images, 256, 256, 3), dtype=np.uint8)
    extractor = DeepFeatureExtractor(
        MODEL, weights=None, batch_size=batch_size, device="cpu"
    )
    backbone = cached_backbone(
        MODEL, weights=None, layer=None, pooling="avg", in_features=None, device="cpu"
    )
    prep = backbone.preprocessing
    dataset = image_dataset(images, prep.resize_and_crop)
    tensors = prep.normalize(torch.stack([dataset[i] for i in range(n_images)]))
    naive_net = get_backbone(MODEL, weights=None).eval()  # fp32, NCHW, fresh module

    methods = {
        "skfeat": lambda: extractor.transform(images),
        "bare": lambda: _loop(backbone, tensors, batch_size, True, True),
        "naive": lambda: _loop(naive_net, tensors, batch_size, False, False),
    }
    best_of(
        {name: lambda fn=fn: fn() for name, fn in methods.items()}, rounds=1
    )  # warm-up
    best, _ = best_of(methods, rounds)
    rates = {name: n_images / seconds for name, seconds in best.items()}
    print(
        f"threads={torch.get_num_threads()} images={n_images} "
        f"batch={batch_size} model={MODEL}"
    )
    for name, rate in rates.items():
        print(f"  {name:7s} {rate:7.2f} images/s")
    print(f"skfeat / bare  = {rates['skfeat'] / rates['bare']:.3f}  (target >= 0.9)")
    print(f"skfeat / naive = {rates['skfeat'] / rates['naive']:.3f}  (target >= 1.3)")


# The child's own high-water mark: VmHWM belongs to the process image and is
# reset by exec, while getrusage's ru_maxrss keeps the parent's peak from fork.
_PEAK_RSS = """
def peak_rss_gib():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) / 2**20
"""

_RSS_CHILD = (
    _PEAK_RSS
    + """
import sys, glob, time
from skfeat import DeepFeatureExtractor
from skfeat.extraction._cache import cached_backbone
cached_backbone(sys.argv[2], weights=None, layer=None, pooling='avg', in_features=None,
                device='cpu')
baseline = peak_rss_gib()
paths = sorted(glob.glob(sys.argv[1] + '/*.png'))
start = time.perf_counter()
features = DeepFeatureExtractor(sys.argv[2], weights=None, image_size=int(sys.argv[3]),
                                batch_size=32, device='cpu').transform(paths)
seconds = time.perf_counter() - start
print(features.shape[0], features.shape[1], seconds, baseline, peak_rss_gib())
"""
)


def peak_rss(n_files, image_size):
    rng = np.random.RandomState(0)
    with tempfile.TemporaryDirectory() as folder:
        for i in range(n_files):
            side = int(rng.randint(200, 320))
            image = rng.randint(0, 256, (side, side + 40, 3), dtype=np.uint8)
            PIL.Image.fromarray(image).save(os.path.join(folder, f"{i:05d}.png"))
        output = subprocess.run(
            [sys.executable, "-c", _RSS_CHILD, folder, MODEL, str(image_size)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
    n, d = int(output[0]), int(output[1])
    seconds, baseline, peak = (float(value) for value in output[2:5])
    decoded_gib = n * 3 * 260 * 300 / 2**30
    print(
        f"files={n} model={MODEL} image_size={image_size} features=({n}, {d}) "
        f"time={seconds:.1f}s peak RSS={peak:.2f} GiB, of which torch + the model "
        f"before any image: {baseline:.2f} GiB (the decoded uint8 images alone "
        f"would take {decoded_gib:.2f} GiB)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--file-image-size", type=int, default=64)
    args = parser.parse_args()
    if args.images:
        throughput(args.images, args.rounds, args.batch_size)
    if args.files:
        peak_rss(args.files, args.file_image_size)
