"""A small live plot of the joint energy per outer iteration (no matplotlib)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qtpy.QtCore import QPointF, Qt
from qtpy.QtGui import QColor, QPainter, QPaintEvent, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

if TYPE_CHECKING:
    from collections.abc import Sequence


class EnergyPlot(QWidget):
    """Energy (eq. 5) after each outer iteration, as a polyline with markers."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.values: tuple[float, ...] = ()
        self.setMinimumHeight(70)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("Joint energy (eq. 5) after each outer iteration; it should go down and level off.")

    def set_values(self, values: Sequence[float]) -> None:
        """Replace the plotted energies and repaint."""
        self.values = tuple(values)
        self.update()

    def paintEvent(self, event: QPaintEvent | None) -> None:
        """Draw the energies scaled to the widget."""
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        w, h, m = self.width(), self.height(), 8
        painter.setPen(QPen(QColor("#888888")))
        text = "energy" if not self.values else f"energy {self.values[-1]:.4g}"
        painter.drawText(m, 12, text)
        if len(self.values) >= 1:
            lo, hi = min(self.values), max(self.values)
            span = (hi - lo) or 1.0
            n = max(len(self.values) - 1, 1)
            points = [
                QPointF(m + (w - 2 * m) * i / n, 16 + (h - 16 - m) * (1 - (v - lo) / span))
                for i, v in enumerate(self.values)
            ]
            painter.setPen(QPen(QColor("#ffd700"), 2))
            painter.drawPolyline(QPolygonF(points))
            painter.setBrush(QColor("#ffd700"))
            for p in points:
                painter.drawEllipse(p, 2.5, 2.5)
        painter.setPen(QPen(QColor("#555555"), 1, Qt.PenStyle.DotLine))
        painter.drawLine(m, h - m, w - m, h - m)
        painter.end()
