"""Training throughput of ``AugSelfExtractor.fit`` against a bare torch loop.

Random uint8 images, SimCLR with the crop and colour AugSelf heads, one epoch.
Compared, interleaved in one run (best of ``--rounds``):

* ``fit``: ``AugSelfExtractor.fit`` (decoding, the skorch engine, history);
* ``fit_base``: the same with ``aug_weights=0`` (no AugSelf heads), for the
  cost of the heads over the base method (target: at most 10 %);
* ``bare``: a hand-written torch loop over the same decoded uint8 tensor doing
  the same augmentation, forward, loss and backward (target: ``fit`` reaches
  at least 0.85x its images per second);
* ``augment``: the augmentation of both views alone, as a share of ``bare``.

It prints the process's peak resident memory, and on CUDA the peak GPU
memory of ``fit``.

Usage: python benchmarks/bench_ssl.py [--model resnet18] [--n 256] [--size 64]
       [--batch 64] [--rounds 3] [--device cpu]
"""

import argparse
import resource

import numpy as np
import torch
from _timing import best_of

from skfeat import AugSelfExtractor
from skfeat.extraction._augself import image_augmentations
from skfeat.extraction._inputs import decode_uint8
from skfeat.models import get_backbone
from skfeat.nn import AugSelfHeads, nt_xent_loss, projection_mlp


def bare_loop(images, model, batch, device, steps_only=False):
    """One epoch of SimCLR + AugSelf heads written directly in torch."""
    generator = torch.Generator().manual_seed(0)
    backbone = get_backbone(model).to(device).train()
    size = images.shape[-1]
    views = image_augmentations(size, ("crop", "color"))
    with torch.no_grad():
        dim = backbone.eval()(torch.zeros(2, 3, size, size, device=device)).shape[1]
    backbone.train()
    projector = projection_mlp(dim, dim, min(128, dim)).to(device)
    heads = AugSelfHeads(dim, views.aug_types, {"crop": 1.0, "color": 1.0}, 512)
    heads.to(device)
    parameters = [*backbone.parameters(), *projector.parameters(), *heads.parameters()]
    optimizer = torch.optim.SGD(parameters, lr=0.03, momentum=0.9, weight_decay=5e-4)
    order = torch.randperm(len(images), generator=generator)
    for rows in order.split(batch):
        x = images[rows].to(device)
        p1, p2 = views.sample(len(x), generator), views.sample(len(x), generator)
        v = torch.cat([views.apply(x, p1), views.apply(x, p2)])
        if steps_only:
            continue
        v = backbone.preprocessing.normalize(v).contiguous(
            memory_format=torch.channels_last
        )
        y1, y2 = backbone(v).chunk(2)
        d12, d21 = views.delta(p1, p2), views.delta(p2, p1)
        targets = {k: (d12[k].to(device), d21[k].to(device)) for k in d12}
        loss = nt_xent_loss(projector(y1), projector(y2)) + heads(y1, y2, targets)[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = torch.device(args.device)
    images = np.random.RandomState(0).randint(
        0, 256, (args.n, args.size, args.size, 3), dtype=np.uint8
    )
    decoded = decode_uint8(images, args.size)

    def fit(weights):
        extractor = AugSelfExtractor(
            args.model,
            weights=None,  # throughput of a random start: no weights file needed
            base="simclr",
            aug_weights=weights,
            max_epochs=1,
            batch_size=args.batch,
            image_size=args.size,
            device=args.device,
            random_state=0,
        )
        return lambda: extractor.fit(images)

    seconds, _ = best_of(
        {
            "fit": fit(1.0),
            "fit_base": fit(0.0),
            "bare": lambda: bare_loop(decoded, args.model, args.batch, device),
            "augment": lambda: bare_loop(
                decoded, args.model, args.batch, device, steps_only=True
            ),
        },
        args.rounds,
    )
    rate = {name: args.n / s for name, s in seconds.items()}
    print(
        f"{args.model} on {device}, {args.n} images of {args.size} px, "
        f"batch {args.batch}, best of {args.rounds}"
    )
    for name in ("fit", "fit_base", "bare"):
        print(f"{name:>9}: {rate[name]:8.1f} images/s ({seconds[name]:.2f} s)")
    print(f"fit / bare throughput: {rate['fit'] / rate['bare']:.3f}x (target >= 0.85)")
    heads = seconds["fit"] / seconds["fit_base"] - 1
    print(f"AugSelf heads' cost over the base method: {heads:+.1%} (target <= 10%)")
    share = seconds["augment"] / seconds["bare"]
    print(f"augmentation share of the bare step: {share:.1%}")
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    print(f"peak resident memory of the whole run: {peak_rss:.0f} MiB")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        fit(1.0)()
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        print(f"peak GPU memory of fit: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
