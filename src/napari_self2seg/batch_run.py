"""Batch runs on dask.distributed: many files, stacks and folders, on this machine or on a cluster.

:func:`batch` finds the inputs, checks the output folder, submits one task per
input (:func:`~.batch_jobs.run_job`, which writes its own outputs: no image
travels through the scheduler) to an in-process ``LocalCluster`` or to an
existing scheduler, shows progress on stderr and keeps ``summary.csv`` up to
date after every finished input.
"""

from __future__ import annotations

import csv
import ctypes
import importlib
import io
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .batch_jobs import SUMMARY_COLUMNS, BatchSettings, JobOutcome, done_before, output_name, run_job
from .core._validation import resolve_device
from .image_files import find_images
from .output_files import OutputFiles

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

logger = logging.getLogger(__name__)

SCHEDULER_TIMEOUT_S = 10
"""How long to wait for ``--scheduler`` to answer before giving up."""


def machine_cores() -> int:
    """Return the CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def worker_layout(workers: int | None, jobs: int, *, gpu: bool = False, cores: int | None = None) -> tuple[int, int]:
    """Return ``(workers, torch threads per worker)`` with ``workers × threads <= cores``.

    By default one single-threaded worker per core, at most one per job
    (``benchmarks/batch.py`` on 2 cores, 16 DSB 256² crops: 2 workers × 1
    thread 117 images/h, 1 worker × 2 threads 99 images/h, a plain loop 102
    images/h), or one worker when the run uses this machine's GPU (workers
    would share it; several GPUs: one worker per GPU, docs/batch.md).
    """
    cores = cores or machine_cores()
    if workers is None:
        workers = 1 if gpu else cores
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    workers = max(1, min(workers, jobs))
    return workers, max(1, cores // workers)


def _job_on_worker(image: str, out: str, settings: BatchSettings, torch_threads: int | None) -> JobOutcome:
    """Run one job as a dask task, first setting torch's threads (dask's nanny sets OMP/MKL to 1)."""
    import torch

    logging.getLogger("napari_self2seg").setLevel(logging.ERROR)  # collapses are reported per input instead
    _allocate_like_a_plain_process()
    if torch_threads is None:  # a worker of an existing cluster: share its cores among its task threads
        worker = _distributed().get_worker()
        torch_threads = max(1, machine_cores() // max(1, int(worker.state.nthreads)))
    torch.set_num_threads(torch_threads)
    return run_job(Path(image), Path(out), settings)


def _allocate_like_a_plain_process() -> None:
    """Give back glibc's adaptive allocation thresholds that dask's nanny takes away from its workers.

    The nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (to hand freed memory back to
    the OS). Setting it freezes glibc's mmap threshold at 128 KiB, so every large temporary tensor
    is mapped and page-faulted afresh: torch's convolutions ran 2.5× slower in such a worker on the
    2-core test machine (0.42 s vs 0.18 s for 20 convolutions of 32 × 256², ``benchmarks/batch.py``
    figures in docs/benchmarks.md). A worker runs one image at a time, so keeping freed memory for
    the next allocation costs little. Linux/glibc only; elsewhere nothing changes.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # pragma: no cover - not glibc
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's mallopt parameter numbers
    libc.mallopt(m_mmap_threshold, 32 * 2**20)  # DEFAULT_MMAP_THRESHOLD_MAX on 64-bit
    libc.mallopt(m_trim_threshold, 128 * 2**20)


def _distributed() -> Any:
    """Import dask.distributed (only batch runs need it; its API has no type hints)."""
    return importlib.import_module("distributed")


class _Summary:
    """``summary.csv``: one row per input in the order given, rewritten (all or nothing) after each change."""

    def __init__(self, path: Path, names: Sequence[str]) -> None:
        self.path = path
        self.rows: dict[str, JobOutcome] = {name: JobOutcome(input=name, status="pending") for name in names}

    def record(self, outcome: JobOutcome) -> None:
        self.rows[outcome.input] = outcome
        self.write()

    def write(self) -> None:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(outcome.row() for outcome in self.rows.values())
        with OutputFiles({"summary.csv": self.path}) as files:
            files.write_text("summary.csv", text.getvalue())

    def interrupted(self) -> None:
        for name, outcome in self.rows.items():
            if outcome.status == "pending":
                self.rows[name] = JobOutcome(input=name, status="interrupted", error="stopped before it finished")
        self.write()


