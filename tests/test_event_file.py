"""Our TensorBoard event files, read back by TensorBoard's own reader (which checks every record's checksums)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import PIL.Image

from lab2_lightning.utils.event_file import EventFile
from lab2_lightning.utils.png import png
from tests.conftest import read_run


def test_scalars_are_read_back_as_written_and_visible_after_a_flush(tmp_path: Path) -> None:
    values = [float(v) for v in np.random.default_rng(0).standard_normal(250).astype(np.float32)]
    events = EventFile(tmp_path / "run")
    events.scalars("train/loss", zip(range(1, 251), values, strict=True))
    events.flush()  # still open, as during a training: a running TensorBoard sees the points already
    points = read_run(tmp_path / "run").Scalars("train/loss")
    assert [p.step for p in points] == list(range(1, 251))
    assert [p.value for p in points] == values  # float32 values survive exactly
    events.scalars("train/loss", [(251, 0.5)])
    events.close()
    assert read_run(tmp_path / "run").Scalars("train/loss")[-1].value == 0.5


def test_an_image_keeps_its_png_and_size(tmp_path: Path) -> None:
    figure, ax = plt.subplots(figsize=(2, 1), dpi=50)
    ax.plot([0, 1], [1, 0])
    image = png(figure)
    events = EventFile(tmp_path)
    events.image("summary/curve", image, step=3)
    events.close()
    (shown,) = read_run(tmp_path).Images("summary/curve")
    assert (shown.width, shown.height, shown.step) == (100, 50, 3)
    assert shown.encoded_image_string == image
    assert PIL.Image.open(io.BytesIO(image)).size == (100, 50)


def test_files_opened_in_one_second_do_not_collide(tmp_path: Path) -> None:
    first, second = EventFile(tmp_path), EventFile(tmp_path)
    first.scalars("a", [(0, 1.0)])
    second.scalars("b", [(0, 2.0)])
    first.close()
    second.close()
    assert first.path != second.path and "tfevents" in first.path.name
    run = read_run(tmp_path)  # one folder, one run: TensorBoard reads both files
    assert run.Scalars("a")[0].value == 1.0 and run.Scalars("b")[0].value == 2.0


def test_a_restart_drops_what_the_stopped_run_logged_after_its_checkpoint(tmp_path: Path) -> None:
    stopped = EventFile(tmp_path)  # logged up to step 30, but its last checkpoint was at step 20
    stopped.start(1)
    stopped.scalars("train/loss", [(step, float(step)) for step in range(1, 31)])
    stopped.close()
    continued = EventFile(tmp_path)  # continued from that checkpoint, in the same folder (TensorBoard's same run)
    continued.start(21)
    continued.scalars("train/loss", [(step, -float(step)) for step in range(21, 41)])
    continued.close()
    points = read_run(tmp_path).Scalars("train/loss")
    assert [p.step for p in points] == list(range(1, 41))  # each step once
    assert [p.value for p in points] == [*range(1, 21), *(-s for s in range(21, 41))]  # the continued run's own
