"""Regenerate the bundled tracks in resources/tracks/: `python -m control.track.make_bundled_tracks`."""
from __future__ import annotations

import sys

from control.track.generate import BUNDLED_TRACK_SHAPES, bundled_track, validate_track
from control.track.track import BUNDLED_TRACKS_DIR


def main() -> int:
    """Write every bundled track as a DeepRacer .npy file; fail if one is invalid."""
    for name in BUNDLED_TRACK_SHAPES:
        track = bundled_track(name)
        problem = validate_track(track)
        if problem:
            print(f"bundled track '{name}' is invalid: {problem}", file=sys.stderr)
            return 1
        path = track.to_npy(BUNDLED_TRACKS_DIR / f"{name}.npy")
        print(f"{path}: {track}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
