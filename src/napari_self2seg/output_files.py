"""Output files written all or nothing.

:class:`OutputFiles` checks every output path before any work is done (by
creating a temporary file next to each target), lets the caller fill the
temporary files, and renames them onto their targets only once every file was
written. If anything fails on the way, the temporary files are removed and the
targets keep their previous contents.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import tifffile

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import TracebackType


def _file_mode() -> int:
    """Permissions of a newly created file under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _file_mode()


class OutputFiles:
    """Temporary files for named outputs, renamed onto their targets on success.

    Use as a context manager; leaving the block without an exception commits
    (renames), leaving it with one discards every temporary file.

    Parameters
    ----------
    targets : Mapping[str, Path or None]
        Output name (used in messages, e.g. ``"--mask-out"``) to target path;
        ``None`` entries are skipped.
    inputs : tuple of Path
        Input files that no output may overwrite.

    Raises
    ------
    ValueError
        When two outputs share a path, an output is an input or a folder, or
        a target folder cannot be created or written to. Raised on entering
        the block, before any computation.
    """

    def __init__(self, targets: Mapping[str, Path | None], inputs: tuple[Path, ...] = ()) -> None:
        self.targets = {name: Path(path) for name, path in targets.items() if path is not None}
        self.inputs = inputs
        self.temporary: dict[str, Path] = {}

    def __enter__(self) -> OutputFiles:
        """Check every target and create its temporary file next to it."""
        seen: dict[Path, str] = {}
        resolved_inputs = {p.resolve() for p in self.inputs}
        for name, target in self.targets.items():
            key = target.resolve()
            if key in seen:
                raise ValueError(f"{name} and {seen[key]} name the same file {str(target)!r}; give each its own path")
            if key in resolved_inputs:
                raise ValueError(f"{name} {str(target)!r} is the input image; choose another output path")
            if target.is_dir():
                raise ValueError(f"{name} {str(target)!r} is a folder; give a file name, e.g. {target / 'out.tif'}")
            seen[key] = name
        try:
            for name, target in self.targets.items():
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
                except OSError as error:
                    raise ValueError(
                        f"cannot write {name} {str(target)!r} ({error.strerror or error}); "
                        "choose a folder you can write to"
                    ) from None
                os.close(handle)
                os.chmod(temporary, _FILE_MODE)  # mkstemp makes 0600; outputs get the usual permissions
                self.temporary[name] = Path(temporary)
        except BaseException:
            self._discard()
            raise
        return self

    def path(self, name: str) -> Path:
        """Temporary file to fill for output ``name``."""
        return self.temporary[name]

    def write_tiff(self, name: str, array: np.ndarray) -> None:
        """Write ``array`` as a TIFF into the temporary file of ``name`` (if that output was asked for).

        Written as a plain grey (minisblack) image of the array's shape, so a
        colour image's float denoising keeps its axis order and values.
        """
        if name in self.temporary:
            with open(self.temporary[name], "wb") as handle:
                tifffile.imwrite(handle, np.asarray(array), photometric="minisblack")

    def write_text(self, name: str, text: str) -> None:
        """Write ``text`` into the temporary file of ``name`` (if that output was asked for)."""
        if name in self.temporary:
            self.temporary[name].write_text(text)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        """Rename every temporary file onto its target, or remove them all after a failure."""
        if kind is not None:
            self._discard()
            return
        try:
            for name, temporary in self.temporary.items():
                os.replace(temporary, self.targets[name])
        finally:
            self._discard()

    def _discard(self) -> None:
        for temporary in self.temporary.values():
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
        self.temporary = {}
