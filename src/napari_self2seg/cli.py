r"""``self2seg`` command line: segment one image, or many images, stacks and folders, headless.

Examples::

    self2seg segment cells.tif --box 1 10 10 40 40 --box 0 0 0 8 128 \\
        --mask-out classes.tif --denoised-out denoised.tif --json-out run.json \\
        --labels-out objects.tif --table-out objects.csv

    self2seg batch data/ more/*.tif --box 1 10 10 40 40 --box 0 0 0 8 128 --out results/

``--box CLASS Y0 X0 Y1 X1`` gives a box of class CLASS (0 is the background);
``--fg-box`` and ``--bg-box`` are the two-class shorthands for ``--box 1`` and
``--box 0``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

import numpy as np

from . import __version__
from .core import Phase, SegmentationResult, SolverState, dice, iterate, preset

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from .core.config import InitMode
from .batch_jobs import BatchSettings
from .batch_run import batch
from .core._validation import MAX_CLASS_INDEX
from .core.config import (
    AUTO,
    BINARY_EXPERTS,
    DEFAULT_PRESET,
    OTSU,
    PAPER_THRESHOLD,
    PRESETS,
    ExpertKind,
    InstanceConfig,
    Self2SegConfig,
    config_from_dict,
    expert_kinds,
)
from .core.instances import no_objects_reason
from .core.measurements import measure_instances, table_csv
from .image_files import read_image
from .output_files import OutputFiles
from .provenance import result_record
from .sample_data import load_noisy_nuclei

logger = logging.getLogger("napari_self2seg")

Box = tuple[float, float, float, float]

DSB_LAMBDA = 0.01
"""λ of the demo on the bundled σ = 30 nuclei crop."""


def _lam_argument(text: str) -> float | Literal["auto"]:
    """Parse ``--lam``: ``auto`` or a number (its range is checked with the other settings)."""
    if text.strip().lower() == AUTO:
        return AUTO
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 0.04, or 'auto'; got {text!r}") from None


def _experts_argument(text: str) -> tuple[ExpertKind, ...]:
    """Parse ``--experts``: the two-class shorthands 1, 2 or ``auto``."""
    value = text.strip().lower()
    if value in ("1", "2"):
        return BINARY_EXPERTS[int(value)]
    if value == AUTO:
        return BINARY_EXPERTS[AUTO]
    raise argparse.ArgumentTypeError(f"expected 1, 2 or 'auto'; got {text!r}")


def _box_argument(values: Sequence[str]) -> tuple[int, tuple[float, float, float, float]]:
    """Parse the five numbers of ``--box CLASS Y0 X0 Y1 X1``."""
    try:
        index = int(values[0])
    except ValueError:
        raise ValueError(f"--box needs a class index first (0 = background), got {values[0]!r}") from None
    if not 0 <= index <= MAX_CLASS_INDEX:
        raise ValueError(f"--box class must be between 0 (background) and {MAX_CLASS_INDEX}, got {index}")
    try:
        y0, x0, y1, x1 = (float(v) for v in values[1:])
    except ValueError:
        raise ValueError(f"--box coordinates must be numbers, got {' '.join(values[1:])}") from None
    return index, (y0, x0, y1, x1)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="self2seg", description="Self2Seg joint segmentation and denoising.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    seg = sub.add_parser("segment", help="segment one 2-D image (TIFF, PNG or JPEG; grey or colour)")
    seg.add_argument("image", type=Path, help="input image: 2-D grey, RGB PNG/JPEG, or a TIFF with --channel-axis")
    _add_run_options(seg)
    seg.add_argument(
        "--mask-out", type=Path, required=True, help="output TIFF of class indices (uint8; 0 = background)"
    )
    seg.add_argument("--denoised-out", type=Path, default=None, help="output denoised TIFF (float32)")
    seg.add_argument("--json-out", type=Path, default=None, help="JSON file with parameters, energies, timings")
    seg.add_argument(
        "--labels-out",
        type=Path,
        default=None,
        help="output TIFF of objects (int32; 0 = none, 1, 2, … one number per object in raster order): "
        "every class except the background split into objects",
    )
    seg.add_argument(
        "--table-out",
        type=Path,
        default=None,
        help="output CSV with one row per object of --labels-out (class, area, centroid, bounding box, "
        "eccentricity, solidity, mean/max intensity on the input and the denoised image)",
    )
    _add_object_options(seg)
    bat = sub.add_parser(
        "batch",
        help="segment many images, stacks and folders (on this machine or a dask cluster)",
        description="Segment every image named by files, folders and glob patterns; a stack (Z/T planes) runs its "
        "planes in order, each started from the one before. Writes OUT/NAME_mask.tif, OUT/NAME_denoised.tif, "
        "OUT/NAME.json (provenance) and OUT/summary.csv; inputs already done with the same file and settings "
        "are skipped. Exit code 1 if any input failed.",
    )
    bat.add_argument("inputs", nargs="+", help="image files (TIFF/OME-TIFF, PNG, JPEG), folders or glob patterns")
    bat.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    _add_run_options(bat)
    bat.add_argument(
        "--objects", action="store_true", help="also write OUT/NAME_labels.tif (objects) and OUT/NAME_table.csv"
    )
    _add_object_options(bat)
    bat.add_argument("--overwrite", action="store_true", help="run inputs again even where their record says done")
    bat.add_argument(
        "--no-warm-start",
        action="store_true",
        help="run every plane of a stack on its own (slower); planes start from the one before only with boxes",
    )
    bat.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes on this machine (default: one per core; one if the run uses this machine's GPU)",
    )
    bat.add_argument("--threads", type=int, default=None, help="torch threads per worker (default: cores / workers)")
    bat.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="submit to a running dask scheduler (tcp://host:8786) instead of starting workers here",
    )
    demo = sub.add_parser("demo", help="segment the bundled noisy nuclei sample and write the results")
    demo.add_argument("--out", type=Path, default=Path("self2seg-demo"), help="output folder (default: self2seg-demo)")
    demo.add_argument(
        "--preset", default=DEFAULT_PRESET, choices=PRESETS, help=f"settings preset (default: {DEFAULT_PRESET})"
    )
    demo.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    demo.add_argument("--gui", action="store_true", help="afterwards open napari with the result (needs a display)")
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress line on stderr")
    return parser


def _add_run_options(seg: argparse.ArgumentParser) -> None:
    """Add the options of a run that ``segment`` and ``batch`` share."""
    seg.add_argument(
        "--box",
        nargs=5,
        action="append",
        default=[],
        metavar=("CLASS", "Y0", "X0", "Y1", "X1"),
        help="box of class CLASS (0 = background, 1, 2, … the objects), half-open pixel coordinates; "
        "repeatable; every class from 0 to the largest needs a box",
    )
    box = {"nargs": 4, "type": float, "action": "append", "metavar": ("Y0", "X0", "Y1", "X1"), "default": []}
    seg.add_argument("--fg-box", help="two-class shorthand for --box 1 Y0 X0 Y1 X1", **box)  # type: ignore[arg-type]
    seg.add_argument("--bg-box", help="two-class shorthand for --box 0 Y0 X0 Y1 X1", **box)  # type: ignore[arg-type]
    seg.add_argument(
        "--channel-axis",
        type=int,
        default=None,
        help="axis of the colour/dye channels (at most 16); RGB PNG/JPEG files use -1 without it",
    )
    seg.add_argument(
        "--classes",
        type=int,
        default=None,
        help="number of regions for the threshold inits (multi-Otsu above 2; default 2); boxes bring their own",
    )
    seg.add_argument(
        "--init",
        choices=("boxes", "threshold", "denoise-threshold"),
        default=None,
        help="initialisation (default: boxes if boxes are given; else threshold, by Otsu, with the fast preset "
        "and the paper's denoise-threshold with --preset paper)",
    )
    seg.add_argument("--preset", default=None, choices=PRESETS, help=f"settings preset (default: {DEFAULT_PRESET})")
    seg.add_argument(
        "--lam",
        type=_lam_argument,
        default=None,
        help="TV weight λ: a number > 0, or 'auto' to choose it from the image (preset default: "
        f"{preset(DEFAULT_PRESET).lam}; the value used is in the JSON record)",
    )
    seg.add_argument("--mu", type=float, default=None, help="proximity weight µ (eq. 10)")
    seg.add_argument(
        "--experts",
        type=_experts_argument,
        default=None,
        help="two-class shorthand: 1: constant background; 2: a network expert per class; auto: constants "
        "(Chan–Vese) where they tell the boxes apart about as well as networks, networks otherwise (preset default: "
        f"{', '.join(preset(DEFAULT_PRESET).experts)}, the last kind repeated for further classes)",
    )
    seg.add_argument(
        "--constant-classes",
        type=int,
        nargs="+",
        default=None,
        metavar="K",
        help="classes whose expert is a constant (their mean, as in Chan-Vese) instead of a network",
    )
    seg.add_argument("--max-outer", type=int, default=None, help="maximum number of segmentation steps")
    seg.add_argument(
        "--residual",
        choices=("full", "blind"),
        default=None,
        help="region residual: full (paper) or blind (checkerboard prediction; fewer floods on textures); "
        f"preset default: {preset(DEFAULT_PRESET).residual}",
    )
    seg.add_argument(
        "--texture-window",
        type=int,
        default=None,
        metavar="W",
        help="between network experts, compare their errors averaged over W x W pixels (odd; 1 = pixel by pixel, "
        f"the paper); preset default: {preset(DEFAULT_PRESET).texture_window}",
    )
    seg.add_argument(
        "--texture-features",
        type=float,
        default=None,
        metavar="W",
        help="between network experts, add a Gabor-energy texture term weighted W times the experts' data term "
        f"(0 = the experts alone, the paper); preset default: {preset(DEFAULT_PRESET).texture_features:g}",
    )
    seg.add_argument(
        "--local-means",
        type=float,
        default=None,
        metavar="PX",
        help="when every class is a constant, fit the constants in Gaussian windows of PX pixels (0 = one mean "
        f"per class, Chan-Vese); preset default: {preset(DEFAULT_PRESET).local_means:g}",
    )
    seg.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    seg.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    seg.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="JSON",
        help="settings from a JSON file: a run's record (its config) or a config written by dataclasses.asdict; "
        "options given here override it",
    )
    seg.add_argument("-q", "--quiet", action="store_true", help="no progress line on stderr")


def _add_object_options(seg: argparse.ArgumentParser) -> None:
    """Add the options of the object splitting."""
    default_split = InstanceConfig()
    seg.add_argument(
        "--min-size",
        type=int,
        default=None,
        help=f"objects smaller than this many pixels are dropped (default: {default_split.min_size})",
    )
    seg.add_argument(
        "--min-distance",
        type=int,
        default=None,
        help="smallest distance in pixels between the centres of two touching objects that are split "
        f"(about the smallest radius; default: {default_split.min_distance})",
    )
    seg.add_argument("--no-split", action="store_true", help="objects = connected regions (touching ones not split)")


def _consume(stream: Iterator[SolverState], quiet: bool) -> SegmentationResult:
    """Run a snapshot stream to the end, printing progress on stderr."""
    result = None
    live_line = sys.stderr.isatty()  # one rewritten line on a terminal, one line per phase in a log
    last_phase = None
    for state in stream:
        if not quiet and (live_line or (state.phase, state.outer_iteration) != last_phase):
            line = f"[{state.elapsed:7.1f} s] outer {state.outer_iteration}: {state.message}"
            print(f"\r{line:<90.90}" if live_line else line, end="" if live_line else "\n", file=sys.stderr, flush=True)
            last_phase = (state.phase, state.outer_iteration)
        if state.phase is Phase.DONE:
            result = state.result
    if not quiet and live_line:
        print(file=sys.stderr)
    if result is None:  # pragma: no cover - iterate always ends with a DONE snapshot
        raise RuntimeError("the run ended without a result")
    return result


def _class_boxes(args: argparse.Namespace) -> dict[int, list[Box]]:
    """Collect ``--box``, ``--fg-box`` and ``--bg-box`` into boxes per class."""
    boxes: dict[int, list[Box]] = {}
    for values in args.box:
        index, box = _box_argument(values)
        boxes.setdefault(index, []).append(box)
    for index, given in ((1, args.fg_box), (0, args.bg_box)):
        for box in given:
            boxes.setdefault(index, []).append(tuple(box))
    return boxes


def _experts(config: Self2SegConfig, classes: int, constant_classes: Sequence[int] | None) -> tuple[ExpertKind, ...]:
    """Return the expert kinds after ``--constant-classes``: the listed classes get a constant."""
    kinds = list(expert_kinds(config, classes))
    for index in constant_classes or ():
        if not 0 <= index < classes:
            raise ValueError(
                f"--constant-classes lists class {index}, but this run has classes 0 to {classes - 1}; "
                "give a box to that class or remove it from the list"
            )
        kinds[index] = "constant"
    return tuple(kinds)


def _run_config(args: argparse.Namespace, boxes: dict[int, list[Box]], objects: str | None) -> Self2SegConfig:
    """Build a run's settings: ``--preset`` or ``--config``, then every option given.

    ``objects`` names the option that asks for objects (None: not asked); the
    object options are refused without it.
    """
    if args.config is not None:
        if args.preset is not None:
            raise ValueError("give either --preset or --config (a JSON file of settings), not both")
        config = _config_file(args.config)
        init = cast("InitMode", args.init or config.init)
    else:
        config = preset(args.preset or DEFAULT_PRESET)
        boxless: InitMode = "threshold" if config.threshold == OTSU else "denoise-threshold"
        init = cast("InitMode", args.init or ("boxes" if boxes else boxless))
    overrides = {
        "lam": args.lam,
        "mu": args.mu,
        "experts": args.experts,
        "classes": args.classes,
        "max_outer_iter": args.max_outer,
        "residual": args.residual,
        "texture_window": args.texture_window,
        "texture_features": args.texture_features,
        "local_means": args.local_means,
    }
    config = dataclasses.replace(config, init=init, **{k: v for k, v in overrides.items() if v is not None})
    if args.constant_classes:
        classes = max(boxes, default=0) + 1 if init == "boxes" else config.classes
        config = dataclasses.replace(config, experts=_experts(config, max(classes, 2), args.constant_classes))
    return dataclasses.replace(config, instances=_instance_settings(args, config.instances, objects))


def _config_file(path: Path) -> Self2SegConfig:
    """Read settings from a JSON file: a run's record (``config`` or ``parameters.config``) or a bare config."""
    try:
        values = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"could not read the settings file {str(path)!r} ({error}); give a JSON file") from None
    if isinstance(values, dict) and isinstance(values.get("parameters"), dict):
        values = values["parameters"].get("config", values)
    elif isinstance(values, dict) and isinstance(values.get("config"), dict):
        values = values["config"]
    if not isinstance(values, dict):
        raise ValueError(f"the settings file {str(path)!r} holds no settings (expected a JSON object)")
    return config_from_dict(values)


