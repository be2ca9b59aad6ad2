"""The napari dock widget; the only subpackage that imports Qt, napari or magicgui."""

from .dock import Self2SegWidget

__all__ = ["Self2SegWidget"]
