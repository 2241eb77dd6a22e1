"""The environment layer (DESIGN.md layer 3): RacingEnv, RacingVectorEnv, observation and action types."""
# DeepRacer's lidar types register themselves in observations.OBSERVATION_TYPES; imported here, not by
# observations.py, because they subclass its types (no import cycle; every control.env import runs this first).
from control.env import lidar_observations as _lidar_observations  # noqa: F401
