"""MP4 videos of played games: one file per game (``cv2.VideoWriter``, MPEG-4 'mp4v'), written
frame by frame while the games run. The game streams' ``evaluate(..., video=paths)`` use it.

This module imports nothing from ``agents``, ``regularizers`` or ``continual``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


class EpisodeVideos:
    """One MP4 per game: ``add(i, rgb)`` appends an RGB frame (H, W, 3) uint8 to game i's
    video (opened at its first frame, whose size every later frame must have); ``close()``
    finishes every file. Parent folders are made."""

    def __init__(self, paths: Sequence[str | Path], fps: float):
        self.paths = [Path(p) for p in paths]
        self.fps = float(fps)
        self._writers: dict[int, object] = {}
        self.frames = [0] * len(self.paths)

    def add(self, i: int, rgb: np.ndarray) -> None:
        import cv2
        rgb = np.asarray(rgb)
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"a video frame must be uint8 (H, W, 3) RGB, got {rgb.dtype} "
                             f"{rgb.shape}")
        w = self._writers.get(i)
        if w is None:
            path = self.paths[i]
            path.parent.mkdir(parents=True, exist_ok=True)
            w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                (rgb.shape[1], rgb.shape[0]))
            if not w.isOpened():
                raise ValueError(f"cannot write the video {path} (OpenCV's mp4v writer did not "
                                 f"open it): check that the folder is writable and that the "
                                 f"name ends in .mp4")
            self._writers[i] = w
        w.write(np.ascontiguousarray(rgb[:, :, ::-1]))      # OpenCV writes BGR
        self.frames[i] += 1

    def add_active(self, frames: np.ndarray, active: np.ndarray) -> None:
        """Frame ``frames[i]`` to game i's video for every game still running."""
        for i in np.flatnonzero(active):
            self.add(int(i), frames[i])

    def close(self) -> None:
        for w in self._writers.values():
            w.release()
        self._writers = {}


def check_paths(video: Sequence | None, episodes: int) -> list[Path] | None:
    """``video`` of an ``evaluate`` call: None, or one path per game."""
    if video is None:
        return None
    paths = [Path(p) for p in video]
    if len(paths) != episodes:
        raise ValueError(f"evaluate: {len(paths)} video path(s) for {episodes} games; give one "
                         f"per game")
    return paths
