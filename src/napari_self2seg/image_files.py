"""Image files in and out of the command line and batch runs: reading one file, finding many.

Reads TIFF (OME-TIFF and ImageJ TIFF included), PNG and JPEG; finds the
images named by files, folders and glob patterns, and says why an argument
gives none.
"""

from __future__ import annotations

import glob
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import tifffile

if TYPE_CHECKING:
    from collections.abc import Iterable

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
"""File name endings read as images (any case); ``.ome.tif`` is a ``.tif``."""

OUTPUT_SUFFIXES = ("_mask.tif", "_denoised.tif", "_labels.tif")
"""Names of the images a batch run writes; such files inside its output folder are never taken as inputs."""


def read_image(path: Path) -> tuple[np.ndarray, int | None]:
    """Read a TIFF, PNG or JPEG file into an array and say where its colour channels are.

    A PNG/JPEG in colour is read as RGB channels (channel axis -1; an alpha
    channel is dropped, as it holds transparency, not signal). A TIFF's
    channels are recognised where its metadata names the axes (OME-TIFF,
    ImageJ, RGB samples: axis ``C`` or ``S``); otherwise the caller names the
    channel axis.

    Raises
    ------
    ValueError
        With one line that says what is wrong with the file: missing, a
        folder, empty, damaged or not an image.
    """
    if path.is_dir():
        raise ValueError(f"{str(path)!r} is a folder, not an image file; give the path of one image")
    if not path.is_file():
        raise ValueError(f"image file {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise ValueError(f"image file {str(path)!r} is empty (0 bytes)")
    tiff = path.suffix.lower() in (".tif", ".tiff")
    channel_axis: int | None = None
    try:
        if tiff:
            with tifffile.TiffFile(path) as opened:
                series = opened.series[0]
                array = np.asarray(series.asarray())
                axes = series.axes.upper()
            named = [axes.index(name) for name in "CS" if name in axes]
            channel_axis = named[0] - len(axes) if len(axes) == array.ndim and len(named) == 1 else None
        else:
            from PIL import Image  # lazy: only file reading needs it

            with Image.open(io.BytesIO(path.read_bytes())) as picture:  # no file handle left open on failure
                if picture.mode in ("P", "PA", "CMYK", "RGBA"):  # palette/CMYK: their colours, not indices
                    array = np.asarray(picture.convert("RGB"))
                elif picture.mode == "LA":
                    array = np.asarray(picture.convert("L"))
                else:
                    array = np.asarray(picture)
            channel_axis = -1 if array.ndim == 3 else None
    except Exception as error:  # readers raise many kinds; all mean "not readable"
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"could not read {str(path)!r} as an image: the file is damaged or not a TIFF/PNG/JPEG ({first[:200]})"
        ) from error
    if array.size == 0 or array.ndim < 2:
        raise ValueError(f"{str(path)!r} holds no image pixels (read shape {array.shape}); the file may be damaged")
    return array, channel_axis


@dataclass(frozen=True)
class Unusable:
    """A command-line input that gives no image to run, and why."""

    name: str
    reason: str


def find_images(arguments: Iterable[str], output_folder: Path | None = None) -> tuple[list[Path], list[Unusable]]:
    """Expand files, folders and glob patterns into image files, in the order given (each folder sorted).

    A folder gives the images directly inside it (not in sub-folders; hidden
    files skipped); a pattern with ``*``, ``?`` or ``[`` is expanded by
    :mod:`glob` (``**`` reaches into sub-folders). A file named twice is
    run once; the images a batch run wrote into ``output_folder`` are left out.

    Returns
    -------
    images : list of Path
        The image files to run.
    unusable : list of Unusable
        Every argument that gave no image (an empty folder, a pattern without
        a match, a missing file, a file that is not a TIFF/PNG/JPEG), with the
        reason.
    """
    images: list[Path] = []
    unusable: list[Unusable] = []
    seen: set[Path] = set()
    output = output_folder.resolve() if output_folder is not None else None

    def ours(path: Path) -> bool:
        return output is not None and path.resolve().parent == output and path.name.lower().endswith(OUTPUT_SUFFIXES)

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            images.append(path)

    for argument in arguments:
        path = Path(argument)
        if any(char in argument for char in "*?["):
            matches = [Path(m) for m in sorted(glob.glob(argument, recursive=True))]
            found = [m for m in matches if m.is_file() and _is_image(m) and not ours(m)]
            if not found:
                unusable.append(Unusable(argument, f"no TIFF/PNG/JPEG file matches the pattern {argument!r}"))
            for match in found:
                add(match)
        elif path.is_dir():
            found = [
                child
                for child in sorted(path.iterdir())
                if child.is_file() and not child.name.startswith(".") and _is_image(child) and not ours(child)
            ]
            if not found:
                unusable.append(Unusable(argument, f"the folder {argument!r} holds no TIFF/PNG/JPEG image"))
            for child in found:
                add(child)
        elif not path.exists():
            unusable.append(Unusable(argument, f"{argument!r} does not exist"))
        elif not _is_image(path):
            unusable.append(
                Unusable(
                    argument,
                    f"{argument!r} has the unsupported extension {path.suffix or '(none)'!r}; "
                    f"give {'/'.join(IMAGE_SUFFIXES)} files (convert others, e.g. with Fiji)",
                )
            )
        else:
            add(path)
    return images, unusable


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES
