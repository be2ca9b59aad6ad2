from __future__ import annotations

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
    assert cli.main([*common, "--lam", "auto", "--experts", "auto", "--max-outer", "1", *outputs]) == 0
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["automatic_lam"] is True and record["lam"] == record["config"]["lam"] > 0
    assert record["config"]["experts"] in (1, 2)  # the choice made, not "auto"
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


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--fg-box", "0", "0", "4", "4"], "no background box"),
        (["--fg-box", "0", "0", "4", "4", "--bg-box", "90", "90", "99", "99"], "outside"),
        (["--fg-box", "0", "0", "4", "4", "--bg-box", "10", "10", "20", "20", "--lam", "-1"], "lam"),
        (["--fg-box", "0", "0", "4", "4", "--bg-box", "10", "10", "20", "20", "--device", "tpu"], "unknown device"),
    ],
)
def test_cli_bad_input_exits_non_zero_with_one_line(tmp_path: Path, extra: list[str], message: str) -> None:
    tifffile.imwrite(tmp_path / "in.tif", np.random.default_rng(0).random((32, 32)).astype(np.float32))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "napari_self2seg.cli",
            "segment",
            str(tmp_path / "in.tif"),
            *extra,
            "--mask-out",
            str(tmp_path / "m.tif"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert not (tmp_path / "m.tif").exists()


def test_cli_missing_file_and_stack(tmp_path: Path) -> None:
    assert cli.main(["segment", str(tmp_path / "nope.tif"), "--mask-out", str(tmp_path / "m.tif")]) == 2
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((3, 32, 32), np.float32), photometric="minisblack")
    assert cli.main(["segment", str(tmp_path / "stack.tif"), "--mask-out", str(tmp_path / "m.tif")]) == 2
