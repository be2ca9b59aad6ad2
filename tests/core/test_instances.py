"""Instance labels: splitting, numbering, holes, specks, classes, and their place in a run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from napari_self2seg.core import preset, resegment, segment
from napari_self2seg.core.config import InstanceConfig
from napari_self2seg.core.instances import instances_of, raster_order
from napari_self2seg.core.measurements import measure_instances, table_csv
from napari_self2seg.core.metrics import mean_average_precision

YY, XX = np.mgrid[:48, :72]


def disc(cy: float, cx: float, r: float) -> np.ndarray:
    inside: np.ndarray = (YY - cy) ** 2 + (XX - cx) ** 2 < r**2
    return inside


def test_two_touching_discs_are_two_objects_and_one_disc_is_one() -> None:
    pair = disc(24, 24, 11) | disc(24, 43, 11)
    assert (pair & ~np.roll(pair, 1, axis=1)).sum() < pair.sum()  # one connected component
    split = instances_of(pair.astype(np.uint8), InstanceConfig())
    assert split.count == 2 and split.labels.dtype == np.int32
    left, right = split.labels[24, 15], split.labels[24, 52]
    assert {int(left), int(right)} == {1, 2} and left != right
    assert np.array_equal(split.labels > 0, pair)  # the watershed only divides, it adds and removes nothing
    assert instances_of(disc(24, 30, 12).astype(np.uint8), InstanceConfig()).count == 1
    assert instances_of(pair.astype(np.uint8), InstanceConfig(split=False)).count == 1


def test_holes_are_filled_with_background_only_and_specks_removed() -> None:
    ring = disc(24, 30, 14) & ~disc(24, 30, 5)
    labels = ring.astype(np.uint8)
    labels[2:4, 2:4] = 1  # a 4-pixel speck
    objects = instances_of(labels, InstanceConfig(min_size=10))
    assert objects.count == 1 and np.array_equal(objects.labels > 0, disc(24, 30, 14))
    kept_hole = instances_of(labels, InstanceConfig(min_size=10, fill_holes=False))
    assert np.array_equal(kept_hole.labels > 0, ring)
    assert instances_of(labels, InstanceConfig(min_size=0)).count == 2
    nested = labels.copy()
    nested[disc(24, 30, 5)] = 2  # a class-2 object inside the class-1 ring keeps its pixels
    both = instances_of(nested, InstanceConfig(min_size=10, split=False))  # (a ring splits along its length)
    assert both.count == 2 and sorted(both.classes.tolist()) == [1, 2]
    inner = both.labels[24, 30]
    assert both.classes[inner - 1] == 2 and np.array_equal(both.labels == inner, disc(24, 30, 5))


def test_objects_are_numbered_in_raster_order_across_classes() -> None:
    labels = np.zeros((48, 72), np.uint8)
    labels[disc(30, 10, 6)] = 2  # first in raster order: row 24
    labels[disc(10, 60, 5)] = 1  # row 5
    labels[disc(38, 40, 6)] = 1  # row 32
    objects = instances_of(labels, InstanceConfig())
    assert objects.labels[10, 60] == 1 and objects.labels[30, 10] == 2 and objects.labels[38, 40] == 3
    assert objects.classes.tolist() == [1, 2, 1]
    renumbered, previous = raster_order(np.array([[0, 7, 7], [3, 0, 9]]))
    assert renumbered.tolist() == [[0, 1, 1], [2, 0, 3]] and previous.tolist() == [7, 3, 9]


def test_no_foreground_gives_zero_objects_and_an_empty_table() -> None:
    objects = instances_of(np.zeros((8, 8), np.uint8), InstanceConfig())
    assert objects.count == 0 and not objects.labels.any()
    table = measure_instances(objects, np.zeros((8, 8)))
    assert all(len(column) == 0 for column in table.values())
    assert table_csv(table).startswith("label,class,area,")


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("min_distance", 0, "min_distance"),
        ("min_size", -1, "min_size"),
        ("smoothing", -1.0, "smoothing"),
        ("split", "yes", "True or False"),
        ("min_size", 2.5, "integer"),
    ],
)
def test_bad_instance_settings_are_refused(field: str, value: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        InstanceConfig(**{field: value})  # type: ignore[arg-type]


def test_the_table_measures_each_object() -> None:
    labels = np.zeros((48, 72), np.uint8)
    labels[disc(20, 20, 8)] = 1
    labels[disc(30, 50, 6)] = 2
    image = np.random.default_rng(0).random((3, 48, 72))
    objects = instances_of(labels, InstanceConfig())
    table = measure_instances(objects, image, image * 2, channel_axis=0)
    for i in range(objects.count):
        inside = objects.labels == i + 1
        assert table["area"][i] == inside.sum() and table["class"][i] == objects.classes[i]
        assert table["input_intensity_mean-1"][i] == pytest.approx(image[1][inside].mean())
        assert table["denoised_intensity_max-2"][i] == pytest.approx(2 * image[2][inside].max())
    text = table_csv(table).splitlines()
    assert len(text) == 1 + objects.count and text[0].split(",")[:3] == ["label", "class", "area"]
    with pytest.raises(ValueError, match="labels are"):
        measure_instances(objects, image[:, :10], channel_axis=0)
    with pytest.raises(ValueError, match=r"instances=True"):
        measure_instances(None, image, channel_axis=0)  # a result made without objects


def test_a_run_with_instances_splits_touching_nuclei_and_follows_lambda() -> None:
    from napari_self2seg.datasets import synthetic_nuclei

    sample = synthetic_nuclei(96, n=6, touching=True, noise=0.1, seed=1)
    config = dataclasses.replace(preset("fast"), init="threshold", experts=("constant", "network"), max_outer_iter=2)
    result = segment(sample.image, config, device="cpu", keep_problem=True, instances=True)
    assert result.instances is not None and result.timings.instances > 0
    truth = instances_of(sample.truth.astype(np.uint8), InstanceConfig())  # the true mask, split the same way
    assert result.instances.count >= 0.8 * truth.count
    assert mean_average_precision(truth.labels, result.instances.labels) > 0.5
    smoother = resegment(result, lam=4 * result.lam)
    assert smoother.instances is not None
    assert np.array_equal(smoother.instances.labels > 0, smoother.labels > 0)
    assert segment(sample.image, config, device="cpu").instances is None


def test_a_minimum_size_larger_than_the_image_is_refused_before_the_run() -> None:
    config = dataclasses.replace(preset("fast"), init="threshold", instances=InstanceConfig(min_size=10_000))
    with pytest.raises(ValueError, match="larger than the image"):
        segment(np.random.default_rng(0).random((32, 32)), config, device="cpu", instances=True)
