"""The parameter form of the dock: magicgui widgets ↔ :class:`Self2SegConfig`.

Values are stored in a small JSON file between sessions (``SELF2SEG_SETTINGS``
overrides its path; ``SELF2SEG_NOPERSIST=1`` turns storage off), and tooltips
come from the config docstrings, so the GUI and the API describe a parameter
with the same words.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import platformdirs
import torch
from magicgui.widgets import ComboBox, Container, FloatSpinBox, PushButton, SpinBox, Widget

from ..core import DenoiserConfig, Self2SegConfig, preset
from ..core.config import DEFAULT_PRESET, INIT_MODES, PRESETS

logger = logging.getLogger(__name__)


def available_devices() -> list[str]:
    """Device choices that work on this machine ("auto" first)."""
    devices = ["auto", "cpu"]
    if torch.cuda.is_available():
        devices.insert(1, "cuda")
    if torch.backends.mps.is_available():
        devices.insert(1, "mps")
    return devices


def docstring_parameters(cls: type) -> dict[str, str]:
    """Parameter descriptions from a numpydoc ``Parameters`` section."""
    doc = cls.__doc__ or ""
    section = doc.split("Parameters\n", 1)[-1].split("\n\n    Returns", 1)[0]
    described: dict[str, str] = {}
    for match in re.finditer(r"^    (\w[\w, ]*) :[^\n]*\n((?:        [^\n]*\n?)+)", section, re.MULTILINE):
        text = " ".join(line.strip() for line in match.group(2).splitlines())
        for name in match.group(1).split(","):
            described[name.strip()] = text
    return described


def settings_path() -> Path | None:
    """Where the form's values are stored, or None when storage is off."""
    if os.environ.get("SELF2SEG_NOPERSIST"):
        return None
    custom = os.environ.get("SELF2SEG_SETTINGS")
    return Path(custom) if custom else Path(platformdirs.user_config_dir("napari-self2seg")) / "settings.json"


class ParameterForm(Container[Widget]):
    """Widgets for every user-facing setting; ``to_config()`` builds the core config."""

    def __init__(self) -> None:
        top = docstring_parameters(Self2SegConfig)
        den = docstring_parameters(DenoiserConfig)
        defaults = preset()
        self.preset = ComboBox(
            name="preset",
            label="preset",
            choices=list(PRESETS),
            value=DEFAULT_PRESET,
            tooltip="Starting point of all settings below: 'fast' (default) or 'paper' (the authors' settings, "
            "slow but faithful).",
        )
        self.init = ComboBox(
            name="init",
            label="initialisation",
            choices=[m for m in INIT_MODES if m != "mask"],
            value=defaults.init,
            tooltip=top["init"],
        )
        self.lam = FloatSpinBox(
            name="lam",
            label="λ (smoothness)",
            min=0.0005,
            max=5.0,
            step=0.005,
            value=defaults.lam,
            tooltip=top["lam"] + " Changing it re-segments at once.",
        )
        self.lam.native.setDecimals(4)
        self.mu = FloatSpinBox(
            name="mu",
            label="µ (keep previous mask)",
            min=0.0,
            max=10.0,
            step=0.01,
            value=defaults.mu,
            tooltip=top["mu"],
        )
        self.mu.native.setDecimals(4)
        self.experts = ComboBox(
            name="experts", label="experts", choices=[2, 1], value=defaults.experts, tooltip=top["experts"]
        )
        self.residual_filter = SpinBox(
            name="residual_filter",
            label="residual filter",
            min=1,
            max=15,
            step=2,
            value=defaults.residual_filter,
            tooltip=top["residual_filter"],
        )
        self.learning_rate = FloatSpinBox(
            name="learning_rate",
            label="learning rate",
            min=1e-6,
            max=0.1,
            step=1e-4,
            value=defaults.denoiser.learning_rate,
            tooltip=den["learning_rate"],
        )
        self.learning_rate.native.setDecimals(6)
        self.max_outer_iter = SpinBox(
            name="max_outer_iter",
            label="max outer iterations",
            min=1,
            max=100,
            value=defaults.max_outer_iter,
            tooltip=top["max_outer_iter"],
        )
        self.device = ComboBox(
            name="device",
            label="device",
            choices=available_devices(),
            value="auto",
            tooltip="Where to compute: auto picks CUDA, then Apple MPS, then the CPU. "
            "Only devices available here are listed.",
        )
        self.seed = SpinBox(
            name="seed",
            label="seed",
            min=0,
            max=2**31 - 1,
            value=0,
            tooltip="Seed of network initialisation and training-pair draws; same seed, same result.",
        )
        self.restore = PushButton(text="Restore defaults")
        super().__init__(
            widgets=[
                self.preset,
                self.init,
                self.lam,
                self.mu,
                self.experts,
                self.residual_filter,
                self.learning_rate,
                self.max_outer_iter,
                self.device,
                self.seed,
                self.restore,
            ],
            labels=True,
        )
        self._defaults = self.values()
        self.restore.changed.connect(self.restore_defaults)
        self.preset.changed.connect(self._apply_preset)
        self.load()
        for widget in self._value_widgets():
            widget.changed.connect(self.save)

    def _value_widgets(self) -> list[Any]:
        return [w for w in self if w is not self.restore]

    def values(self) -> dict[str, Any]:
        """Return the current values by widget name."""
        return {w.name: w.value for w in self._value_widgets()}

    def set_values(self, values: dict[str, Any]) -> None:
        """Set known values; unknown or invalid entries are skipped."""
        for widget in self._value_widgets():
            if widget.name in values:
                try:
                    widget.value = values[widget.name]
                except (ValueError, TypeError, KeyError):
                    logger.info("ignoring stored value %r for %s", values[widget.name], widget.name)

    def restore_defaults(self) -> None:
        """Put every widget back to the package defaults."""
        self.set_values(self._defaults)

    def _apply_preset(self) -> None:
        cfg = preset(str(self.preset.value))
        self.set_values(
            {
                "lam": cfg.lam,
                "mu": cfg.mu,
                "experts": cfg.experts,
                "residual_filter": cfg.residual_filter,
                "learning_rate": cfg.denoiser.learning_rate,
                "max_outer_iter": cfg.max_outer_iter,
            }
        )

    def to_config(self) -> Self2SegConfig:
        """Build the validated core configuration from the form."""
        base = preset(str(self.preset.value))
        return dataclasses.replace(
            base,
            init=self.init.value,
            lam=float(self.lam.value),
            mu=float(self.mu.value),
            experts=int(self.experts.value),  # type: ignore[arg-type]
            residual_filter=int(self.residual_filter.value) | 1,
            max_outer_iter=int(self.max_outer_iter.value),
            denoiser=dataclasses.replace(base.denoiser, learning_rate=float(self.learning_rate.value)),
        )

    def save(self) -> None:
        """Store the current values (silently skipped if the file cannot be written)."""
        path = settings_path()
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(self.values(), indent=1))
        except OSError as error:
            logger.info("could not store settings: %s", error)

    def load(self) -> None:
        """Restore stored values, if any."""
        path = settings_path()
        if path is None or not path.is_file():
            return
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            logger.info("could not read settings: %s", error)
            return
        if isinstance(stored, dict):
            self.set_values(stored)
