"""What ``report.json`` says about how an input was read (:func:`source_notes`)."""

from __future__ import annotations

from centrifuge.video.audio import audio_plan
from centrifuge.video.probe import VideoInfo

__all__ = ["source_notes"]


def source_notes(info: VideoInfo) -> dict:
    """``{"rotation", "mirrored", "hidden_frames", "undecodable_frames", "first_frame_seconds",
    "audio"}``: the turn applied to show the stored pictures upright (degrees counter-clockwise,
    :attr:`VideoInfo.rotation`), frames of the file that were not separated because players do not
    show them (hidden by an edit list; before the first key frame of a file that starts mid-GOP),
    the container time of the first separated frame, and what became of each audio stream
    (:func:`~centrifuge.video.audio.audio_plan`)."""
    return {
        "rotation": info.rotation,
        "mirrored": info.turn[1],
        "hidden_frames": info.hidden_frames,
        "undecodable_frames": info.undecodable_frames,
        "first_frame_seconds": info.start,
        "audio": audio_plan(info.path) if info.has_audio else [],
    }
