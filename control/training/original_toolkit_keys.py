"""The original CARLA racing toolkit's config names that the loader recognises and the migrate command converts."""
from __future__ import annotations

# The original toolkit's env ids -> (this project's env id, what its wrapper did and what takes its place).
ORIGINAL_ENV_IDS: dict[str, tuple[str, str]] = {
    "carla-racer": ("RacerVLidar-v0", "ray-distance observation: the virtual lidar"),
    "carla-racer-minmax": ("RacerVLidar-v0", "min-max scaled rays: the virtual lidar is already distance / max_range_m in [0, 1]"),
    "carla-racer-norm": ("RacerVLidar-v0", "running mean/std normalisation: observation_filter MeanStdFilter"),
    "carla-racer-metrics": ("RacerVLidar-v0", "metrics wrapper: lap metrics are logged every iteration here"),
    "carla-camera": ("RacerCamera-v0", "front camera observation"),
}
# Sections and keys of the original toolkit's env_config (any one marks a file as the original format).
ORIGINAL_ENV_KEYS = ("carla", "action", "sensor", "track", "ego_vehicle_filter", "max_time_episode", "reward_name",
                     "spawn_points", "spawn_mode", "n_spawn_points", "consequent_mode_step", "spawn_off_center",
                     "background", "weather", "augmentations")
MIGRATE_COMMAND = "python -m control.training.migrate"
