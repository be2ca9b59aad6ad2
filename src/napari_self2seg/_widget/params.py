"""The parameter form of the dock: magicgui widgets ↔ :class:`Self2SegConfig`.

Values are stored in a small JSON file between sessions (``SELF2SEG_SETTINGS``
overrides its path; ``SELF2SEG_NOPERSIST=1`` turns storage off), and tooltips
come from the config docstrings, so the GUI and the API describe a parameter
with the same words.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import platformdirs
import torch
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    LineEdit,
    PushButton,
    SpinBox,
    Widget,
)

from ..core import Self2SegConfig, preset
from ..core.config import AUTO, DEFAULT_PRESET, EXPERT_KINDS, INIT_MODES, PRESETS, expert_kinds

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from magicgui.widgets.bases import ValueWidget

logger = logging.getLogger(__name__)


def available_devices() -> list[str]:
    """Device choices that work on this machine ("auto" first)."""
    devices = ["auto", "cpu"]
    if torch.cuda.is_available():
        devices.insert(1, "cuda")
    if torch.backends.mps.is_available():
        devices.insert(1, "mps")
    return devices


TOOLTIPS = {
    "preset": "Starting point for every setting below. 'fast' (default): small denoisers, seconds to a minute. "
    "'paper': the authors' exact settings, faithful but about 100× slower.",
    "init": "Where the first guess of the regions comes from. 'boxes': the foreground and background boxes you "
    "drew (needs at least one of each). 'threshold': bright pixels are foreground. 'denoise-threshold': denoise "
    "the whole image first, then take its bright pixels. The threshold options ignore the boxes.",
    "lam": "Smoothness of the outline. Larger λ: smoother outlines, small specks and holes disappear. Too large a "
    "λ makes the whole image one region — whichever region's denoiser explains the image better overall, which "
    "is often the foreground — so if the mask floods or vanishes, lower λ. Changing it after a run re-segments "
    "at once, without retraining. Maths: weight of the total variation in the joint energy (paper eq. 5), on "
    "the image scaled to [0, 1].",
    "lam_auto": "Let the run choose λ from the image: after the denoisers' first training it measures how much "
    "their disagreement varies inside the boxes (or the first regions) and takes that as λ, so noisier images "
    "get smoother outlines. The value chosen appears in the λ box; typing a λ there switches this off. "
    "Maths: λ = standard deviation of r_F − r_B inside the initial regions (docs/method.md).",
    "mu": "Keeps each new mask close to the previous one, so the regions change gradually between steps "
    "(0 = off). Maths: weight of the proximity term of paper eq. 10, solved by the accelerated primal–dual "
    "scheme (paper Algorithm 4).",
    "background_expert": "What learns the background (class 0). network: a denoiser (textures, structured "
    "backgrounds). constant: its average brightness (fluorescence spots and nuclei on a dark background). auto: "
    "decided from the boxes together with the object model: average brightness where it tells the boxes apart "
    "about as well as denoisers (then a denoiser is trained afterwards only for the denoised image), denoisers "
    "for every region where the regions differ in structure rather than brightness. Maths: the background "
    "expert D_0 of the joint energy (paper eqs. 5, 13).",
    "object_expert": "What learns each object class (1, 2, …). network: a denoiser per class (the paper). "
    "constant: the class's average brightness (colour), as in Chan–Vese. auto: chosen from the boxes, as for "
    "the background.",
    "constant_classes": "Classes that get their average brightness (colour) instead of a denoiser, whatever the "
    "two choices above say, e.g. '0 2'. Empty: none.",
    "residual_filter": "Blurs the denoisers' errors before comparing them (1 = off); 3 helps on very noisy "
    "images. Maths: the mean filter K of paper §3.1, variant 3.",
    "texture_window": "When every region has a denoiser (textures), compare the denoisers' errors averaged over "
    "this many pixels square (1 = pixel by pixel, the paper): a texture is recognised over its neighbourhood, "
    "at the cost of outlines a pixel or two less exact. Maths: local mean of each squared residual r_k before "
    "the segmentation step (docs/method.md).",
    "texture_features": "When every region has a denoiser (textures), also compare how strongly each pixel's "
    "neighbourhood varies at several scales and directions with each region's typical pattern, weighted this "
    "many times the denoisers' comparison (0 = denoisers alone, the paper): textures that the small denoisers "
    "confuse are told apart. Maths: a Gabor-energy vector Chan–Vese term added to r_k (docs/method.md).",
    "local_means": "When every region is a brightness (nuclei-like images), compare each pixel with the "
    "average brightness of each region in its neighbourhood, about this many pixels wide (0 = one average per "
    "region, as in Chan–Vese): dim objects among bright ones and uneven illumination are judged locally. Maths: "
    "Gaussian-windowed means of the two-means constants, a local Chan–Vese model (docs/method.md).",
    "learning_rate": "How fast the denoisers learn; the default suits almost every image. Maths: the Adam "
    "learning rate of the Noise2Fast training (paper §4.3).",
    "max_outer_iter": "Most rounds of 'train the denoisers, then re-draw the mask'. The run usually stops "
    "earlier, when the energy levels off.",
    "device": "Where to compute: auto picks a CUDA GPU, then Apple MPS, then the CPU. Only devices available "
    "here are listed.",
    "instances": "Also split the mask into separate objects — one number per nucleus, touching ones cut "
    "apart — shown as an 'objects' layer; hover over an object to see its size and brightness, and save the "
    "table with 'Save table…'. Maths: distance-transform watershed of each class (docs/user-guide.md).",
    "min_size": "Objects smaller than this many pixels are dropped (specks of noise). 0 keeps everything.",
    "seed": "Seed of the random choices (network start, training samples): the same seed gives the same result.",
}
"""Widget tooltips: plain words first, the maths (with paper references) in the last sentence."""


LAM_DECIMALS = 4
"""Decimals of the λ box; an automatic λ is shown rounded to them."""


def shows_lam(shown: float, lam: float) -> bool:
    """Whether the λ box's value ``shown`` is ``lam`` at the box's precision (an automatic λ has more digits)."""
    return abs(shown - lam) <= 0.5 * 10.0**-LAM_DECIMALS + 1e-12


PAPER_LAM = 0.04
"""What the λ box shows before a run has chosen λ from the image: the paper's value."""


