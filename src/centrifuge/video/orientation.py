"""How a stored picture is turned to be shown: the display matrix of phones and cameras.

A phone held upright stores landscape pictures and a display matrix saying "turn by 90 degrees";
players turn them, so the layers must be turned too. :func:`orientation` reads the matrix of a
decoded frame as one of the eight turns and mirrors of the pixel grid (the same cases FFmpeg's
own command line applies), and :func:`orient` applies it to a uint8 ``[H, W, 3]`` picture.
"""

from __future__ import annotations

import numpy as np

__all__ = ["IDENTITY", "Orientation", "orient", "orientation", "stored_shape"]

# (quarter turns counter-clockwise, then mirror left-right): np.rot90's k, then np.fliplr
Orientation = tuple[int, bool]
IDENTITY: Orientation = (0, False)


def _display_matrix(frame) -> np.ndarray | None:
    """The 3x3 int32 display matrix of a decoded ``av.VideoFrame`` (``None``: none)."""
    from av.sidedata.sidedata import Type

    data = frame.side_data.get(Type.DISPLAYMATRIX)
    if data is None or len(bytes(data)) != 36:
        return None
    return np.frombuffer(bytes(data), dtype=np.int32)


def orientation(frame) -> Orientation:
    """The turn (and mirror) that shows a decoded ``av.VideoFrame`` as players show it.

    FFmpeg's matrix maps shown positions to stored ones; like ``ffmpeg``'s automatic rotation,
    angles are rounded to the nearest quarter turn and the mirror is read from the matrix's signs.
    """
    m = _display_matrix(frame)
    if m is None:
        return IDENTITY
    # clockwise angle of the picture as shown, as ffmpeg's get_rotation() computes it
    col0, col1 = np.hypot(float(m[0]), float(m[3])), np.hypot(float(m[1]), float(m[4]))
    if col0 == 0 or col1 == 0:
        return IDENTITY
    theta = np.degrees(np.arctan2(float(m[1]) / col1, float(m[0]) / col0))
    quarter = round(theta / 90.0) % 4
    if quarter == 1:  # ffmpeg: transpose "clock", or "cclock_flip" (a transpose) when mirrored
        return (3, True) if m[3] > 0 else (3, False)
    if quarter == 3:  # "cclock", or "clock_flip"
        return (1, True) if m[3] < 0 else (1, False)
    if quarter == 2:  # hflip and/or vflip
        h, v = m[0] < 0, m[4] < 0
        return {(True, True): (2, False), (True, False): (0, True), (False, True): (2, True)}.get(
            (bool(h), bool(v)), IDENTITY
        )
    return (2, True) if m[4] < 0 else IDENTITY  # a vertical flip only


def stored_shape(shape: tuple[int, int], turn: Orientation) -> tuple[int, int]:
    """The ``(H, W)`` to convert a stored picture to, so that it shows as ``shape``."""
    return (shape[1], shape[0]) if turn[0] % 2 else shape


def orient(picture: np.ndarray, turn: Orientation) -> np.ndarray:
    """uint8 ``[H, W, 3]`` as stored -> as shown (``[W, H, 3]`` for a quarter turn)."""
    k, mirror = turn
    if k == 0 and not mirror:
        return picture
    out = np.rot90(picture, k) if k else picture
    if mirror:
        out = np.fliplr(out)
    return np.ascontiguousarray(out)
