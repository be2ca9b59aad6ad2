"""Run :func:`napari_self2seg.core.iterate` in a napari generator worker.

superqt's generator worker treats any ``RuntimeError`` as "the worker was
deleted" and drops it without emitting ``errored`` or ``finished``. torch
raises ``RuntimeError`` for most failures (out of memory among them), so the
driver below re-raises them as :class:`Self2SegRunError`, which reaches the
``errored`` signal and the user.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from napari.qt.threading import FunctionWorker, GeneratorWorker, create_worker

from ..core import LiveParameters, PlaneState, SegmentationResult, SolverState, resegment

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterator

Snapshot = TypeVar("Snapshot", SolverState, PlaneState)
"""What a run yields: a single run's snapshots, or an all-planes run's (the plane and its snapshot)."""


class Self2SegRunError(Exception):
    """A failure inside a running Self2Seg job (deliberately not a RuntimeError)."""


def friendly_message(error: BaseException) -> str:
    """One line for the user, with a hint for the common torch failures."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if isinstance(error, torch.OutOfMemoryError) or "out of memory" in text.lower():
        return f"Out of memory ({text}). Choose device 'cpu', a smaller image or fewer/narrower experts."
    return f"Self2Seg failed: {text}"


@contextmanager
def reported_failures() -> Iterator[None]:
    """Re-raise a ``RuntimeError`` from the block as :class:`Self2SegRunError` (superqt drops RuntimeErrors)."""
    try:
        yield
    except RuntimeError as error:
        raise Self2SegRunError(friendly_message(error)) from error


def drive(
    stream: Generator[Snapshot, LiveParameters | None, None],
) -> Generator[Snapshot, LiveParameters | None, None]:
    """Forward snapshots from ``stream`` and values sent to the worker back into it."""
    try:
        with reported_failures():
            sent: LiveParameters | None = None
            while True:
                try:
                    state = stream.send(sent)
                except StopIteration:
                    return
                sent = yield state
    finally:
        stream.close()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def start_worker(
    stream: Generator[Snapshot, LiveParameters | None, None] | Iterator[Snapshot],
    *,
    on_yield: Callable[[Snapshot], Any],
    on_error: Callable[[BaseException], Any],
    on_finished: Callable[[], Any],
    on_aborted: Callable[[], Any],
) -> GeneratorWorker:
    """Create, connect and start the worker; every handler runs on the main thread."""
    worker: GeneratorWorker = create_worker(
        drive, stream, _start_thread=False, _ignore_errors=True, _progress={"desc": "Self2Seg"}
    )
    worker.yielded.connect(on_yield)
    worker.errored.connect(on_error)
    worker.aborted.connect(on_aborted)
    worker.finished.connect(on_finished)
    worker.start()
    return worker


def resegment_reporting(result: SegmentationResult, lam: float) -> SegmentationResult:
    """:func:`~napari_self2seg.core.resegment`, with ``RuntimeError`` re-raised as :class:`Self2SegRunError`."""
    with reported_failures():
        return resegment(result, lam=lam)


def start_resegment_worker(
    result: SegmentationResult,
    lam: float,
    *,
    on_returned: Callable[[SegmentationResult], Any],
    on_error: Callable[[BaseException], Any],
    on_finished: Callable[[], Any],
) -> FunctionWorker[SegmentationResult]:
    """Re-solve the segmentation step for ``lam`` in a thread; every handler runs on the main thread."""
    worker: FunctionWorker[SegmentationResult] = create_worker(
        resegment_reporting, result, lam, _start_thread=False, _ignore_errors=True
    )
    worker.returned.connect(on_returned)
    worker.errored.connect(on_error)
    worker.finished.connect(on_finished)
    worker.start()
    return worker
