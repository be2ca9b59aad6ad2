"""Small live line plots with labelled axes (no matplotlib): the energy and the denoisers' loss."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPaintEvent, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

if TYPE_CHECKING:
    from collections.abc import Sequence


@dataclass
class Series:
    """One named line of a :class:`TracePlot`: ``(x, y)`` points and an optional text per point."""

    name: str
    colour: str
    points: list[tuple[float, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    line: bool = True


def _short(value: float) -> str:
    """At most about six characters: 1234, 0.0391, 5.2e-05."""
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.1e}"
    return f"{value:.4g}" if abs(value) >= 1 else f"{value:.3g}"


class TracePlot(QWidget):
    """A line plot with a title, axis labels, y range ticks and a legend.

    Parameters
    ----------
    title : str
        Text above the plot.
    x_label, y_label : str
        Axis labels.
    tooltip : str
        What the plot shows, in plain words.
    """

    def __init__(self, title: str, x_label: str, y_label: str, tooltip: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title, self.x_label, self.y_label = title, x_label, y_label
        self.series: dict[str, Series] = {}
        self.setMinimumHeight(110)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip(tooltip)

    def clear(self) -> None:
        """Remove every line."""
        self.series = {}
        self.update()

    def set_series(
        self,
        name: str,
        colour: str,
        points: Sequence[tuple[float, float]],
        notes: Sequence[str] = (),
        *,
        line: bool = True,
    ) -> None:
        """Replace (or add) the line called ``name`` and repaint."""
        self.series[name] = Series(name, colour, list(points), list(notes), line)
        self.update()

    def append(self, name: str, colour: str, point: tuple[float, float], note: str = "", *, line: bool = True) -> None:
        """Add one point to the line called ``name`` (created if needed) and repaint."""
        series = self.series.setdefault(name, Series(name, colour, line=line))
        series.points.append(point)
        series.notes.append(note)
        self.update()

    def paintEvent(self, event: QPaintEvent | None) -> None:
        """Draw axes, labels and lines scaled to the widget."""
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        grey = QColor("#9a9a9a")
        w, h = self.width(), self.height()
        left, right, top, bottom = 60, 8, 18, 28
        box = QRectF(left, top, max(w - left - right, 1), max(h - top - bottom, 1))
        painter.setPen(QPen(grey))
        painter.drawText(4, 13, self.title)
        painter.drawText(QRectF(left, h - 14, box.width(), 14), Qt.AlignmentFlag.AlignHCenter, self.x_label)
        painter.save()
        painter.translate(10, top + box.height() / 2)
        painter.rotate(-90)
        painter.drawText(QRectF(-box.height() / 2, -8, box.height(), 14), Qt.AlignmentFlag.AlignHCenter, self.y_label)
        painter.restore()
        painter.drawRect(box)
        points = [p for s in self.series.values() for p in s.points]
        if not points:
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, "no values yet")
            painter.end()
            return
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        x0, x1 = min(xs), max(xs)
        y0, y1 = min(ys), max(ys)
        xspan, yspan = (x1 - x0) or 1.0, (y1 - y0) or abs(y1) or 1.0

        def at(x: float, y: float) -> QPointF:
            return QPointF(
                box.left() + 4 + (box.width() - 8) * (x - x0) / xspan,
                box.bottom() - 4 - (box.height() - 8) * (y - y0) / yspan,
            )

        painter.drawText(QRectF(0, top - 2, left - 4, 14), Qt.AlignmentFlag.AlignRight, _short(y1))
        painter.drawText(QRectF(0, box.bottom() - 12, left - 4, 14), Qt.AlignmentFlag.AlignRight, _short(y0))
        painter.drawText(QRectF(left, box.bottom() + 1, 40, 14), Qt.AlignmentFlag.AlignLeft, _short(x0))
        painter.drawText(QRectF(box.right() - 40, box.bottom() + 1, 40, 14), Qt.AlignmentFlag.AlignRight, _short(x1))
        legend_y = top + 12
        for series in self.series.values():
            if not series.points:
                continue
            colour = QColor(series.colour)
            mapped = [at(x, y) for x, y in series.points]
            painter.setPen(QPen(colour, 2))
            if series.line and len(mapped) > 1:
                painter.drawPolyline(QPolygonF(mapped))
            painter.setBrush(colour)
            for point, note in zip(mapped, series.notes, strict=False):
                painter.drawEllipse(point, 2.5, 2.5)
                if note:  # beside the point, to its left near the right edge
                    width = painter.fontMetrics().horizontalAdvance(note)
                    shift = -width - 4 if point.x() + width + 4 > box.right() else 4
                    painter.drawText(point + QPointF(shift, -4), note)
            painter.drawText(
                QRectF(box.right() - 150, legend_y - 11, 146, 14), Qt.AlignmentFlag.AlignRight, series.name
            )
            legend_y += 13
        painter.end()


def energy_plot() -> TracePlot:
    """Plot the joint energy after each outer iteration and the energies of λ re-solves."""
    return TracePlot(
        "Energy (should fall, then level off)",
        "outer iteration",
        "energy",
        "How well the current mask and denoisers explain the image: lower is better. It should fall and level "
        "off; the run stops when it does. Re-solves after a λ change are marked with their λ (their energy uses "
        "that λ, so compare them with each other, not with the run). Maths: the joint energy of paper eq. 5.",
    )


def loss_plot() -> TracePlot:
    """Plot the denoisers' training loss during the run."""
    return TracePlot(
        "Denoiser training loss",
        "training step (all phases)",
        "loss",
        "How far each region's denoiser is from predicting the hidden pixels it is trained on: it should fall "
        "quickly and flatten. Maths: the masked Noise2Fast loss of paper eq. 12.",
    )
