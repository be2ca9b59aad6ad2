"""One input of a batch run: read it, skip it if done, segment its planes, write its outputs and record.

:func:`run_job` is what a dask worker (or a plain loop) runs for one file. It
never raises for a bad input: the outcome says what went wrong, so one bad
input never stops the others. Its outputs are written all or nothing
(:class:`~.output_files.OutputFiles`), so an interrupted run leaves either the
previous files or complete new ones.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import numpy as np

from .core import Self2SegConfig, segment_stack
from .core.measurements import measure_stack, table_csv
from .image_files import read_image
from .output_files import OutputFiles
from .provenance import environment, file_sha256, plane_record

if TYPE_CHECKING:
    from pathlib import Path

logger = logging.getLogger(__name__)

Status = Literal["ok", "skipped", "failed", "pending", "interrupted"]
BoxList = tuple[tuple[float, float, float, float], ...]


@dataclass(frozen=True, kw_only=True)
class BatchSettings:
    """The settings every input of a batch run shares (what ``self2seg segment`` takes for one image).

    Attributes
    ----------
    config : Self2SegConfig
        Settings of every run.
    boxes : dict of int to boxes
        Box prompts per class in plane (Y, X) coordinates, used on every
        plane of every input (for ``config.init == "boxes"``).
    channel_axis : int or None
        Channel axis of every input; None: RGB PNG/JPEG and TIFFs whose
        metadata names the channels are recognised, others read as grey.
    seed : int
        Seed of every run.
    device : str
        ``"auto"`` picks each worker's GPU if it has one.
    objects : bool
        Also write ``NAME_labels.tif`` (objects) and ``NAME_table.csv`` (measurements).
    warm_start : bool or None
        Start every plane of a stack after the first from the plane before;
        None: only with box prompts (:func:`~.core.stacks.iterate_stack`).
    overwrite : bool
        Run inputs again even where a record says they are done.
    """

    config: Self2SegConfig
    boxes: dict[int, BoxList] = field(default_factory=dict)
    channel_axis: int | None = None
    seed: int = 0
    device: str = "auto"
    objects: bool = False
    warm_start: bool | None = None
    overwrite: bool = False

    def parameters(self) -> dict[str, object]:
        """Return every setting that decides the outputs, as JSON values (compared to skip finished inputs)."""
        values: dict[str, object] = {
            "config": dataclasses.asdict(self.config),
            "boxes": {str(k): [list(box) for box in boxes] for k, boxes in sorted(self.boxes.items())},
            "channel_axis": self.channel_axis,
            "seed": self.seed,
            "device": self.device,
            "objects": self.objects,
            "warm_start": self.warm_start,
        }
        normalised: dict[str, object] = json.loads(json.dumps(values))
        return normalised


@dataclass(frozen=True, kw_only=True)
class JobOutcome:
    """How one input went: one row of ``summary.csv``.

    Attributes
    ----------
    input : str
        The input file (or the argument that gave no file).
    status : {"ok", "skipped", "failed", "pending", "interrupted"}
        ``skipped``: a record shows it done with the same file and settings;
        ``pending``: not finished yet (while the batch runs); ``interrupted``:
        the batch was stopped (Ctrl-C) before it finished.
    seconds : float
        Time this job took (reading and writing included).
    planes : int or None
        Number of planes segmented.
    foreground_fraction : float or None
        Fraction of pixels not in the background, over all planes.
    objects : int or None
        Number of objects (with ``objects``), over all planes.
    lam : float or None
        The λ used (the first plane's with ``lam="auto"``).
    degenerate_planes : tuple of int
        Planes whose run collapsed and kept an earlier segmentation.
    unreliable_planes : tuple of int
        Planes whose first experts barely told the boxes apart (a mask to check).
    error : str
        Why it failed (empty otherwise).
    peak_memory_mb : float or None
        Peak resident memory of the process that ran it (a worker's peak so far).
    """

    input: str
    status: Status
    seconds: float = 0.0
    planes: int | None = None
    foreground_fraction: float | None = None
    objects: int | None = None
    lam: float | None = None
    degenerate_planes: tuple[int, ...] = ()
    unreliable_planes: tuple[int, ...] = ()
    error: str = ""
    peak_memory_mb: float | None = None

    def row(self) -> dict[str, str]:
        """Return the summary row: every field as text (empty for None)."""
        values = dataclasses.asdict(self)
        values["degenerate_planes"] = " ".join(map(str, self.degenerate_planes))
        values["unreliable_planes"] = " ".join(map(str, self.unreliable_planes))
        values["seconds"] = f"{self.seconds:.2f}"
        if self.foreground_fraction is not None:
            values["foreground_fraction"] = f"{self.foreground_fraction:.4f}"
        if self.peak_memory_mb is not None:
            values["peak_memory_mb"] = f"{self.peak_memory_mb:.0f}"
        return {name: "" if value is None else str(value) for name, value in values.items()}


SUMMARY_COLUMNS = tuple(f.name for f in dataclasses.fields(JobOutcome))


def output_paths(image: Path, out: Path, objects: bool) -> dict[str, Path]:
    """Return the outputs of input ``NAME.ext``: ``NAME_mask.tif``, ``NAME_denoised.tif``, ``NAME.json`` (+ objects)."""
    name = output_name(image)
    paths = {"mask": out / f"{name}_mask.tif", "denoised": out / f"{name}_denoised.tif"}
    if objects:
        paths |= {"labels": out / f"{name}_labels.tif", "table": out / f"{name}_table.csv"}
    return paths | {"record": out / f"{name}.json"}  # the record last: it is renamed once the images are in place


def output_name(image: Path) -> str:
    """Return the NAME of an input's outputs: its file name without the image extension (``.ome.tif`` too)."""
    name = image.name
    lowered = name.lower()
    for ending in (".ome.tiff", ".ome.tif", ".tiff", ".tif", ".png", ".jpeg", ".jpg"):
        if lowered.endswith(ending):
            return name[: -len(ending)]
    return image.stem


def run_job(image: Path, out: Path, settings: BatchSettings) -> JobOutcome:
    """Segment every plane of one input file and write its outputs; never raises for a bad input.

    Parameters
    ----------
    image : Path
        The input file (TIFF incl. OME-TIFF, PNG or JPEG; a stack runs its planes in order).
    out : Path
        The output folder.
    settings : BatchSettings
        The batch's settings.

    Returns
    -------
    JobOutcome
        ``ok``, ``skipped`` (a record shows the same file done with the same
        settings, and its outputs are there) or ``failed`` with the reason.
    """
    started = time.perf_counter()
    try:
        targets = output_paths(image, out, settings.objects)
        digest = file_sha256(image)
        parameters = settings.parameters()
        if not settings.overwrite:
            done = _finished_before(targets, digest, parameters)
            if done is not None:
                return _skipped(done, image, started)
        return _segment_file(image, targets, settings, digest, parameters, started)
    except Exception as error:  # every failure of one input is reported, never raised: the others go on
        logger.debug("%s failed", image, exc_info=True)
        reason = str(error) if isinstance(error, ValueError | OSError) else f"{type(error).__name__}: {error}"
        return JobOutcome(
            input=str(image),
            status="failed",
            seconds=time.perf_counter() - started,
            error=reason.replace("\n", " "),
            peak_memory_mb=peak_memory_mb(),
        )


def _segment_file(
    image: Path,
    targets: dict[str, Path],
    settings: BatchSettings,
    digest: str,
    parameters: dict[str, object],
    started: float,
) -> JobOutcome:
    """Read, segment and write one input (its errors are turned into outcomes by :func:`run_job`)."""
    began = datetime.now(UTC).isoformat(timespec="seconds")
    array, found_axis = read_image(image)
    channel_axis = settings.channel_axis if settings.channel_axis is not None else found_axis
    with OutputFiles(targets, inputs=(image,)) as outputs:  # every output path checked before the run
        result = segment_stack(
            array,
            settings.config,
            boxes=settings.boxes or None,
            channel_axis=channel_axis,
            seed=settings.seed,
            device=settings.device,
            instances=settings.objects,
            warm_start=settings.warm_start,
        )
        outputs.write_tiff("mask", result.labels)
        outputs.write_tiff("denoised", result.denoised.astype(np.float32))
        objects = None
        if result.objects is not None:
            outputs.write_tiff("labels", result.objects)
            outputs.write_text("table", table_csv(measure_stack(result, array)))
            objects = sum(plane.instances.count for plane in result.planes if plane.instances is not None)
        outcome = JobOutcome(
            input=str(image),
            status="ok",
            seconds=time.perf_counter() - started,
            planes=len(result.planes),
            foreground_fraction=float(result.mask.mean()),
            objects=objects,
            lam=result.planes[0].lam,
            degenerate_planes=result.degenerate_planes,
            unreliable_planes=result.unreliable_planes,
            peak_memory_mb=peak_memory_mb(),
        )
        record = {
            "status": "ok",
            "input": {
                "path": str(image.resolve()),
                "sha256": digest,
                "shape": list(array.shape),
                "dtype": str(array.dtype),
                "channel_axis": channel_axis,
            },
            "parameters": parameters,
            "outputs": {name: path.name for name, path in targets.items() if name != "record"},
            "environment": environment(),
            "device": result.planes[0].device,
            "started": began,
            "plane_shape": list(result.layout.plane_shape),
            "summary": outcome.row(),
            "planes": [plane_record(plane, "channel_axis") for plane in result.planes],
        }
        outputs.write_text("record", json.dumps(record, indent=2, allow_nan=False))
    return outcome


def done_before(image: Path, out: Path, settings: BatchSettings) -> JobOutcome | None:
    """Return the ``skipped`` outcome of an input that a record shows done with the same bytes and settings.

    None when it has to run: ``settings.overwrite``, an output or the
    record is missing, or the file or the settings changed. Never raises:
    an input that cannot be read is left to :func:`run_job` to report.
    """
    if settings.overwrite:
        return None
    started = time.perf_counter()
    try:
        targets = output_paths(image, out, settings.objects)
        if not all(path.is_file() for path in targets.values()):  # no need to hash the input
            return None
        done = _finished_before(targets, file_sha256(image), settings.parameters())
    except OSError:
        return None
    return None if done is None else _skipped(done, image, started)


def _skipped(done: JobOutcome, image: Path, started: float) -> JobOutcome:
    return dataclasses.replace(done, input=str(image), status="skipped", seconds=time.perf_counter() - started)


def _finished_before(targets: dict[str, Path], digest: str, parameters: dict[str, object]) -> JobOutcome | None:
    """Return the recorded outcome if this input was done with the same bytes and settings, else None."""
    record_path = targets["record"]
    if not all(path.is_file() for path in targets.values()):
        return None
    try:
        record = json.loads(record_path.read_text())
        same = (
            record.get("status") == "ok"
            and record["input"]["sha256"] == digest
            and record.get("parameters") == parameters
        )
        if not same:
            return None
        row = record["summary"]
        return JobOutcome(
            input=row["input"],
            status="ok",
            planes=int(row["planes"]),
            foreground_fraction=float(row["foreground_fraction"]),
            objects=int(row["objects"]) if row["objects"] else None,
            lam=float(row["lam"]),
            degenerate_planes=tuple(int(p) for p in row["degenerate_planes"].split()),
            unreliable_planes=tuple(int(p) for p in row.get("unreliable_planes", "").split()),
        )
    except (ValueError, KeyError, TypeError):  # an unreadable or older record: run again
        return None


def peak_memory_mb() -> float | None:
    """Return the peak resident memory of this process in MiB (None where the OS does not report it)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10
