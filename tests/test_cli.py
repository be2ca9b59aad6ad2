from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from typing import TYPE_CHECKING

import numpy as np
import pytest
import tifffile

from napari_self2seg import cli
from napari_self2seg.core import dice

if TYPE_CHECKING:
    from pathlib import Path

    from napari_self2seg.datasets import SyntheticImage


def _small_preset(monkeypatch: pytest.MonkeyPatch, tiny) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(cli, "preset", lambda name: tiny)


def test_cli_round_trip(tmp_path: Path, textures: SyntheticImage, tiny_config, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    _small_preset(monkeypatch, tiny_config)
    image = tmp_path / "in.tif"
    tifffile.imwrite(image, ((textures.image - textures.image.min()) * 1000).astype(np.uint16))
    args = [
        "segment",
        str(image),
        "--fg-box",
        *map(str, textures.fg_box),
        "--bg-box",
        *map(str, textures.bg_box),
        "--lam",
        "0.02",
        "--seed",
        "1",
        "--device",
        "cpu",
        "--mask-out",
        str(tmp_path / "out" / "mask.tif"),
        "--denoised-out",
        str(tmp_path / "out" / "den.tif"),
        "--json-out",
        str(tmp_path / "out" / "run.json"),
    ]
    assert cli.main(args) == 0
    mask = tifffile.imread(tmp_path / "out" / "mask.tif")
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    assert dice(mask, textures.truth) >= 0.9
    assert tifffile.imread(tmp_path / "out" / "den.tif").shape == textures.image.shape
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["seed"] == 1 and record["config"]["lam"] == 0.02 and record["config"]["init"] == "boxes"
    assert len(record["energies"]) >= 2 and "segment" in record["timings_s"] and record["version"]
    assert "outer" in capsys.readouterr().err


def test_cli_automatic_choices_recorded_bad_values_refused(tmp_path: Path, tiny_config, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    _small_preset(monkeypatch, tiny_config)
    img = np.full((32, 32), 0.4, np.float32)
    img[8:24, 8:24] = 0.6
    img += np.random.default_rng(0).normal(0.0, 0.1, img.shape).astype(np.float32)
    tifffile.imwrite(tmp_path / "in.tif", img)
    common = ["segment", str(tmp_path / "in.tif"), "--fg-box", "10", "10", "22", "22", "--bg-box", "0", "0", "6", "32"]
    outputs = ["--device", "cpu", "-q", "--mask-out", str(tmp_path / "m.tif"), "--json-out", str(tmp_path / "r.json")]
    settings = ["--texture-window", "3", "--texture-features", "0.25", "--local-means", "8"]
    assert cli.main([*common, "--lam", "auto", "--experts", "auto", "--max-outer", "1", *settings, *outputs]) == 0
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["automatic_lam"] is True and record["lam"] == record["config"]["lam"] > 0
    assert record["config"]["texture_window"] == 3 and record["config"]["local_means"] == 8
    assert record["config"]["texture_features"] == 0.25
    assert record["config"]["experts"] == ["constant", "constant"]  # the choice, not auto: intensity separates
    # without boxes a preset that thresholds by Otsu starts from the image's Otsu threshold (no denoiser)
    _small_preset(monkeypatch, dataclasses.replace(tiny_config, threshold="otsu", experts=("auto",), lam="auto"))
    assert cli.main([*common[:2], "--max-outer", "1", *outputs]) == 0
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["config"]["init"] == "threshold" and record["config"]["threshold"] == "otsu"
    assert record["timings_s"]["init"] == 0.0 and record["config"]["experts"] == ["constant", "constant"]
    square = np.zeros(img.shape, bool)
    square[8:24, 8:24] = True
    assert dice(tifffile.imread(tmp_path / "m.tif") > 0, square) > 0.9
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*common, "--experts", "3", *outputs])
    assert exit_info.value.code == 2 and "expected 1, 2 or 'auto'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*common, "--lam", "smooth", *outputs])
    assert exit_info.value.code == 2 and "expected a number such as 0.04, or 'auto'" in capsys.readouterr().err