def _segment(args: argparse.Namespace) -> None:
    boxes = _class_boxes(args)
    config = _run_config(args, boxes, "--labels-out" if args.labels_out is not None else None)
    if args.table_out is not None and args.labels_out is None:
        raise ValueError(
            "--table-out needs objects: add --labels-out OBJECTS.tif to split the segmentation into objects"
        )
    image, colour_axis = read_image(args.image)
    channel_axis = args.channel_axis if args.channel_axis is not None else colour_axis
    instances = args.labels_out is not None
    stream = iterate(
        image, config, boxes=boxes, channel_axis=channel_axis, seed=args.seed, device=args.device, instances=instances
    )
    targets = {
        "--mask-out": args.mask_out,
        "--denoised-out": args.denoised_out,
        "--json-out": args.json_out,
        "--labels-out": args.labels_out,
        "--table-out": args.table_out,
    }
    with OutputFiles(targets, inputs=(args.image,)) as outputs:  # every path checked before the run
        result = _consume(stream, args.quiet)
        outputs.write_tiff("--mask-out", result.labels)
        outputs.write_tiff("--denoised-out", result.denoised.astype(np.float32))
        outputs.write_text(
            "--json-out", json.dumps({"image": str(args.image), **result_record(result)}, indent=2, allow_nan=False)
        )
        if result.instances is not None:
            outputs.write_tiff("--labels-out", result.instances.labels)
            table = measure_instances(result.instances, image, result.denoised, channel_axis=channel_axis)
            outputs.write_text("--table-out", table_csv(table))
    if result.degenerate:
        print(f"self2seg: warning: {result.stop_reason}", file=sys.stderr)
    elif result.restarted:
        print(f"self2seg: note: {result.stop_reason}", file=sys.stderr)
    if result.reliability_warning is not None:
        print(f"self2seg: warning: {result.reliability_warning}", file=sys.stderr)
    if result.instances is not None and result.instances.count == 0:
        print(
            f"self2seg: warning: {no_objects_reason(config.instances)}; the labels image is empty. "
            "Lower λ or --min-size, or draw boxes on the objects",
            file=sys.stderr,
        )


