"""Video reading and writing, window arithmetic and pure frame transforms."""

from centrifuge.video.read import VideoInfo, VideoReader, probe_video, read_video
from centrifuge.video.write import VideoWriter, write_video

__all__ = ["VideoInfo", "VideoReader", "VideoWriter", "probe_video", "read_video", "write_video"]