def test_cli_reads_png(tmp_path: Path, tiny_config, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from skimage import io

    _small_preset(monkeypatch, tiny_config)
    img = np.zeros((32, 32), np.uint8)
    img[8:24, 8:24] = 200
    img += np.random.default_rng(0).integers(0, 40, img.shape, dtype=np.uint8)
    io.imsave(tmp_path / "in.png", img, check_contrast=False)
    code = cli.main(
        [
            "segment",
            str(tmp_path / "in.png"),
            "--init",
            "threshold",
            "--experts",
            "1",
            "--max-outer",
            "1",
            "--device",
            "cpu",
            "-q",
            "--mask-out",
            str(tmp_path / "m.tif"),
        ]
    )
    assert code == 0
    assert tifffile.imread(tmp_path / "m.tif")[16, 16] == 1


BAD_BOX_CLASS = (["--box", "x", "0", "0", "4", "4"], "--box needs a class index first")  # refused reading the boxes
BAD_LAM = (["--fg-box", "0", "0", "4", "4", "--bg-box", "10", "10", "20", "20", "--lam", "-1"], "lam")  # by the config


def _bad_input_argv(tmp_path: Path, extra: list[str]) -> list[str]:
    """Write a small input image and return the ``segment`` arguments with ``extra`` added."""
    tifffile.imwrite(tmp_path / "in.tif", np.random.default_rng(0).random((32, 32)).astype(np.float32))
    return ["segment", str(tmp_path / "in.tif"), *extra, "--mask-out", str(tmp_path / "m.tif")]


def _assert_refused(code: int, stderr: str, message: str, tmp_path: Path) -> None:
    """Exit code 2, exactly one line on stderr that holds ``message``, and no output written."""
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert not (tmp_path / "m.tif").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--fg-box", "0", "0", "4", "4"], "no box was given for background (class 0)"),
        (["--box", "2", "0", "0", "4", "4", "--box", "0", "10", "10", "20", "20"], "no box was given for class 1"),
        BAD_BOX_CLASS,
        (["--box", "300", "0", "0", "4", "4"], "--box class must be between 0"),
        (
            ["--box", "1", "0", "0", "4", "4", "--box", "0", "10", "10", "20", "20", "--constant-classes", "2"],
            "--constant-classes lists class 2",
        ),
        (
            ["--box", "1", "0", "0", "4", "4", "--box", "0", "9", "9", "20", "20", "--channel-axis", "0"],
            "the image is 2-D",
        ),
        (["--fg-box", "0", "0", "4", "4", "--bg-box", "90", "90", "99", "99"], "outside"),
        BAD_LAM,
        (
            ["--fg-box", "0", "0", "4", "4", "--bg-box", "10", "10", "20", "20", "--texture-window", "4"],
            "texture_window must be an odd size >= 1",
        ),
        (
            ["--fg-box", "0", "0", "4", "4", "--bg-box", "10", "10", "20", "20", "--texture-features", "-1"],
            "texture_features must be >= 0",
        ),
        (
            ["--fg-box", "0", "0", "4", "4", "--bg-box", "10", "10", "20", "20", "--local-means", "-2"],
            "local_means must be >= 0 pixels",
        ),
        (["--fg-box", "0", "0", "4", "4", "--bg-box", "10", "10", "20", "20", "--device", "tpu"], "unknown device"),
    ],
)
def test_cli_bad_input_exits_non_zero_with_one_line(
    tmp_path: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(_bad_input_argv(tmp_path, extra))
    _assert_refused(code, capsys.readouterr().err, message, tmp_path)


@pytest.mark.parametrize(("extra", "message"), [BAD_BOX_CLASS, BAD_LAM])
def test_the_installed_command_refuses_bad_input_with_one_line(tmp_path: Path, extra: list[str], message: str) -> None:
    """The same refusals through ``python -m``: no traceback, no warning, nothing else on stderr."""
    argv = _bad_input_argv(tmp_path, extra)
    proc = subprocess.run(
        [sys.executable, "-m", "napari_self2seg.cli", *argv], capture_output=True, text=True, timeout=120
    )
    _assert_refused(proc.returncode, proc.stderr, message, tmp_path)


def test_cli_missing_file_and_stack(tmp_path: Path) -> None:
    assert cli.main(["segment", str(tmp_path / "nope.tif"), "--mask-out", str(tmp_path / "m.tif")]) == 2
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((3, 32, 32), np.float32), photometric="minisblack")
    assert cli.main(["segment", str(tmp_path / "stack.tif"), "--mask-out", str(tmp_path / "m.tif")]) == 2