def _batch(args: argparse.Namespace) -> int:
    """Run ``self2seg batch``; returns 1 if any input failed."""
    boxes = _class_boxes(args)
    config = _run_config(args, boxes, "--objects" if args.objects else None)
    settings = BatchSettings(
        config=config,
        boxes={k: tuple(v) for k, v in boxes.items()},
        channel_axis=args.channel_axis,
        seed=args.seed,
        device=args.device,
        objects=args.objects,
        warm_start=False if args.no_warm_start else None,
        overwrite=args.overwrite,
    )
    outcomes = batch(
        args.inputs,
        args.out,
        settings,
        workers=args.workers,
        threads=args.threads,
        scheduler=args.scheduler,
        quiet=args.quiet,
    )
    counts = {status: sum(o.status == status for o in outcomes) for status in ("ok", "skipped", "failed")}
    print(
        f"self2seg batch: {counts['ok']} done, {counts['skipped']} skipped (done before), {counts['failed']} failed; "
        f"summary in {args.out / 'summary.csv'}",
        file=sys.stderr,
    )
    return 1 if counts["failed"] else 0


def _instance_settings(args: argparse.Namespace, base: InstanceConfig, objects: str | None) -> InstanceConfig:
    """Return the object splitting settings; refuse object options when no objects are asked for."""
    asked = {
        "--min-size": args.min_size is not None,
        "--min-distance": args.min_distance is not None,
        "--no-split": args.no_split,
    }
    if objects is None and any(asked.values()):
        used = [name for name, given in asked.items() if given]
        verb = "needs" if len(used) == 1 else "need"
        how = "add --labels-out OBJECTS.tif" if args.command == "segment" else "add --objects"
        raise ValueError(f"{', '.join(used)} {verb} objects: {how} to split the segmentation into objects")
    overrides = {"min_size": args.min_size, "min_distance": args.min_distance}
    settings = dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})
    return dataclasses.replace(settings, split=False) if args.no_split else settings


