from __future__ import annotations

import numpy as np
from npe2 import PluginManifest

from napari_self2seg.sample_data import (
    colour_sample,
    load_noisy_nuclei,
    noisy_nuclei,
    textures_sample,
    three_textures_sample,
)


def test_manifest_is_valid_and_its_commands_import() -> None:
    manifest = PluginManifest.from_distribution("napari-self2seg")
    assert manifest.name == "napari-self2seg"
    manifest.validate_imports()
    assert {w.display_name for w in manifest.contributions.widgets or []} == {"Self2Seg"}
    keys = {s.key for s in manifest.contributions.sample_data or []}
    assert keys == {"noisy_nuclei", "two_textures", "three_textures", "two_hues"}


def test_sample_data_returns_valid_layer_data() -> None:
    ((image, _kwargs, kind),) = noisy_nuclei()
    assert kind == "image" and image.shape == (256, 256) and image.dtype == np.float32
    assert np.isfinite(image).all() and image.std() > 20
    _, labels = load_noisy_nuclei()
    assert 0.1 < (labels > 0).mean() < 0.3
    layers = textures_sample()
    assert [k for _, _, k in layers] == ["image", "shapes"]
    rects, box_kwargs, _ = layers[1]
    assert len(rects) == 2 and box_kwargs["features"]["class"] == [0, 1]  # background, foreground
    (image, _, _), (rects, box_kwargs, _) = three_textures_sample()
    assert image.shape == (128, 128) and sorted(box_kwargs["features"]["class"]) == [0, 1, 2]
    (rgb, rgb_kwargs, _), _boxes = colour_sample()
    assert rgb.shape == (128, 128, 3) and rgb_kwargs["rgb"] and rgb.min() >= 0 and rgb.max() <= 1
