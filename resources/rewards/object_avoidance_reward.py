"""DeepRacer object-avoidance reward (paste-able into the DeepRacer console as is).

    # env_config: {race: {type: object_avoidance}, reward: resources/rewards/object_avoidance_reward.py}

Written in the style of DeepRacer's own object-avoidance example: it reads `closest_objects`, takes
the object ahead (`[behind, ahead]`, the second index), and compares `objects_left_of_center` of
that object with the car's `is_left_of_center` to tell whether the car is in the box's lane. Three
parts, weighted like DeepRacer's example (1 for the lane, 4 for avoiding):

- lane: 1 while all wheels are on the track with a 5 cm margin to the border, else 1e-3;
- avoid: 1 in the other lane; in the box's lane it falls as the car closes in (straight-line
  distance to the box's centre from `objects_location`): 0.5 under 0.8 m, 0.2 under 0.5 m,
  1e-3 under 0.3 m (about touching a 0.3 m box);
- speed: the lane and avoid parts are scaled by speed / 4 m/s so that standing still pays less
  than driving (DeepRacer's example has no speed term; an env step here lasts 1/15 s either way).

A crash (`is_crashed`) or leaving the track (`is_offtrack`) earns 1e-3.
"""
import math

MAX_SPEED_MPS = 4.0  # DeepRacer's top speed: the speed factor is 1 there


def reward_function(params):
    """DeepRacer's reward_function(params): stay on the track, keep out of the next box's lane, keep moving."""
    if params["is_crashed"] or params["is_offtrack"]:
        return 1e-3
    all_wheels_on_track = params["all_wheels_on_track"]
    distance_from_center = params["distance_from_center"]
    track_width = params["track_width"]
    objects_location = params["objects_location"]
    objects_left_of_center = params["objects_left_of_center"]
    is_left_of_center = params["is_left_of_center"]
    car_x, car_y = params["x"], params["y"]

    if all_wheels_on_track and (0.5 * track_width - distance_from_center) >= 0.05:
        reward_lane = 1.0
    else:
        reward_lane = 1e-3

    reward_avoid = 1.0
    if params["closest_objects"]:  # empty in a time trial: nothing to avoid
        _, next_object_index = params["closest_objects"]
        next_x, next_y = objects_location[next_object_index]
        distance_to_next_m = math.hypot(car_x - next_x, car_y - next_y)
        if objects_left_of_center[next_object_index] == is_left_of_center:  # in the box's lane
            if distance_to_next_m < 0.3:
                reward_avoid = 1e-3
            elif distance_to_next_m < 0.5:
                reward_avoid = 0.2
            elif distance_to_next_m < 0.8:
                reward_avoid = 0.5

    speed_factor = min(max(params["speed"] / MAX_SPEED_MPS, 0.0), 1.0)
    return float(1e-3 + speed_factor * (1.0 * reward_lane + 4.0 * reward_avoid))
