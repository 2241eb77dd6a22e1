"""DeepRacer head-to-bot reward (paste-able into the DeepRacer console as is).

    # env_config: {race: {type: head_to_bot}, reward: resources/rewards/head_to_bot_reward.py}

The bot cars drive slower than the car can, so laps are won by passing them. In the style of
DeepRacer's object-avoidance example, it reads `closest_objects` ([behind, ahead]) and compares
the lane of the bot ahead (`objects_left_of_center`) with the car's `is_left_of_center`:

- lane: 1 while all wheels are on the track with a 5 cm margin to the border, else 1e-3;
- gap: 1 when the bot ahead is in the other lane or more than 1.5 m away (straight line between
  centres, from `objects_location`); in its lane and closer, it falls linearly to 1e-3 at 0.5 m
  (about touching: a bot car is 0.4 m long), which pays for pulling out to pass;
- speed: everything is scaled by speed / 4 m/s, so following a slow bot pays less than passing it.

A crash into a bot (`is_crashed`) or leaving the track (`is_offtrack`) earns 1e-3.
"""
import math

MAX_SPEED_MPS = 4.0  # DeepRacer's top speed: the speed factor is 1 there
SAFE_GAP_M = 1.5  # a bot ahead in the car's lane further than this costs nothing
TOUCH_GAP_M = 0.5  # centre to centre of two 1/18 cars nose to tail


def reward_function(params):
    """DeepRacer's reward_function(params): stay on the track, do not tailgate the bot ahead in its lane, drive fast."""
    if params["is_crashed"] or params["is_offtrack"]:
        return 1e-3
    track_width = params["track_width"]
    if params["all_wheels_on_track"] and (0.5 * track_width - params["distance_from_center"]) >= 0.05:
        reward_lane = 1.0
    else:
        reward_lane = 1e-3

    reward_gap = 1.0
    if params["closest_objects"]:  # empty in a time trial: nobody to pass
        _, next_bot = params["closest_objects"]
        bot_x, bot_y = params["objects_location"][next_bot]
        gap_m = math.hypot(params["x"] - bot_x, params["y"] - bot_y)
        same_lane = params["objects_left_of_center"][next_bot] == params["is_left_of_center"]
        if same_lane and gap_m < SAFE_GAP_M:
            reward_gap = max(1e-3, (gap_m - TOUCH_GAP_M) / (SAFE_GAP_M - TOUCH_GAP_M))

    speed_factor = min(max(params["speed"] / MAX_SPEED_MPS, 0.0), 1.0)
    return float(1e-3 + speed_factor * (1.0 * reward_lane + 2.0 * reward_gap))
