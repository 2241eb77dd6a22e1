"""A track as the page draws it: centerline and borders as short lists of (x, y) metres."""
from __future__ import annotations

from typing import Any

import numpy as np

MAX_OUTLINE_POINTS = 400  # enough for a smooth border at the page's size; keeps a message small


def track_outline(track: Any, max_points: int = MAX_OUTLINE_POINTS) -> dict[str, Any]:
    """{name, length_m, center, inner, outer} of a Track, each border thinned to at most max_points points (mm)."""
    step = max(1, int(np.ceil(len(track.center_m) / max_points)))

    def thin(points_m: np.ndarray) -> list[list[float]]:
        pts = np.asarray(points_m, dtype=np.float64)[::step]
        return np.round(pts, 3).tolist()

    return {"name": str(track.name), "length_m": round(float(track.length_m), 3),
            "center": thin(track.center_m), "inner": thin(track.inner_m), "outer": thin(track.outer_m)}