class _Progress:
    """A progress line on stderr: inputs done / total, failures, ETA (one rewritten line on a terminal)."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.quiet = total, quiet
        self.start = time.perf_counter()
        self.done = self.failed = self.skipped = 0
        self.live = sys.stderr.isatty()

    def update(self, outcome: JobOutcome) -> None:
        self.done += 1
        self.failed += outcome.status == "failed"
        self.skipped += outcome.status == "skipped"
        if outcome.status == "failed":
            self._print(f"self2seg batch: {outcome.input} failed: {outcome.error}", keep=True)
        elif outcome.status == "ok":
            for planes, what in (
                (
                    outcome.degenerate_planes,
                    "the segmentation of plane(s) {} collapsed and an earlier one was kept (see its JSON record); "
                    "a smaller --lam or larger boxes may help",
                ),
                (
                    outcome.unreliable_planes,
                    "in plane(s) {} the experts barely told the boxes apart, so check those masks "
                    "(see the JSON record's box_separation)",
                ),
            ):
                if planes:
                    listed = ", ".join(map(str, planes))
                    self._print(f"self2seg batch: warning: {outcome.input}: {what.format(listed)}", keep=True)
        if self.quiet:
            return
        elapsed = time.perf_counter() - self.start
        left = self.total - self.done
        eta = f"ETA {elapsed / self.done * left:5.0f} s" if left else f"took {elapsed:.0f} s"
        bar = "#" * round(20 * self.done / self.total)
        line = f"[{bar:<20}] {self.done}/{self.total} inputs, {self.failed} failed, {self.skipped} skipped, {eta}"
        self._print(line, keep=not self.live or not left)

    def _print(self, line: str, keep: bool) -> None:
        if self.live:
            print(f"\r{line:<100}", end="\n" if keep else "", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)


def check_output_folder(out: Path) -> None:
    """Create ``out`` and make sure files can be written there; fails before any work is done."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with OutputFiles({"probe": out / ".self2seg-write-test"}):
            raise _Probe  # nothing renamed: only checks that a file can be made there
    except _Probe:
        return
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot write into the output folder {str(out)!r} ({error}); choose another --out") from None


class _Probe(Exception):
    """Leaves the probing block without keeping the probe file."""