def settings_path() -> Path | None:
    """Where the form's values are stored, or None when storage is off."""
    if os.environ.get("SELF2SEG_NOPERSIST"):
        return None
    custom = os.environ.get("SELF2SEG_SETTINGS")
    return Path(custom) if custom else Path(platformdirs.user_config_dir("napari-self2seg")) / "settings.json"


@dataclass(frozen=True)
class ConfigField:
    """A form field that shows one setting of :class:`Self2SegConfig`, found by its dotted path.

    The form builds the widget from it, reads a preset's value into the widget and writes the widget's
    value into the config, so a plain setting is described once, here.
    """

    path: str
    """Dotted attribute path in the config, e.g. ``"denoiser.learning_rate"``."""
    label: str
    widget: Callable[..., ValueWidget[Any]]
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    decimals: int | None = None
    convert: Callable[[Any], Any] = lambda value: value
    """Turns the widget's value into the config's (e.g. an odd filter size)."""

    @property
    def name(self) -> str:
        """Widget name and settings key: the last part of the path."""
        return self.path.rsplit(".", 1)[-1]

    def read(self, config: Self2SegConfig) -> Any:
        """Return the setting's value in ``config``."""
        return functools.reduce(getattr, self.path.split("."), config)

    def write(self, config: Any, value: Any) -> Any:
        """Return ``config`` with the setting replaced (nested dataclasses replaced on the way)."""
        head, _, rest = self.path.partition(".")
        if not rest:
            return dataclasses.replace(config, **{head: self.convert(value)})
        inner = dataclasses.replace(self, path=rest)
        return dataclasses.replace(config, **{head: inner.write(getattr(config, head), value)})

    def make(self, config: Self2SegConfig) -> ValueWidget[Any]:
        """Create the widget, showing ``config``'s value."""
        created = self.widget(
            name=self.name, label=self.label, value=self.read(config), tooltip=TOOLTIPS[self.name], **self.options
        )
        if self.decimals is not None:
            created.native.setDecimals(self.decimals)
        return created


def next_odd(size: float) -> int:
    """Return the window size the config needs: an even size typed in becomes the next odd one."""
    return int(size) | 1


ODD_SIZES = {"min": 1, "max": 15, "step": 2}
"""Spin box range of the window sizes."""


CONFIG_FIELDS = (
    ConfigField("init", "initialisation", ComboBox, {"choices": [m for m in INIT_MODES if m != "mask"]}),
    ConfigField("mu", "µ (keep previous mask)", FloatSpinBox, {"min": 0.0, "max": 10.0, "step": 0.01}, 4, float),
    ConfigField("residual_filter", "residual filter", SpinBox, ODD_SIZES, convert=next_odd),
    ConfigField("texture_window", "texture window", SpinBox, ODD_SIZES, convert=next_odd),
    ConfigField(
        "texture_features", "texture features", FloatSpinBox, {"min": 0.0, "max": 100.0, "step": 0.25}, 2, float
    ),
    ConfigField("local_means", "local means (px)", FloatSpinBox, {"min": 0.0, "max": 1000.0, "step": 4.0}, 1, float),
    ConfigField(
        "denoiser.learning_rate", "learning rate", FloatSpinBox, {"min": 1e-6, "max": 0.1, "step": 1e-4}, 6, float
    ),
    ConfigField("max_outer_iter", "max outer iterations", SpinBox, {"min": 1, "max": 100}, convert=int),
    ConfigField("instances.min_size", "smallest object (px)", SpinBox, {"min": 0, "max": 1_000_000}, convert=int),
)
"""The plain settings of the form, in the order they appear among the others."""