def test_cli_three_classes_write_class_indices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from napari_self2seg.datasets import three_textures

    sample = three_textures(64)
    tifffile.imwrite(tmp_path / "in.tif", sample.image)
    boxes = [arg for k, items in sample.boxes.items() for box in items for arg in ("--box", str(k), *map(str, box))]
    argv = ["segment", str(tmp_path / "in.tif"), *boxes, "--max-outer", "1", "--device", "cpu", "-q"]
    outputs = ["--mask-out", str(tmp_path / "labels.tif"), "--json-out", str(tmp_path / "run.json")]
    assert cli.main([*argv, "--constant-classes", "0", *outputs]) == 0
    labels = tifffile.imread(tmp_path / "labels.tif")
    assert labels.dtype == np.uint8 and labels.shape == sample.labels.shape and set(np.unique(labels)) == {0, 1, 2}
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["classes"] == 3 and record["config"]["experts"][0] == "constant"  # given; the others chosen:
    assert set(record["config"]["experts"][1:]) <= {"constant", "network"}
    assert sum(record["class_fractions"]) == labels.size and set(record["timings_s"]) >= {"expert_2", "segment"}


def test_cli_reads_a_colour_png_as_channels(tmp_path: Path, tiny_config, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    from napari_self2seg.datasets import hue_pair

    _small_preset(monkeypatch, dataclasses.replace(tiny_config, max_outer_iter=1))
    sample = hue_pair(48)
    rgba = np.dstack([np.clip(sample.image * 255, 0, 255), np.full(sample.labels.shape, 255)]).astype(np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "in.png")  # the alpha channel is dropped
    fg, bg = sample.boxes[1][0], sample.boxes[0][0]
    argv = ["segment", str(tmp_path / "in.png"), "--box", "1", *map(str, fg), "--box", "0", *map(str, bg)]
    outputs = ["--mask-out", str(tmp_path / "m.tif"), "--denoised-out", str(tmp_path / "d.tif")]
    assert cli.main([*argv, "--device", "cpu", "-q", *outputs]) == 0
    assert dice(tifffile.imread(tmp_path / "m.tif") == 1, sample.labels == 1) > 0.9
    assert tifffile.imread(tmp_path / "d.tif").shape == (48, 48, 3)


def test_cli_tiff_channels_need_the_channel_axis(tmp_path: Path, tiny_config, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from napari_self2seg.datasets import hue_pair

    _small_preset(monkeypatch, dataclasses.replace(tiny_config, max_outer_iter=1))
    sample = hue_pair(48)
    tifffile.imwrite(tmp_path / "in.tif", np.moveaxis(sample.image, -1, 0), photometric="minisblack")
    fg, bg = sample.boxes[1][0], sample.boxes[0][0]
    argv = ["segment", str(tmp_path / "in.tif"), "--box", "1", *map(str, fg), "--box", "0", *map(str, bg)]
    outputs = ["--device", "cpu", "-q", "--mask-out", str(tmp_path / "m.tif")]
    assert cli.main([*argv, *outputs]) == 2
    assert "pass channel_axis=0" in capsys.readouterr().err
    assert cli.main([*argv, "--channel-axis", "0", *outputs]) == 0
    assert dice(tifffile.imread(tmp_path / "m.tif") == 1, sample.labels == 1) > 0.9
