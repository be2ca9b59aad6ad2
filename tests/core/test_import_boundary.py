from __future__ import annotations

import subprocess
import sys


def test_core_imports_no_gui_packages() -> None:
    code = (
        "import sys, napari_self2seg.core, napari_self2seg.cli;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'qtpy', 'napari', 'magicgui', 'superqt', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'matplotlib'});"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