class ParameterForm(Container[Widget]):
    """Widgets for every user-facing setting; ``to_config()`` builds the core config.

    Plain settings come from :data:`CONFIG_FIELDS`; λ (a number or "auto"), the experts (one tuple
    shown as a background and an object choice) and the settings of a run that are not in the config
    (preset, device, seed, objects) have their own widgets.
    """

    def __init__(self) -> None:
        defaults = preset()
        self.config_widgets = {spec.name: spec.make(defaults) for spec in CONFIG_FIELDS}
        plain = self.config_widgets
        self.preset = ComboBox(
            name="preset",
            label="preset",
            choices=list(PRESETS),
            value=DEFAULT_PRESET,
            tooltip=TOOLTIPS["preset"],
        )
        self.lam = FloatSpinBox(
            name="lam",
            label="λ (smoothness)",
            min=0.0005,
            max=5.0,
            step=0.005,
            value=PAPER_LAM if defaults.lam == AUTO else defaults.lam,
            tooltip=TOOLTIPS["lam"],
        )
        self.lam.native.setDecimals(LAM_DECIMALS)
        self.lam_auto = CheckBox(
            name="lam_auto", text="choose λ from the image", value=defaults.lam == AUTO, tooltip=TOOLTIPS["lam_auto"]
        )
        background, objects = expert_kinds(defaults, 2)
        self.background_expert = ComboBox(
            name="background_expert",
            label="background model",
            choices=list(EXPERT_KINDS),
            value=background,
            tooltip=TOOLTIPS["background_expert"],
        )
        self.object_expert = ComboBox(
            name="object_expert",
            label="object model",
            choices=list(EXPERT_KINDS),
            value=objects,
            tooltip=TOOLTIPS["object_expert"],
        )
        self.constant_classes = LineEdit(
            name="constant_classes", label="constant classes", value="", tooltip=TOOLTIPS["constant_classes"]
        )
        self.device = ComboBox(
            name="device",
            label="device",
            choices=available_devices(),
            value="auto",
            tooltip=TOOLTIPS["device"],
        )
        self.seed = SpinBox(
            name="seed",
            label="seed",
            min=0,
            max=2**31 - 1,
            value=0,
            tooltip=TOOLTIPS["seed"],
        )
        self.instances = CheckBox(
            name="instances", text="split into objects", value=False, tooltip=TOOLTIPS["instances"]
        )
        self.restore = PushButton(text="Restore defaults")
        super().__init__(
            widgets=[
                self.preset,
                plain["init"],
                self.lam,
                self.lam_auto,
                plain["mu"],
                self.background_expert,
                self.object_expert,
                self.constant_classes,
                plain["residual_filter"],
                plain["texture_window"],
                plain["texture_features"],
                plain["local_means"],
                plain["learning_rate"],
                plain["max_outer_iter"],
                self.device,
                self.seed,
                self.instances,
                plain["min_size"],
                self.restore,
            ],
            labels=True,
        )
        self._defaults = self.values()
        self.restore.changed.connect(self.restore_defaults)
        self.preset.changed.connect(self._apply_preset)
        self.lam.changed.connect(self._on_lam_typed)
        self.load()
        for widget in self._value_widgets():
            widget.changed.connect(self.save)

    @property
    def mu(self) -> FloatSpinBox:
        """The µ field (the dock sends its changes to a running job)."""
        return cast("FloatSpinBox", self.config_widgets["mu"])

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

    def _on_lam_typed(self) -> None:
        """Switch the automatic λ off: a λ typed by the user replaces it."""
        self.lam_auto.value = False

    def show_chosen_lam(self, lam: float) -> None:
        """Show the λ a run chose from the image, without counting it as a user's change."""
        with self.lam.changed.blocked():
            self.lam.value = lam
        self.save()

    def restore_defaults(self) -> None:
        """Put every widget back to the package defaults."""
        self.set_values(self._defaults)

    def _apply_preset(self) -> None:
        cfg = preset(str(self.preset.value))
        lam = {"lam_auto": True} if cfg.lam == AUTO else {"lam": cfg.lam, "lam_auto": False}
        background, objects = expert_kinds(cfg, 2)
        plain = {spec.name: spec.read(cfg) for spec in CONFIG_FIELDS if spec.name != "init"}  # init: the user's
        self.set_values({**lam, **plain, "background_expert": background, "object_expert": objects})

    def to_config(self) -> Self2SegConfig:
        """Build the validated core configuration from the form."""
        config = dataclasses.replace(
            preset(str(self.preset.value)),
            lam=AUTO if self.lam_auto.value else float(self.lam.value),
            experts=(self.background_expert.value, self.object_expert.value),
        )
        for spec in CONFIG_FIELDS:
            config = spec.write(config, self.config_widgets[spec.name].value)
        return config

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