def batch(
    inputs: Iterable[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    settings: BatchSettings,
    *,
    workers: int | None = None,
    threads: int | None = None,
    scheduler: str | None = None,
    quiet: bool = True,
) -> list[JobOutcome]:
    """Segment every image of files, folders and glob patterns; write outputs, records and ``summary.csv``.

    Each input ``NAME.ext`` gives ``OUT/NAME_mask.tif`` (class indices; a
    stack keeps its plane axes), ``OUT/NAME_denoised.tif``, ``OUT/NAME.json``
    (provenance) and, with ``settings.objects``, ``OUT/NAME_labels.tif`` and
    ``OUT/NAME_table.csv``. An input whose record shows it done with the same
    bytes (SHA-256) and settings is skipped unless ``settings.overwrite``
    (checked here first: a finished folder starts no cluster). A
    failing input is reported (summary, stderr) and the others go on.

    Parameters
    ----------
    inputs : iterable of str or path
        Files, folders (their images, not sub-folders) and glob patterns.
    out : str or path
        Output folder (created; must be writable).
    settings : BatchSettings
        The run settings shared by every input.
    workers : int or None
        Worker processes of the in-process ``LocalCluster`` (default: one per
        core, at most one per input; one when the run uses this machine's GPU).
    threads : int or None
        torch threads per task (default: the cores divided among the workers;
        on an existing cluster, a worker's host cores divided among its task
        threads).
    scheduler : str or None
        Address of a running dask scheduler (``tcp://host:8786``) to submit
        to instead of starting a local cluster.
    quiet : bool
        No progress line (failures are still printed).

    Returns
    -------
    list of JobOutcome
        One per input (and per argument that gave none), in the order given.

    Raises
    ------
    ValueError
        Before any work: no input at all, an output folder that cannot be
        written, a scheduler that does not answer within 10 s.
    KeyboardInterrupt
        After writing the summary (unfinished inputs marked interrupted);
        finished outputs are complete files.
    """
    out_dir = Path(out)
    images, unusable = find_images([os.fspath(i) for i in inputs], out_dir)
    if not images and not unusable:
        raise ValueError("no input given: name image files, folders or glob patterns")
    check_output_folder(out_dir)
    outcomes: dict[str, JobOutcome] = {
        u.name: JobOutcome(input=u.name, status="failed", error=u.reason) for u in unusable
    }
    jobs: list[Path] = []
    names: dict[str, Path] = {}
    for image in images:
        name = output_name(image)
        if name in names:
            outcomes[str(image)] = JobOutcome(
                input=str(image),
                status="failed",
                error=f"its outputs would overwrite those of {str(names[name])!r} (both are named {name!r}); "
                "rename one or run them with different --out folders",
            )
        else:
            names[name] = image
            skipped = done_before(image, out_dir, settings)  # here, so that a finished folder starts no cluster
            if skipped is not None:
                outcomes[str(image)] = skipped
            else:
                jobs.append(image)
    order = [u.name for u in unusable] + [str(image) for image in images]
    summary = _Summary(out_dir / "summary.csv", order)
    progress = _Progress(len(order), quiet)
    for outcome in outcomes.values():
        summary.rows[outcome.input] = outcome
        progress.update(outcome)
    summary.write()
    if jobs:
        try:
            _run_on_dask(jobs, out_dir, settings, workers, threads, scheduler, summary, progress)
            # every job has ended: temporary files left now are those of attempts whose worker died
            _remove_temporary_files(out_dir, [output_name(image) for image in jobs])
        except KeyboardInterrupt:
            summary.interrupted()
            if scheduler is None:  # our workers are gone: their unfinished temporary files go too
                _remove_temporary_files(out_dir, [output_name(image) for image in jobs])
            raise
    return list(summary.rows.values())


def _remove_temporary_files(out: Path, names: list[str]) -> None:
    """Remove the temporary files that killed jobs left (``.NAME_….part``, never renamed onto an output)."""
    for leftover in out.glob(".*.part"):
        if any(leftover.name.startswith((f".{name}_", f".{name}.json")) for name in names):
            leftover.unlink(missing_ok=True)


def _run_on_dask(
    jobs: list[Path],
    out: Path,
    settings: BatchSettings,
    workers: int | None,
    threads: int | None,
    scheduler: str | None,
    summary: _Summary,
    progress: _Progress,
) -> None:
    """Submit one task per job and record each outcome as it arrives."""
    dask = _distributed()
    logging.getLogger("distributed").setLevel(logging.ERROR)  # its start-up and shut-down chatter
    from distributed.client import FutureCancelledError
    from distributed.scheduler import KilledWorker

    cluster: Any = None
    if scheduler is not None:
        try:
            client = dask.Client(scheduler, timeout=f"{SCHEDULER_TIMEOUT_S}s")
        except (OSError, TimeoutError, ValueError) as error:
            raise ValueError(
                f"no dask scheduler answered at {scheduler!r} within {SCHEDULER_TIMEOUT_S} s ({error}); "
                "start one (`dask scheduler`, then `dask worker ADDRESS`) or leave out --scheduler to run here"
            ) from None
        torch_threads = threads
    else:
        n_workers, torch_threads = worker_layout(workers, len(jobs), gpu=resolve_device(settings.device).type != "cpu")
        torch_threads = threads or torch_threads
        cluster = dask.LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            silence_logs=logging.ERROR,
            dashboard_address=":0",  # its HTTP server on a free port: never fails for a taken 8787
            scheduler_kwargs={"dashboard": False},  # and without the dashboard pages
        )
        client = dask.Client(cluster)
    try:
        futures = {
            client.submit(_job_on_worker, str(image), str(out), settings, torch_threads, pure=False): str(image)
            for image in jobs
        }
        for future in dask.as_completed(futures):
            image = futures[future]
            try:
                outcome = future.result()
            except KilledWorker:
                outcome = JobOutcome(
                    input=image,
                    status="failed",
                    error="the worker running it died every time dask retried it (out of memory?); "
                    "run it alone or with fewer --workers",
                )
            except (FutureCancelledError, OSError) as error:
                outcome = JobOutcome(input=image, status="failed", error=f"the cluster lost it ({error})")
            summary.record(outcome)
            progress.update(outcome)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
