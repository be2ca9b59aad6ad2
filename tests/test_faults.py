"""Fault suite for the API and the CLI: bad inputs and failures give a clear message, lose nothing.

Every case asserts the message (what is wrong and what to do), that the caller's
inputs are untouched, and for the CLI that earlier output files survive and no
partial file is left behind. The widget's faults are in tests/widget/test_faults_widget.py.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import tifffile

from napari_self2seg import cli
from napari_self2seg.core import (
    DenoiserConfig,
    LiveParameters,
    PrimalDualConfig,
    Self2SegConfig,
    iterate,
    resegment,
    segment,
)

from .conftest import failing_stream

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from napari_self2seg.core import SegmentationResult
    from napari_self2seg.datasets import SyntheticImage

IMG = np.random.default_rng(1).normal(size=(32, 32))
FG, BG = [(8, 8, 16, 16)], [(0, 0, 4, 32)]


def call(**changes: Any) -> Callable[[], Any]:
    """An ``iterate`` call with one argument changed; it must fail when called, before any ``next()``."""
    kwargs: dict[str, Any] = {"fg_boxes": FG, "bg_boxes": BG, "device": "cpu", **changes}
    image = kwargs.pop("image", IMG)
    return lambda: iterate(image, **kwargs)


API_CASES: dict[str, tuple[Callable[[], Any], str]] = {
    "image None": (call(image=None), r"no image was given .*None"),
    "image of strings": (call(image=np.array([["a"] * 32] * 32)), r"real-valued .*array of numbers"),
    "ragged list image": (call(image=[[1, 2], [3]]), r"could not turn the image into an array|real-valued"),
    "image 1-D": (call(image=np.zeros(40)), r"2-D \(Y, X\)"),
    "image stack": (call(image=np.zeros((30, 32, 32))), r"stack"),
    "image channels unnamed": (call(image=np.zeros((3, 32, 32))), r"pass channel_axis=0"),
    "image RGB": (call(image=np.zeros((32, 32, 3))), r"RGB"),
    "image tiny": (call(image=np.ones((8, 8))), r"too small"),
    "image NaN": (call(image=np.full((32, 32), np.nan)), r"NaN or infinite"),
    "image constant": (call(image=np.full((32, 32), 3.0)), r"constant"),
    "image complex": (call(image=np.ones((32, 32), complex)), r"real-valued"),
    "flat box tuple": (call(fg_boxes=(8, 8, 16, 16)), r"one flat box .*wrap it in a list: \[\(8, 8, 16, 16\)\]"),
    "string coordinates": (call(fg_boxes=[("8", "8", "16", "16")]), r"coordinates must be numbers, got '8'"),
    "box of 3 numbers": (call(fg_boxes=[(8, 8, 16)]), r"4 numbers"),
    "box with NaN": (call(fg_boxes=[(8, np.nan, 16, 16)]), r"NaN or infinity"),
    "box outside": (call(bg_boxes=[(40, 40, 50, 50)]), r"outside the 32×32 image"),
    "box is a number": (call(fg_boxes=[5]), r"must be 4 numbers .*list of boxes"),
    "boxes a string": (call(fg_boxes="8 8 16 16"), r"list of \(y0, x0, y1, x1\) boxes"),
    "no background box": (call(bg_boxes=[]), r"no box was given for background"),
    "class without a box": (
        call(fg_boxes=None, bg_boxes=None, boxes={0: [(0, 0, 4, 32)], 2: [(8, 8, 16, 16)]}),
        r"no box was given for class 1",
    ),
    "seed 2**64": (call(seed=2**64), r"seed must be between 0 and 2\*\*63 - 1"),
    "seed negative": (call(seed=-1), r"seed must be between"),
    "seed float": (call(seed=1.5), r"seed must be an integer"),
    "seed string": (call(seed="1"), r"seed must be an integer"),
    "device unknown": (call(device="tpu"), r"unknown device 'tpu'"),
    "config a dict": (call(config={"lam": 0.04}), r"must be a Self2SegConfig"),
    "init_mask without init mask": (call(init_mask=np.ones((32, 32))), r"only used with init='mask'"),
    "init_mask wrong shape": (
        call(config=Self2SegConfig(init="mask"), init_mask=np.ones((4, 4))),
        r"init_mask has shape",
    ),
    "init_mask one region": (
        call(config=Self2SegConfig(init="mask"), init_mask=np.zeros((32, 32))),
        r"both foreground .*and background",
    ),
    "lam string": (
        lambda: Self2SegConfig(lam="0.04"),  # type: ignore[arg-type]
        r"lam \(λ\) must be a number > 0 or 'auto', got '0.04'; write numbers without quotes",
    ),
    "lam inf": (lambda: Self2SegConfig(lam=float("inf")), r"lam \(λ\) must be finite"),
    "lam NaN": (lambda: Self2SegConfig(lam=float("nan")), r"lam \(λ\) must be finite"),
    "lam zero": (lambda: Self2SegConfig(lam=0.0), r"must be > 0"),
    "mu inf": (lambda: Self2SegConfig(mu=float("inf")), r"mu must be finite"),
    "mu negative": (lambda: Self2SegConfig(mu=-1.0), r"mu \(µ\) must be >= 0"),
    "experts 3": (lambda: Self2SegConfig(experts=3), r"experts must be a tuple of expert kinds"),  # type: ignore[arg-type]
    "init unknown": (lambda: Self2SegConfig(init="magic"), r"init must be one of"),  # type: ignore[arg-type]
    "threshold 1.5": (lambda: Self2SegConfig(threshold=1.5), r"threshold must be in \(0, 1\)"),
    "max_outer_iter bool": (lambda: Self2SegConfig(max_outer_iter=True), r"must be an integer"),
    "width float": (lambda: DenoiserConfig(width=2.5), r"width must be an integer"),  # type: ignore[arg-type]
    "steps too large": (lambda: PrimalDualConfig(tau=1.0, sigma=1.0), r"tau \* sigma \* 8 must be <= 1"),
    "live λ inf": (lambda: LiveParameters(lam=float("inf")), r"must be finite"),
    "live λ string": (lambda: LiveParameters(lam="0.1"), r"must be a number"),  # type: ignore[arg-type]
    "live µ NaN": (lambda: LiveParameters(mu=float("nan")), r"must be finite"),
}


@pytest.mark.parametrize("case", list(API_CASES))
def test_api_fault_is_refused_at_the_call_with_a_fix(case: str) -> None:
    before = IMG.copy()
    fault, message = API_CASES[case]
    with pytest.raises(ValueError, match=message):
        fault()
    np.testing.assert_array_equal(IMG, before)  # the caller's image is never modified


@pytest.fixture(scope="module")
def finished(textures: SyntheticImage) -> SegmentationResult:
    cfg = Self2SegConfig(
        lam=0.02,
        max_outer_iter=2,
        denoiser=DenoiserConfig(width=8, n_blocks=2, patience=20, average_last=20, max_steps=300),
        solver=PrimalDualConfig(max_iter=2000, gap_tol=1e-5),
    )
    boxes = {1: [textures.fg_box], 0: [textures.bg_box]}
    return segment(textures.image, cfg, boxes=boxes, device="cpu", keep_problem=True)


@pytest.mark.parametrize(
    ("lam", "message"), [(float("inf"), "finite"), (float("nan"), "finite"), (0.0, "> 0"), ("0.1", "a number")]
)
def test_resegment_refuses_bad_lambda_and_keeps_the_result(
    finished: SegmentationResult, lam: Any, message: str
) -> None:
    mask = finished.mask.copy()
    with pytest.raises(ValueError, match=message):
        resegment(finished, lam=lam)
    np.testing.assert_array_equal(finished.mask, mask)


def test_resegment_of_a_lean_result_says_how_to_keep_the_problem(finished: SegmentationResult) -> None:
    lean = dataclasses.replace(finished, problem=None)
    with pytest.raises(ValueError, match=r"segment\(\.\.\., keep_problem=True\)"):
        resegment(lean, lam=0.1)


def test_huge_float64_values_are_normalised_without_overflow(tiny_config: Self2SegConfig) -> None:
    rng = np.random.default_rng(0)
    truth = np.zeros((32, 32), bool)
    truth[8:24, 8:24] = True
    image = np.where(truth, 0.9e308, -0.9e308) + rng.normal(0, 1e306, truth.shape)
    before = image.copy()
    cfg = dataclasses.replace(tiny_config, experts=("constant", "network"), init="threshold", max_outer_iter=1)
    result = segment(image, cfg, device="cpu")
    assert np.isfinite(result.denoised).all() and np.isfinite(result.energies).all()
    assert (result.mask == truth).mean() > 0.95 and not result.degenerate
    np.testing.assert_array_equal(image, before)


# ------------------------------------------------------------------------------------------- CLI


@pytest.fixture
def small_cli(monkeypatch: pytest.MonkeyPatch, tiny_config: Self2SegConfig) -> None:
    monkeypatch.setattr(cli, "preset", lambda name: dataclasses.replace(tiny_config, max_outer_iter=1))


def _write_input(tmp_path: Path, textures: SyntheticImage) -> Path:
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, textures.image.astype(np.float32))
    return path


def _boxes(textures: SyntheticImage) -> list[str]:
    return ["--fg-box", *map(str, textures.fg_box), "--bg-box", *map(str, textures.bg_box), "--device", "cpu", "-q"]


def _garbage(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


CLI_INPUT_CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing file": (lambda d: d / "nope.tif", "does not exist"),
    "a folder": (lambda d: d, "is a folder, not an image file"),
    "empty tif": (lambda d: _garbage(d / "e.tif", b""), "is empty (0 bytes)"),
    "random bytes tif": (
        lambda d: _garbage(d / "r.tif", np.random.default_rng(0).bytes(4096)),
        "damaged or not a TIFF/PNG/JPEG",
    ),
    "empty png": (lambda d: _garbage(d / "e.png", b""), "is empty (0 bytes)"),
    "garbage png": (lambda d: _garbage(d / "g.png", b"not a png at all" * 20), "damaged or not a TIFF/PNG/JPEG"),
}


@pytest.mark.parametrize("case", list(CLI_INPUT_CASES))
def test_cli_unreadable_input_gives_one_clear_line(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    make, message = CLI_INPUT_CASES[case]
    (tmp_path / "in").mkdir()
    source = make(tmp_path / "in")
    out = tmp_path / "out" / "mask.tif"
    assert cli.main(["segment", str(source), "--mask-out", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--lam", "inf"], "lam (λ) must be finite"),
        (["--lam", "nan"], "lam (λ) must be finite"),
        (["--mu", "inf"], "mu must be finite"),
        (["--seed", str(2**64)], "seed must be between"),
    ],
)
def test_cli_non_finite_parameters_are_refused(
    tmp_path: Path, textures: SyntheticImage, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _write_input(tmp_path, textures)
    assert cli.main(["segment", str(source), *_boxes(textures), *extra, "--mask-out", str(tmp_path / "m.tif")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m.tif").exists()


def _forbid_run(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_run(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the run started although an output path is unusable")

    monkeypatch.setattr(cli, "_consume", no_run)


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ({"--mask-out": "/proc/self2seg-nowhere/m.tif"}, "cannot write --mask-out"),
        ({"--json-out": "/proc/self2seg-nowhere/run.json"}, "cannot write --json-out"),
        ({"--denoised-out": "{tmp}"}, "--denoised-out"),
        ({"--mask-out": "{tmp}/in.tif"}, "is the input image"),
        ({"--json-out": "{tmp}/old_mask.tif"}, "name the same file"),
    ],
)
def test_cli_output_paths_are_checked_before_the_run_and_nothing_is_overwritten(
    tmp_path: Path,
    textures: SyntheticImage,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    outputs: dict[str, str],
    message: str,
) -> None:
    _forbid_run(monkeypatch)
    source = _write_input(tmp_path, textures)
    old_mask = tmp_path / "old_mask.tif"
    tifffile.imwrite(old_mask, np.full((4, 4), 7, np.uint8))
    paths = {"--mask-out": str(old_mask), **{k: v.format(tmp=tmp_path) for k, v in outputs.items()}}
    argv = ["segment", str(source), *_boxes(textures), *[x for kv in paths.items() for x in kv]]
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err
    assert (tifffile.imread(old_mask) == 7).all()  # the earlier output is untouched
    assert not list(tmp_path.glob(".*.part"))


def test_cli_run_failure_writes_nothing_and_keeps_earlier_files(
    tmp_path: Path,
    textures: SyntheticImage,
    small_cli: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = _write_input(tmp_path, textures)
    mask, record = tmp_path / "mask.tif", tmp_path / "run.json"
    tifffile.imwrite(mask, np.full((4, 4), 7, np.uint8))
    record.write_text('{"old": true}')
    monkeypatch.setattr(cli, "iterate", failing_stream("CUDA error: device-side assert triggered"))
    argv = ["segment", str(source), *_boxes(textures), "--mask-out", str(mask), "--json-out", str(record)]
    assert cli.main(argv) == 1
    assert "no output was written" in capsys.readouterr().err
    assert (tifffile.imread(mask) == 7).all() and json.loads(record.read_text()) == {"old": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif", "mask.tif", "run.json"]


def test_cli_success_replaces_all_outputs_with_strict_json(
    tmp_path: Path, textures: SyntheticImage, small_cli: None
) -> None:
    source = _write_input(tmp_path, textures)
    mask, record = tmp_path / "mask.tif", tmp_path / "run.json"
    tifffile.imwrite(mask, np.full((4, 4), 7, np.uint8))
    argv = ["segment", str(source), *_boxes(textures), "--mask-out", str(mask), "--json-out", str(record)]
    assert cli.main(argv) == 0
    assert tifffile.imread(mask).shape == textures.image.shape
    parsed = json.loads(record.read_text(), parse_constant=lambda name: pytest.fail(f"non-strict JSON: {name}"))
    assert parsed["degenerate"] is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif", "mask.tif", "run.json"]
