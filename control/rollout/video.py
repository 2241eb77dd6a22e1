"""MP4 video of a rollout at the env's control rate (imageio + the ffmpeg binary from imageio-ffmpeg)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


class VideoRecorder:
    """Receives (episode, frame) and writes episode_NNN.mp4 per episode, or one rollout.mp4 when `single`."""

    def __init__(self, out_dir: Path, fps: float, single: bool = False) -> None:
        self.out_dir = Path(out_dir)
        self.fps = float(fps)
        self.single = single
        self.paths: list[Path] = []
        self.frame_counts: dict[Path, int] = {}
        self._writer: Any = None
        self._episode: int | None = None

    def __call__(self, episode: int, frame: np.ndarray) -> None:
        """Append a frame; a new episode opens a new file unless `single`."""
        if self._writer is None or (not self.single and episode != self._episode):
            self._open("rollout.mp4" if self.single else f"episode_{episode:03d}.mp4")
        self._episode = episode
        self._writer.append_data(np.ascontiguousarray(frame, dtype=np.uint8))
        self.frame_counts[self.paths[-1]] += 1

    def _open(self, filename: str) -> None:
        import imageio.v2 as imageio

        self.close()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / filename
        # H.264 in yuv420p plays everywhere (browsers, MLflow UI); frames are 800x480, a multiple of 16.
        self._writer = imageio.get_writer(path, fps=self.fps, codec="libx264", quality=7, pixelformat="yuv420p",
                                          macro_block_size=16, ffmpeg_log_level="error")
        self.paths.append(path)
        self.frame_counts[path] = 0

    def close(self) -> None:
        """Finish the open file."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> "VideoRecorder":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
