"""Rollouts of trained policies: inference from a checkpoint, video, DeepRacer-style metrics, plots, log analysis."""