def _demo(args: argparse.Namespace) -> None:
    """Segment the bundled nuclei sample (denoise+threshold init, as in paper §5)."""
    image, labels = load_noisy_nuclei()
    # the paper's DSB2018 setting (§5): denoise+threshold, one expert + constant background,
    # residuals mean-filtered (size 3) for σ >= 30; λ as chosen in docs/results.md
    config = dataclasses.replace(
        preset(args.preset),
        init="denoise-threshold",
        threshold=PAPER_THRESHOLD,
        experts=BINARY_EXPERTS[1],
        residual_filter=3,
        lam=DSB_LAMBDA,
    )
    names = {"mask": args.out / "mask.tif", "denoised": args.out / "denoised.tif", "record": args.out / "run.json"}
    with OutputFiles(names) as outputs:
        result = _consume(iterate(image, config, device=args.device), args.quiet)
        outputs.write_tiff("mask", result.labels)
        outputs.write_tiff("denoised", result.denoised)
        outputs.write_text("record", json.dumps({"image": "<bundled noisy nuclei>", **result_record(result)}, indent=2))
    print(
        f"Dice against the ground truth: {dice(result.mask, labels > 0):.3f} "
        f"({result.outer_iterations} segmentation steps, {result.timings.total:.1f} s on {result.device}); "
        f"results in {args.out}/"
    )
    if args.gui:
        from ._demo_viewer import show_result  # imports napari

        show_result(image, result)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``self2seg`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    started = time.perf_counter()
    try:
        if args.command == "demo":
            _demo(args)
        elif args.command == "batch":
            return _batch(args)
        else:
            _segment(args)
    except (ValueError, OSError) as error:
        print(f"self2seg: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("self2seg: interrupted; every output written so far is complete (nothing half-written)", file=sys.stderr)
        return 130
    except RuntimeError as error:  # torch's failures (out of memory, device errors)
        logger.debug("the run failed", exc_info=True)
        failure = f"{type(error).__name__}: {error}"
        print(f"self2seg: error: the run failed ({failure}); no output was written", file=sys.stderr)
        return 1
    if not args.quiet and args.command == "segment":
        print(f"self2seg: done in {time.perf_counter() - started:.1f} s -> {args.mask_out}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
