"""PNG plots that explain a policy: trajectories by speed, reward on the track, speed and steering per step."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from control.rollout.episodes import EpisodeRecord  # noqa: E402

ROAD_COLOUR = "#505055"


def draw_track(ax: Any, track: Any) -> None:
    """The road between the borders, the centerline dashed, the start waypoint marked; equal axes in metres."""
    inner, outer = np.vstack([track.inner_m, track.inner_m[:1]]), np.vstack([track.outer_m, track.outer_m[:1]])
    # A filled ring: the outer polygon and the reversed inner one as a single closed path.
    ring = np.vstack([outer, inner[::-1]])
    ax.fill(ring[:, 0], ring[:, 1], color=ROAD_COLOUR, alpha=0.25, linewidth=0)
    ax.plot(inner[:, 0], inner[:, 1], color="k", linewidth=1)
    ax.plot(outer[:, 0], outer[:, 1], color="k", linewidth=1)
    center = np.vstack([track.center_m, track.center_m[:1]])
    ax.plot(center[:, 0], center[:, 1], color="0.5", linewidth=0.8, linestyle="--")
    ax.plot(*track.center_m[0], marker="o", color="k", markersize=5)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")


def save_figure(fig: Any, path: Path) -> Path:
    """Write `fig` as a PNG at `path` (folders made) and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _by_track(records: Sequence[EpisodeRecord]) -> dict[str, list[EpisodeRecord]]:
    groups: dict[str, list[EpisodeRecord]] = {}
    for r in records:
        groups.setdefault(r.track_name, []).append(r)
    return groups


def plot_trajectories(records: Sequence[EpisodeRecord], path: Path, max_speed_mps: float) -> Path:
    """Every episode's path on its track, coloured by measured speed up to the car's top speed (its VehicleLimits)."""
    groups = _by_track(records)
    fig, axes = plt.subplots(1, len(groups), figsize=(7 * len(groups), 6), squeeze=False)
    scatter = None
    for ax, (name, group) in zip(axes[0], groups.items(), strict=False):
        draw_track(ax, group[0].track)
        for r in group:
            s = r.steps
            scatter = ax.scatter(s["x_m"], s["y_m"], c=s["speed_mps"], cmap="plasma", vmin=0.0, vmax=max_speed_mps,
                                 s=6, linewidths=0)
            ax.plot(*r.start_xy_m, marker="^", color="tab:green", markersize=7)
            ax.plot(s["x_m"][-1:], s["y_m"][-1:], marker="x", color="tab:red", markersize=7)
            if r.objects_xy_m:  # the boxes (or the bots' start places) of the episode: squares
                bots = r.race_type == "head_to_bot"
                objects = np.asarray(r.objects_xy_m, dtype=float)
                ax.plot(objects[:, 0], objects[:, 1], linestyle="none", marker="s", markersize=6, markeredgecolor="k",
                        color="tab:blue" if bots else "tab:orange", label="bots at the start" if bots else "boxes")
        if any(r.objects_xy_m for r in group):
            handles, labels = ax.get_legend_handles_labels()
            ax.legend(handles[:1], labels[:1], loc="upper right", fontsize=8)  # one entry, not one per episode
        ax.set_title(f"{name}: {len(group)} episode(s), trajectories by speed (^ start, x end)")
    if scatter is not None:
        fig.colorbar(scatter, ax=axes[0].tolist(), label="speed (m/s)", shrink=0.6)
    return save_figure(fig, path)


def plot_reward_on_track(track: Any, x_m: np.ndarray, y_m: np.ndarray, reward: np.ndarray, path: Path,
                         title: str = "reward per step on the track") -> Path:
    """Each step's reward at the car's position (DeepRacer log analysis' reward heatmap)."""
    fig, ax = plt.subplots(figsize=(8, 6.5))
    if track is not None:
        draw_track(ax, track)
    order = np.argsort(reward)  # high rewards on top, so the good line stays visible
    sc = ax.scatter(np.asarray(x_m)[order], np.asarray(y_m)[order], c=np.asarray(reward)[order], cmap="viridis",
                    s=8, linewidths=0)
    ax.set_aspect("equal")
    fig.colorbar(sc, ax=ax, label="reward", shrink=0.8)
    ax.set_title(title)
    return save_figure(fig, path)


def plot_reward_heatmap(records: Sequence[EpisodeRecord], path: Path) -> Path:
    """Reward along the track for all episodes of the rollout (the first track when several)."""
    first = _by_track(records)
    name, group = next(iter(first.items()))
    cat = {k: np.concatenate([r.steps[k] for r in group]) for k in ("x_m", "y_m", "reward")}
    return plot_reward_on_track(group[0].track, cat["x_m"], cat["y_m"], cat["reward"], path,
                                f"{name}: reward per step ({len(group)} episode(s))")


def plot_speed_steering(records: Sequence[EpisodeRecord], path: Path) -> Path:
    """Per step: measured and commanded speed, measured and commanded steering, reward and progress."""
    fig, axes = plt.subplots(4, 1, figsize=(11, 10), sharex=True)
    for r in records:
        s = r.steps
        t = s["time_s"]
        line, = axes[0].plot(t, s["speed_mps"], label=f"ep {r.index}")
        axes[0].plot(t, s["speed_cmd_mps"], color=line.get_color(), linestyle=":", linewidth=0.8)
        axes[1].plot(t, s["steering_deg"], color=line.get_color())
        axes[1].plot(t, s["steering_cmd_deg"], color=line.get_color(), linestyle=":", linewidth=0.8)
        axes[2].plot(t, s["reward"], color=line.get_color())
        axes[3].plot(t, s["progress"], color=line.get_color())
    axes[0].set_ylabel("speed (m/s)\n— measured, ··· command")
    axes[1].set_ylabel("steering (deg)\n— measured, ··· command")
    axes[2].set_ylabel("reward")
    axes[3].set_ylabel("progress (%)")
    axes[3].set_xlabel("time (s)")
    axes[0].legend(loc="upper right", fontsize="small", ncol=min(len(records), 6))
    for ax in axes:
        ax.grid(alpha=0.3)
    return save_figure(fig, path)


def write_rollout_plots(records: Sequence[EpisodeRecord], out_dir: Path, max_speed_mps: float) -> list[Path]:
    """trajectories.png, reward_heatmap.png and speed_steering.png under out_dir."""
    return [
        plot_trajectories(records, out_dir / "trajectories.png", max_speed_mps),
        plot_reward_heatmap(records, out_dir / "reward_heatmap.png"),
        plot_speed_steering(records, out_dir / "speed_steering.png"),
    ]
