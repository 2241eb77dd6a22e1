"""`make analyze NAME=...`: a run's state log → DeepRacer log-analysis staples (per-iteration curves, heatmap, actions).

Reads results/<NAME>/state_log/*.csv (DeepRacer SIM_TRACE columns first; a last row torn by a
killed run is skipped with a notice) and writes under
results/<NAME>/analysis/: training_progress.png (reward, progress, lap time per iteration),
reward_heatmap.png, action_distribution.png, episodes.csv and iterations.csv.
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import Any

import numpy as np

from control.errors import UserError
from control.training.run_folder import CONFIG_FILENAME, STATE_LOG_DIRNAME

ANALYSIS_DIRNAME = "analysis"


def read_state_log(log_dir: Path, evaluation: bool = False) -> Any:
    """All rows of the training (or evaluation: eval_*) CSV files as one pandas DataFrame."""
    import pandas as pd

    files = sorted(p for p in log_dir.glob("*.csv") if p.name.startswith("eval_") == evaluation)
    if not files:
        kind = "evaluation " if evaluation else ""
        raise UserError(f"no {kind}state log files in {log_dir}; train with --state_log "
                        "(make -C control train ARGS=--state_log) to write them")
    frames = [read_state_log_file(f) for f in files if f.stat().st_size > 0]
    data = pd.concat([f for f in frames if len(f)], ignore_index=True) if frames else pd.DataFrame()
    if data.empty:
        raise UserError(f"the state log files in {log_dir} hold no rows yet; let the run sample a few episodes")
    return data


def read_state_log_file(path: Path) -> Any:
    """One state log file as a DataFrame; a torn last row (no final newline: the writer was killed) is skipped with a notice."""
    import pandas as pd

    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        whole = raw[: raw.rfind(b"\n") + 1]
        print(f"notice: {path}: skipped a torn last row ({len(raw) - len(whole)} bytes; the run was killed while "
              "writing it)", file=sys.stderr)
        raw = whole
    if not raw:
        return pd.DataFrame()
    return pd.read_csv(io.BytesIO(raw))


def episode_table(data: Any) -> Any:
    """One row per finished episode: iteration, steps, total reward, final progress, status, lap time (s)."""
    import pandas as pd

    key = "episode_id" if "episode_id" in data.columns else ["iteration", "worker_index", "episode"]
    rows = []
    for _, ep in data.groupby(key, sort=False):
        last = ep.iloc[-1]
        if not bool(last["done"]):
            continue  # still running when the log ends
        status = str(last["episode_status"])
        rows.append({
            "iteration": int(ep["iteration"].iloc[0]) if "iteration" in ep else 0,
            "steps": int(last["steps"]),
            "total_reward": float(ep["reward"].sum()),
            "progress": 100.0 if status == "lap_complete" else float(ep["progress"].max()),
            "status": status,
            "lap_time_s": float(last["tstamp"]) if status == "lap_complete" else np.nan,
            "mean_speed_mps": float(ep["speed"].mean()) if "speed" in ep else float(ep["throttle"].mean()),
        })
    return pd.DataFrame(rows, columns=["iteration", "steps", "total_reward", "progress", "status", "lap_time_s",
                                       "mean_speed_mps"])


def iteration_table(episodes: Any) -> Any:
    """Per iteration: episodes, mean reward, mean progress, laps completed, mean and best lap time, crash rate.

    crash_rate: the share of episodes that ended crashed into a box or bot (object-avoidance and head-to-bot races).
    """
    grouped = episodes.groupby("iteration")
    out = grouped.agg(episodes=("status", "size"), mean_reward=("total_reward", "mean"),
                      mean_progress=("progress", "mean"), mean_lap_time_s=("lap_time_s", "mean"),
                      best_lap_time_s=("lap_time_s", "min"))
    out["laps_completed"] = grouped["status"].apply(lambda s: int((s == "lap_complete").sum()))
    out["crash_rate"] = grouped["status"].apply(lambda s: float((s == "crashed").mean()))
    return out.reset_index()


def plot_training_progress(iterations: Any, path: Path) -> Path:
    """Reward, progress and lap time per iteration (DeepRacer's training graph), three panels."""
    from control.rollout.plots import plt, save_figure  # plots sets the file-only Agg backend

    fig, axes = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    it = iterations["iteration"]
    axes[0].plot(it, iterations["mean_reward"], marker="o")
    axes[0].set_ylabel("mean episode reward")
    axes[1].plot(it, iterations["mean_progress"], marker="o", color="tab:green")
    axes[1].set_ylabel("mean progress (%)")
    axes[1].set_ylim(0, 105)
    axes[2].plot(it, iterations["mean_lap_time_s"], marker="o", color="tab:red", label="mean")
    axes[2].plot(it, iterations["best_lap_time_s"], marker="v", linestyle=":", color="tab:red", label="best")
    axes[2].set_ylabel("lap time (s)\n(completed laps)")
    axes[2].legend(loc="upper right")
    axes[2].set_xlabel("training iteration")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle("training progress from the state log")
    return save_figure(fig, path)


def plot_action_distribution(data: Any, path: Path) -> Path:
    """Discrete actions: how often each index was chosen; continuous: a 2D histogram of steering × speed command."""
    from control.rollout.plots import plt, save_figure  # plots sets the file-only Agg backend

    fig, ax = plt.subplots(figsize=(8, 5.5))
    actions = data["action"].to_numpy()
    if np.all(actions >= 0):
        counts = data.groupby("action").agg(n=("action", "size"), steer=("steer", "first"), speed=("throttle", "first"))
        labels = [f"{int(i)}\n{r.steer:g}°, {r.speed:g}" for i, r in counts.iterrows()]
        ax.bar(range(len(counts)), counts["n"] / counts["n"].sum() * 100)
        ax.set_xticks(range(len(counts)), labels, fontsize="small")
        ax.set_xlabel("action index (steering, speed m/s)")
        ax.set_ylabel("share of steps (%)")
    else:
        h = ax.hist2d(data["steer"], data["throttle"], bins=(31, 20), cmap="magma")
        fig.colorbar(h[3], ax=ax, label="steps")
        ax.set_xlabel("steering command (deg, negative = right)")
        ax.set_ylabel("speed command (m/s)")
    ax.set_title(f"action distribution over {len(data)} steps")
    return save_figure(fig, path)


def run_track(run_folder: Path) -> Any:
    """The Track the run trained on (its config.yaml), or None when it is procedural or cannot be loaded."""
    import yaml

    from control.track.track import Track

    config_path = run_folder / CONFIG_FILENAME
    if not config_path.is_file():
        return None
    spec = ((yaml.safe_load(config_path.read_text()) or {}).get("env_config") or {}).get("track", "oval")
    spec = spec[0] if isinstance(spec, list) else spec
    if spec == "procedural":
        return None
    try:
        return Track.load(spec)
    except UserError as exc:
        print(f"warning: heatmap without the track drawn: {exc}", file=sys.stderr)
        return None


def analyze_run(run_folder: Path, out_dir: Path | None = None, evaluation: bool = False) -> list[Path]:
    """Write the analysis of a run's state log; returns the files written."""
    from control.rollout.plots import plot_reward_on_track

    if not run_folder.is_dir():
        raise UserError(f"no run folder {run_folder}; expected results/<NAME>/ written by ppo_train.py -n NAME")
    data = read_state_log(run_folder / STATE_LOG_DIRNAME, evaluation)
    out_dir = out_dir or run_folder / ANALYSIS_DIRNAME
    out_dir.mkdir(parents=True, exist_ok=True)
    episodes = episode_table(data)
    iterations = iteration_table(episodes)
    written = [out_dir / "episodes.csv", out_dir / "iterations.csv"]
    episodes.to_csv(written[0], index=False)
    iterations.to_csv(written[1], index=False)
    written.append(plot_training_progress(iterations, out_dir / "training_progress.png"))
    written.append(plot_reward_on_track(run_track(run_folder), data["X"].to_numpy(), data["Y"].to_numpy(),
                                        data["reward"].to_numpy(), out_dir / "reward_heatmap.png",
                                        f"{run_folder.name}: reward per step over {len(data)} logged steps"))
    written.append(plot_action_distribution(data, out_dir / "action_distribution.png"))
    if len(iterations):
        last = iterations.iloc[-1]
        print(f"{len(episodes)} finished episodes over {len(iterations)} iterations; last iteration: "
              f"mean reward {last['mean_reward']:.2f}, mean progress {last['mean_progress']:.1f} %, "
              f"laps {int(last['laps_completed'])}/{int(last['episodes'])}")
    return written


def main(argv: list[str] | None = None) -> int:
    """python -m control.rollout.analyze -n NAME [--results_dir DIR] [--out DIR] [--evaluation]."""
    p = argparse.ArgumentParser(prog="python -m control.rollout.analyze", description=__doc__.splitlines()[0])
    p.add_argument("-n", "--name", required=True, help="the run (results/<NAME>/)")
    p.add_argument("--results_dir", help="folder holding runs (default: $RESULTS or results/ at the repo root)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: RUN/analysis)")
    p.add_argument("--evaluation", action="store_true", help="analyse the evaluation runners' logs (eval_*.csv)")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    from control.training.run_folder import default_results_dir

    results_dir = Path(args.results_dir).resolve() if args.results_dir else default_results_dir()
    try:
        written = analyze_run(results_dir / args.name, Path(args.out).resolve() if args.out else None, args.evaluation)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("wrote: " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
