"""Video input/output, window arithmetic and pure frame transforms."""

from centrifuge.video.io import (
    VideoInfo,
    VideoReader,
    VideoWriter,
    probe_video,
    read_video,
    write_video,
)

__all__ = ["VideoInfo", "VideoReader", "VideoWriter", "probe_video", "read_video", "write_video"]
