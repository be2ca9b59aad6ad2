"""``self2seg batch`` on real dask clusters (in-process LocalCluster and a scheduler + worker started here)."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

import numpy as np
import pytest
import tifffile

from napari_self2seg import cli
from napari_self2seg.batch_jobs import JobOutcome
from napari_self2seg.batch_run import _Progress
from napari_self2seg.core import DenoiserConfig, PrimalDualConfig, Self2SegConfig, segment, segment_stack

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

CONFIG = Self2SegConfig(
    lam=0.02,
    experts=("constant", "network"),
    max_outer_iter=2,
    denoiser=DenoiserConfig(width=4, n_blocks=1, patience=5, average_last=5, max_steps=60),  # the work is not the point
    solver=PrimalDualConfig(max_iter=500),
)
BOXES = {1: [(14, 14, 24, 24)], 0: [(0, 0, 6, 40)]}
BOX_ARGS = ["--box", "1", "14", "14", "24", "24", "--box", "0", "0", "0", "6", "40"]


def _image(shift: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.normal(0.2, 0.1, (40, 40))
    image[12:28, 10 + shift : 26 + shift] += 0.6
    return (np.clip(image, 0, None) * 1000).astype(np.uint16)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three small images, a 2-plane stack and a damaged file; a JSON file of the small settings beside them."""
    root = tmp_path_factory.mktemp("batch")
    inputs = root / "in"
    inputs.mkdir()
    for i in range(2):
        tifffile.imwrite(inputs / f"cell{i}.tif", _image(i, i), photometric="minisblack")
    tifffile.imwrite(inputs / "pair.tif", np.stack([_image(0, 5), _image(2, 6)]), photometric="minisblack")
    (inputs / "broken.tif").write_bytes(b"II*\x00 this is not a TIFF")
    from PIL import Image

    Image.fromarray((_image(0, 9) // 8).astype(np.uint8)).save(inputs / "cell0.png")  # same NAME as cell0.tif
    (root / "settings.json").write_text(json.dumps(dataclasses.asdict(CONFIG)))
    return root


def _batch(folder: Path, out: Path, *extra: str) -> int:
    args = ["batch", str(folder / "in"), "--out", str(out), "--config", str(folder / "settings.json")]
    return cli.main([*args, *BOX_ARGS, "--device", "cpu", "--seed", "3", "-q", *extra])


@pytest.mark.slow
def test_folder_on_a_local_cluster_reports_the_broken_file_and_reruns_skip(folder: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = folder / "out"
    assert _batch(folder, out, "--workers", "2", "--objects") == 1  # one input failed
    err = capsys.readouterr().err
    assert "broken.tif failed: could not read" in err and "3 done, 0 skipped (done before), 2 failed" in err
    assert "cell0.tif failed: its outputs would overwrite those of" in err and "cell0.png" in err
    names = {p.name for p in out.iterdir()}
    for stem in ("cell0", "cell1", "pair"):
        assert {f"{stem}_mask.tif", f"{stem}_denoised.tif", f"{stem}.json", f"{stem}_labels.tif"} <= names
    assert not any(name.endswith(".part") for name in names)
    rows = (out / "summary.csv").read_text().splitlines()
    assert rows[0].startswith("input,status,seconds,planes") and len(rows) == 6
    broken = next(row for row in rows if "broken.tif" in row)
    assert ",failed," in broken and "damaged or not a TIFF" in broken
    # the same result as `segment` with the same seed and settings; the stack as segment_stack
    np.testing.assert_array_equal(
        tifffile.imread(out / "cell1_mask.tif"), segment(_image(1, 1), CONFIG, boxes=BOXES, seed=3, device="cpu").labels
    )
    stack = tifffile.imread(folder / "in" / "pair.tif")
    expected = segment_stack(stack, CONFIG, boxes=BOXES, seed=3, device="cpu", instances=True)
    np.testing.assert_array_equal(tifffile.imread(out / "pair_mask.tif"), expected.labels)
    assert expected.objects is not None
    np.testing.assert_array_equal(tifffile.imread(out / "pair_labels.tif"), expected.objects)
    table = (out / "pair_table.csv").read_text().splitlines()
    assert table[0].startswith("plane,label,class,area") and len(table) - 1 == int(
        expected.objects.max(axis=(1, 2)).sum()
    )
    record = json.loads((out / "pair.json").read_text())
    assert record["status"] == "ok" and record["plane_shape"] == [2] and len(record["planes"]) == 2
    assert record["input"]["sha256"] and record["parameters"]["seed"] == 3 and record["environment"]["torch"]
    assert record["parameters"]["config"]["lam"] == 0.02 and record["device"] == "cpu"
    # how well each plane's first experts told the boxes apart, and the planes to check
    separations = [plane["box_separation"] for plane in record["planes"]]
    assert separations == pytest.approx([plane.box_separation for plane in expected.planes])
    pair_row = next(row for row in csv.DictReader(rows) if row["input"].endswith("pair.tif"))
    assert pair_row["unreliable_planes"] == " ".join(map(str, expected.unreliable_planes))
    # a second run skips every finished input and leaves its files untouched
    times = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != "summary.csv"}
    assert _batch(folder, out, "--workers", "2", "--objects") == 1  # the broken file is tried again
    assert "0 done, 3 skipped" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != "summary.csv"} == times
    assert sum(",skipped," in row for row in (out / "summary.csv").read_text().splitlines()) == 3
    # finished inputs alone need no cluster: nothing listens at this address
    finished = [str(folder / "in" / name) for name in ("cell0.png", "cell1.tif", "pair.tif")]  # cell0.tif clashed
    args = [*finished, "--out", str(out), "--config", str(folder / "settings.json"), *BOX_ARGS, "--objects"]
    code = cli.main(["batch", *args, "--device", "cpu", "--seed", "3", "--scheduler", "tcp://127.0.0.1:9"])
    assert code == 0, capsys.readouterr().err
    assert "0 done, 3 skipped" in capsys.readouterr().err


@pytest.fixture
def scheduler(tmp_path: Path) -> Iterator[str]:
    """A dask scheduler and one worker on 127.0.0.1, started as the command line starts them."""
    address_file = tmp_path / "scheduler.json"
    bin_dir = os.path.dirname(sys.executable)
    common = ["--no-dashboard", "--dashboard-address", ":0"]
    processes = [
        subprocess.Popen(
            [
                os.path.join(bin_dir, "dask"),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--scheduler-file",
                str(address_file),
                *common,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not address_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(address_file.read_text())["address"]
        worker = [os.path.join(bin_dir, "dask"), "worker", address, "--nthreads", "1", "--host", "127.0.0.1", *common]
        processes.append(subprocess.Popen(worker, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        yield address
    finally:
        for process in reversed(processes):
            process.kill()  # a test cluster: no graceful shutdown needed
        for process in processes:
            process.wait(timeout=30)


@pytest.mark.slow
def test_existing_scheduler_gives_the_same_outputs_as_in_process(folder: Path, scheduler: str, tmp_path: Path) -> None:
    there = tmp_path / "there"
    assert _batch(folder, there, "--scheduler", scheduler) == 1
    expected = segment(_image(1, 1), CONFIG, boxes=BOXES, seed=3, device="cpu")  # what an in-process run writes
    np.testing.assert_array_equal(tifffile.imread(there / "cell1_mask.tif"), expected.labels)
    np.testing.assert_array_equal(tifffile.imread(there / "cell1_denoised.tif"), expected.denoised)
    stack = tifffile.imread(folder / "in" / "pair.tif")
    planes = segment_stack(stack, CONFIG, boxes=BOXES, seed=3, device="cpu")
    np.testing.assert_array_equal(tifffile.imread(there / "pair_mask.tif"), planes.labels)
    record = json.loads((there / "pair.json").read_text())
    assert record["status"] == "ok" and record["environment"]["host"]


def test_unreachable_scheduler_fails_quickly_with_a_message(folder: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    assert _batch(folder, tmp_path / "out", "--scheduler", "tcp://127.0.0.1:9") == 2
    assert time.monotonic() - started < 30
    err = capsys.readouterr().err
    assert "no dask scheduler answered at 'tcp://127.0.0.1:9' within 10 s" in err and "dask scheduler" in err
    assert not (tmp_path / "out" / "cell0_mask.tif").exists()


def test_output_folder_that_cannot_be_written_fails_before_any_work(folder: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert _batch(folder, blocker / "out") == 2
    assert "cannot write into the output folder" in capsys.readouterr().err


def test_object_options_need_objects(folder: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert _batch(folder, tmp_path / "out", "--min-size", "5") == 2
    assert "--min-size needs objects: add --objects" in capsys.readouterr().err


@pytest.mark.slow
def test_ctrl_c_leaves_complete_outputs_and_marks_the_rest_interrupted(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["batch", str(folder / "in"), "--out", str(out), "--config", str(folder / "settings.json"), *BOX_ARGS]
    # Ctrl+C as in a terminal, also when the suite itself was started in the background (`cmd &`
    # hands SIGINT on ignored): the command line turns it back into KeyboardInterrupt first
    terminal = "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    cli = "from napari_self2seg.cli import main; sys.exit(main(sys.argv[1:]))"
    command = [sys.executable, "-c", terminal + cli, *args, "--device", "cpu", "--workers", "1", "-q"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    summary = out / "summary.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (summary.exists() and ",ok," in summary.read_text()):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "interrupted" in err, err
    rows = summary.read_text().splitlines()[1:]
    statuses = {row.split(",")[0]: row.split(",")[1] for row in rows}
    assert "pending" not in statuses.values() and "interrupted" in statuses.values()
    assert not [p.name for p in out.iterdir() if p.name.endswith(".part")]  # nothing half-written
    for name, status in statuses.items():
        stem = os.path.basename(name).rsplit(".", 1)[0]
        if status == "ok":
            assert tifffile.imread(out / f"{stem}_mask.tif").dtype == np.uint8
            assert json.loads((out / f"{stem}.json").read_text())["status"] == "ok"
        elif status == "interrupted" and (out / f"{stem}.json").exists():  # renamed just before the stop
            assert json.loads((out / f"{stem}.json").read_text())["status"] == "ok"


@pytest.mark.slow
def test_a_worker_killed_mid_job_is_replaced_and_its_job_rerun(folder: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    import psutil

    out = tmp_path / "out"
    killed: list[int] = []

    def kill_a_busy_worker() -> None:
        """SIGKILL the worker process as soon as a job is writing (its temporary files exist)."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            if any(p.name.endswith(".part") for p in out.glob(".*")):
                workers = [c for c in psutil.Process().children(recursive=True) if "spawn" in " ".join(c.cmdline())]
                for worker in workers[:1]:
                    killed.append(worker.pid)
                    worker.kill()
            time.sleep(0.02)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    assert _batch(folder, out, "--workers", "1") == 1  # only the broken file and the name clash fail
    killer.join()
    assert killed, "no worker was running a job"
    rows = (out / "summary.csv").read_text().splitlines()[1:]
    assert sum(",ok," in row for row in rows) == 3
    for stem in ("cell0", "cell1", "pair"):
        assert tifffile.imread(out / f"{stem}_mask.tif").dtype == np.uint8
    assert not [p.name for p in out.iterdir() if p.name.endswith(".part")]  # the killed attempt's files are gone
    capsys.readouterr()


def test_the_progress_line_warns_about_collapsed_planes_and_planes_to_check(capsys) -> None:  # type: ignore[no-untyped-def]
    progress = _Progress(total=3, quiet=True)
    progress.update(JobOutcome(input="a.tif", status="ok", degenerate_planes=(2,), unreliable_planes=(0, 3)))
    progress.update(JobOutcome(input="b.tif", status="ok"))
    progress.update(JobOutcome(input="c.tif", status="failed", error="could not read", unreliable_planes=(1,)))
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "self2seg batch: warning: a.tif: the segmentation of plane(s) 2 collapsed and an earlier one was kept "
        "(see its JSON record); a smaller --lam or larger boxes may help",
        "self2seg batch: warning: a.tif: in plane(s) 0, 3 the experts barely told the boxes apart, so check those "
        "masks (see the JSON record's box_separation)",
        "self2seg batch: c.tif failed: could not read",
    ]
