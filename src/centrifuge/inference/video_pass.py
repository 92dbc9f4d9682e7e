"""One pass of ``centrifuge separate`` over a video: separate it window by window, measure the
layers, and encode the chosen layers and the preview in a background thread, all at once.

Decoding runs in its own thread (:meth:`~centrifuge.inference.Separator.windows`), the model in
the calling one, x264 in a third (PyAV and torch release the GIL), so on two cores the model
rarely waits. Only what the result needs is done per frame: the layers to write are chosen on the
first finished frames and only they are encoded (means of groups of outputs, see
:meth:`~centrifuge.inference.report.LayerStats.choose`; ``--layers all``: every output too), the
preview is made from the frames in memory (no second decoding pass), and the statistics that
choose the layers look at every :data:`STATS_EVERY`-th frame at a short side of
:data:`~centrifuge.inference.report.STATS_SIDE` pixels.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import torch

from centrifuge.inference.detail import add_upsampled_difference
from centrifuge.inference.preview import PreviewWriter
from centrifuge.inference.report import STATS_EVERY, LayerStats, layer_count
from centrifuge.inference.results import result_files
from centrifuge.inference.separator import Separator
from centrifuge.losses.grouping import Group, compose
from centrifuge.video.read import VideoReader
from centrifuge.video.transforms import resize
from centrifuge.video.write import VideoWriter, quantize_frames

__all__ = ["SeparationPass"]

RESIZE_BYTES = 64 << 20  # layers are brought back to the input size this many bytes at a time
# x264 at the same quality (CRF 18), faster: superfast took 4.3 ms per 398x224 frame against 7.6
# for veryfast, for 15% larger files (bench/RESULTS.md); the preview is for looking: ultrafast
LAYER_PRESET, PREVIEW_PRESET = "superfast", "ultrafast"


class _Encoder:
    """Encodes in a background thread, so that the model never waits for x264: the chosen layers
    (brought back to the writers' size there, a few frames at a time, so that full-resolution
    layers are never held for a whole window) and the preview."""

    def __init__(
        self,
        writers: list[VideoWriter],
        shape: tuple[int, int],
        preview: PreviewWriter,
        full_size: Iterator[torch.Tensor] | None = None,
    ) -> None:
        self.writers, self.shape, self.preview = writers, shape, preview
        # the input's frames [C, H, W] at the writers' size, in order: a residual model's
        # differences (predicted at the processing size) are added to them here, a few frames at
        # a time, so that full-size frames are never held for a whole window
        self.full_size = full_size
        self.q: queue.Queue = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._work, daemon=True)
        self.thread.start()

    def _write(self, layers: torch.Tensor, frames: torch.Tensor) -> None:
        h, w = self.shape
        step = max(1, RESIZE_BYTES // (12 * h * w))  # float32 RGB frames per resize
        if self.full_size is not None and layers.shape[-2:] != self.shape:
            for t in range(0, layers.shape[2], step):
                n = min(step, layers.shape[2] - t)
                full = torch.stack([next(self.full_size) for _ in range(n)], dim=1)  # [C,n,H,W]
                chunk = add_upsampled_difference(
                    layers[:, :, t : t + step], frames[:, t : t + step], full
                )
                for writer, layer in zip(self.writers, chunk):
                    writer.write(layer)
            self.preview.write(frames, layers)
            return
        for writer, layer in zip(self.writers, layers):
            if layer.shape[-2:] == self.shape:  # quantised by put()
                writer.write(layer)
                continue
            for t in range(0, layer.shape[1], step):
                writer.write(resize(layer[:, t : t + step], h, w))
        self.preview.write(frames, layers)

    def _work(self) -> None:
        while (chunk := self.q.get()) is not None:
            if self.error is not None:
                continue
            try:
                self._write(*chunk)
            except BaseException as exc:
                self.error = exc

    def put(self, layers: torch.Tensor, frames: torch.Tensor) -> None:
        """Queue layers ``[M, C, t, h, w]`` in ``[0, 1]`` (any ``h, w``: resized in the thread)
        and their input frames ``[C, t, h, w]``."""
        if self.error is not None:
            raise self.error
        if layers.shape[-2:] == self.shape:
            layers = torch.stack([quantize_frames(layer) for layer in layers])  # uint8: 4x smaller
        self.q.put((layers, frames))

    def stop(self) -> None:
        """Wait until the thread has written (or, after an error, skipped) what is queued and ends.

        The writers must not be closed or aborted before: FFmpeg crashes on a container closed
        while another thread encodes into it.
        """
        if self.thread.is_alive():
            self.q.put(None)
            self.thread.join()
        if self.full_size is not None:
            self.full_size.close()  # the full-size decoder's file

    def finish(self) -> None:
        self.stop()
        if self.error is not None:
            raise self.error


class SeparationPass:
    """One pass over the video: separate it, measure the layers, encode the chosen ones and the
    preview into ``work`` (in the background), all at once.

    The layers to write are chosen on the first finished frames (:meth:`LayerStats.choose`), so
    that only they are encoded; the caller checks the choice on the whole video's statistics and,
    in the rare case it changed, calls again with ``choice`` fixed.
    """

    def __init__(
        self,
        separator: Separator,
        reader: VideoReader,
        work: Path,
        which: Literal["2", "all"],
        progress: Callable[[int, int], None] | None,
        on_layers: Callable[[int, torch.Tensor], None] | None,
        detail: bool = False,
    ) -> None:
        self.separator, self.reader, self.work, self.which = separator, reader, work, which
        self.progress, self.on_layers = progress, on_layers
        self.detail = detail  # add the differences to the full-size input (a residual model)
        m = layer_count(separator.n_outputs, which)
        paths = result_files(work, m)  # renamed into the result folder when the pass holds
        self.layer_files, self.preview_file = paths["layers"], paths["preview"]

    def _writers(self, m: int) -> tuple[list[VideoWriter], PreviewWriter]:
        info = self.reader.info
        shape = (info.height, info.width)
        writers: list[VideoWriter] = []
        try:
            for path in self.layer_files[:m]:
                writers.append(
                    VideoWriter(
                        path,
                        fps=info.rate,
                        width=shape[1],
                        height=shape[0],
                        audio_from=self.reader.path,
                        audio_start=info.start,
                        threads=1,  # the model owns the cores; one encoder thread writes all
                        preset=LAYER_PRESET,
                        overwrite=True,
                    )
                )
            preview = PreviewWriter(
                self.preview_file,
                fps=info.rate,
                shape=shape,
                n_layers=m,
                frames=info.frames,
                audio_from=self.reader.path,
                audio_start=info.start,
                preset=PREVIEW_PRESET,
            )
        except BaseException:
            for writer in writers:
                writer.abort()
            raise
        return writers, preview

    def __call__(
        self, choice: list[Group] | None = None
    ) -> tuple[list[Group], LayerStats, int, list[list[torch.Tensor]]]:
        """Returns the chosen groups of outputs (each written layer is the mean of one), the
        statistics of the whole video, the frame count and the contact-sheet frames."""
        info = self.reader.info
        stats = LayerStats(self.separator.n_outputs, every=STATS_EVERY)
        encoder: _Encoder | None = None
        writers: list[VideoWriter] = []
        chosen = choice
        done = 0
        stream = self.separator.stream(self.reader)
        try:
            for start, layers, frames in stream:
                if self.on_layers is not None:
                    self.on_layers(start, layers)
                stats.add(layers, frames, start)
                if encoder is None:
                    chosen = chosen or stats.choose(self.which)
                    writers, preview = self._writers(len(chosen))
                    full = VideoReader(self.reader.path).frames() if self.detail else None
                    encoder = _Encoder(writers, (info.height, info.width), preview, full)
                encoder.put(compose(layers, chosen), frames)
                done = start + layers.shape[2]
                if self.progress is not None:
                    self.progress(done, info.frames)
            encoder.finish()
            for writer in writers:
                writer.close()
            contact = encoder.preview.close()
        except BaseException:
            stream.close()  # stops the decoding thread now, not when the traceback is dropped
            if encoder is not None:
                encoder.stop()
                encoder.preview.abort()
            for writer in writers:
                writer.abort()
            raise
        return chosen, stats, done, contact
