"""Domain randomisation of what the camera sees: per-episode looks, drawn from each car's own generator.

Only pixels change; rays, params and rewards never do. Each car gets new looks when its episode
starts: colours of the built-in camera's palette classes (grass, road, border and centre lines,
sky), brightness, contrast, gamma, sensor-noise strength and blur, and the camera's pose: lens
height, pitch and field of view jittered around the simulator's camera (issue 13; the built-in
camera renders each car through its own lens). They stay fixed for the episode; the noise itself
is fresh every frame. Looks come from a child of the car's generator
(`Generator.spawn`), which leaves the car's own stream, and so its tracks and start poses, as they
would be without randomisation. Everything is vectorised over (k, H, W, C) uint8 frames.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import numpy as np
from pydantic import Field, Strict

from control.config_schema import Expect, Flag, NonNegativeNumber, Section
from control.sim.base import CameraSpec
from control.sim.camera import PALETTE_GRAY, PALETTE_RGB, LensPoses

Fraction = Annotated[float, Strict(), Field(ge=0, le=1, allow_inf_nan=False), Expect("a number in [0, 1]")]
BelowOne = Annotated[float, Strict(), Field(ge=0, lt=1, allow_inf_nan=False), Expect("a number in [0, 1)")]
NUM_CLASSES = len(PALETTE_RGB)
_UNKNOWN = NUM_CLASSES  # a pixel that is no palette colour (another backend's frame): its colour is kept
# A jittered lens stays a camera that sees the ground: these bounds clip the drawn pose.
MIN_LENS_HEIGHT_M, MAX_PITCH_DEG, MIN_FOV_DEG, MAX_FOV_DEG = 0.01, 85.0, 5.0, 175.0


class AppearanceRandomization(Section):
    """env_config.observation.randomize: per-episode looks of the camera image (off by default)."""

    enabled: Flag = Field(False, description="randomise the looks at every episode start (false: frames as rendered)")
    colors: Flag = Field(True, description="recolour the built-in camera's grass, road, lines and sky")
    color_jitter: Fraction = Field(0.25, description="each class colour moves by up to this fraction of 255 per channel")
    brightness: Fraction = Field(0.15, description="offset drawn in [-brightness, brightness], fraction of full scale")
    contrast: BelowOne = Field(0.3, description="contrast factor drawn in [1 - contrast, 1 + contrast]")
    gamma: BelowOne = Field(0.3, description="gamma drawn in [1 - gamma, 1 + gamma]")
    noise_std: Fraction = Field(0.03, description="largest sensor-noise standard deviation (per episode in [0, noise_std]), fraction of full scale")
    blur: Fraction = Field(0.5, description="largest blend towards a 3x3 box blur (per episode in [0, blur])")
    camera_height_m: NonNegativeNumber = Field(0.0, description="lens height moves by up to this per episode, m (0: off; e.g. 0.02)")
    camera_pitch_deg: NonNegativeNumber = Field(0.0, description="lens pitch moves by up to this per episode, degrees (0: off; e.g. 3)")
    camera_fov_deg: NonNegativeNumber = Field(0.0, description="horizontal field of view moves by up to this per episode, degrees (0: off; e.g. 10)")
    unseen: Flag = Field(False, description="evaluation: colours, brightness, contrast and gamma drawn just outside the ranges above, "
                                            "never inside (see unseen_appearance); noise, blur and the lens as above")


# How far beyond training's ranges the unseen preset draws: colour offsets, brightness offsets and
# contrast/gamma factors land in a band this wide just outside each range (fractions of full scale).
UNSEEN_MARGIN = 0.15
MAX_UNSEEN_COLOR_SHIFT = 0.49  # below half of full scale: a class colour always has room on one side
MIN_FACTOR = 0.05  # contrast and gamma factors stay positive


def unseen_appearance(training: Mapping[str, Any]) -> dict[str, Any]:
    """The "unseen" preset: looks outside the ranges of a training's observation.randomize section, for evaluation.

    Every class colour moves by between color_jitter and color_jitter + UNSEEN_MARGIN of full scale per
    channel (the side with room when one side would clip), the brightness offset has a magnitude in
    [brightness, brightness + UNSEEN_MARGIN], contrast and gamma factors lie in the UNSEEN_MARGIN bands just
    below 1 - range and just above 1 + range. Sensor noise, blur and the lens jitter keep training's ranges:
    the preset asks whether the policy survives other colours and lighting, not a worse sensor. A training
    without randomisation saw only the rendered looks: its ranges count as 0.
    """
    settings = AppearanceRandomization.model_validate(dict(training)).model_dump()
    if not settings["enabled"]:
        settings.update(color_jitter=0.0, brightness=0.0, contrast=0.0, gamma=0.0, noise_std=0.0, blur=0.0)
    if settings["colors"] and settings["color_jitter"] >= MAX_UNSEEN_COLOR_SHIFT:
        raise ValueError(f"observation.randomize.color_jitter {settings['color_jitter']} leaves no unseen colours; "
                         f"expected a value below {MAX_UNSEEN_COLOR_SHIFT}")
    return {**settings, "enabled": True, "colors": True, "unseen": True}


def _outside(rng: np.random.Generator, low: float, high: float, size: tuple[int, ...] | None = None) -> np.ndarray:
    """Magnitudes in [low, high] with a random sign each."""
    return rng.uniform(low, high, size) * rng.choice(np.array([-1.0, 1.0]), size)


def _class_lookup(palette: np.ndarray) -> np.ndarray:
    """256-entry table: first channel value -> palette class (_UNKNOWN for values no class has)."""
    lookup = np.full(256, _UNKNOWN, dtype=np.intp)
    lookup[palette[:, 0]] = np.arange(len(palette))
    return lookup


# The first channel alone tells the classes apart, gray (110, 50, 245, 184, 201) and RGB red (70, 50, 245, 230, 170).
assert len(set(PALETTE_GRAY.tolist())) == NUM_CLASSES and len(set(PALETTE_RGB[:, 0].tolist())) == NUM_CLASSES


def box_blur3(images: np.ndarray) -> np.ndarray:
    """(k, H, W, C) float images averaged over each pixel's 3x3 neighbourhood (edges repeated)."""
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = images.shape[1:3]
    total = np.zeros_like(images)
    for dy in range(3):  # 9 whole-array adds, not a per-pixel loop
        for dx in range(3):
            total += padded[:, dy:dy + h, dx:dx + w]
    return total * np.float32(1 / 9)


NOISE_BANK_SIZE = 1 << 21  # standard normals (8 MB): a frame's noise is a slice of it at a random offset
_noise_bank: np.ndarray | None = None


def gaussian_noise(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Standard-normal float32 noise of `shape`: a slice of a fixed bank at an offset drawn from `rng`.

    ~150x cheaper than drawing fresh normals for every pixel of every frame (the largest cost of the
    randomised looks); each frame's slice starts at its own offset, so consecutive frames' noise differs.
    Shapes larger than half the bank draw fresh normals.
    """
    global _noise_bank
    size = int(np.prod(shape))
    if size > NOISE_BANK_SIZE // 2:
        return rng.standard_normal(shape, dtype=np.float32)
    if _noise_bank is None:
        _noise_bank = np.random.default_rng(0x5E7502).standard_normal(NOISE_BANK_SIZE, dtype=np.float32)
    start = int(rng.integers(0, NOISE_BANK_SIZE - size + 1))
    return _noise_bank[start:start + size].reshape(shape)


class CameraAppearance:
    """Per-car looks of N cars' camera frames: drawn at episode start, applied to every frame."""

    def __init__(self, settings: dict, channels: int) -> None:
        self.settings = settings
        self.enabled = bool(settings["enabled"])
        self.channels = int(channels)
        base = PALETTE_RGB if self.channels == 3 else PALETTE_GRAY[:, None]
        self.base_palette = base.astype(np.float32)  # (classes, C)
        self._lookup = _class_lookup(base)
        self._level_is_class = self._lookup != _UNKNOWN  # (256,) the level is some class's colour
        self._level_class = np.clip(self._lookup, 0, NUM_CLASSES - 1)  # (256,) that class (any for other levels)
        self._noise_rng: np.random.Generator | None = None
        # The pose jitter needs the built-in camera's per-car lenses; without it frames come from the plain gather.
        self.jitters_pose = self.enabled and any(settings.get(k, 0.0) > 0 for k in ("camera_height_m", "camera_pitch_deg", "camera_fov_deg"))
        self._size(0)

    def _size(self, num_cars: int) -> None:
        """Neutral looks (as rendered) for num_cars cars."""
        self.palettes = np.repeat(self.base_palette[None], num_cars, axis=0)  # (N, classes, C), 0..255
        self.brightness = np.zeros(num_cars, dtype=np.float32)
        self.contrast = np.ones(num_cars, dtype=np.float32)
        self.gamma = np.ones(num_cars, dtype=np.float32)
        self.noise_std = np.zeros(num_cars, dtype=np.float32)
        self.blur = np.zeros(num_cars, dtype=np.float32)
        self.height_offset_m = np.zeros(num_cars)  # the lens pose's jitter, added to the simulator's camera
        self.pitch_offset_deg = np.zeros(num_cars)
        self.fov_offset_deg = np.zeros(num_cars)

    def redraw(self, cars: np.ndarray, rngs: Sequence[np.random.Generator], num_cars: int) -> None:
        """New looks for `cars` (their episodes start), each from a child of its own generator in `rngs`."""
        if len(self.brightness) != num_cars:
            self._size(num_cars)
        s = self.settings
        for i in cars.tolist():  # reset path only: a handful of draws per car
            rng = rngs[i].spawn(1)[0]
            if s.get("unseen"):
                self._draw_unseen(i, rng)
                continue
            jitter = rng.uniform(-1.0, 1.0, size=self.base_palette.shape) * (255.0 * s["color_jitter"])
            self.palettes[i] = np.clip(self.base_palette + jitter, 0, 255) if s["colors"] else self.base_palette
            self.brightness[i] = rng.uniform(-s["brightness"], s["brightness"])
            self.contrast[i] = rng.uniform(1 - s["contrast"], 1 + s["contrast"])
            self.gamma[i] = rng.uniform(1 - s["gamma"], 1 + s["gamma"])
            self.noise_std[i] = rng.uniform(0, s["noise_std"])
            self.blur[i] = rng.uniform(0, s["blur"])
            # Drawn after the looks, from the same child: turning the jitter on changes no colour draw.
            self.height_offset_m[i] = rng.uniform(-s["camera_height_m"], s["camera_height_m"])
            self.pitch_offset_deg[i] = rng.uniform(-s["camera_pitch_deg"], s["camera_pitch_deg"])
            self.fov_offset_deg[i] = rng.uniform(-s["camera_fov_deg"], s["camera_fov_deg"])
        if len(cars):  # one stream for every car's per-frame noise, from the latest reset: a seeded reset repeats it
            self._noise_rng = rng.spawn(1)[0]

    def _draw_unseen(self, i: int, rng: np.random.Generator) -> None:
        """Car i's looks outside the settings' ranges (unseen_appearance); noise, blur and the lens inside them."""
        s, m = self.settings, UNSEEN_MARGIN
        j = s["color_jitter"]
        shift = _outside(rng, j, min(j + m, MAX_UNSEEN_COLOR_SHIFT), self.base_palette.shape) * 255.0
        moved = self.base_palette + shift
        flipped = self.base_palette - shift  # < half of full scale: where one side clips, the other has room
        self.palettes[i] = np.where((moved < 0) | (moved > 255), flipped, moved)
        self.brightness[i] = _outside(rng, s["brightness"], min(s["brightness"] + m, 1.0))
        for factors, spread in ((self.contrast, s["contrast"]), (self.gamma, s["gamma"])):
            below = rng.uniform(max(1 - spread - m, MIN_FACTOR), max(1 - spread, MIN_FACTOR))
            factors[i] = below if rng.random() < 0.5 else rng.uniform(1 + spread, 1 + spread + m)
        self.noise_std[i] = rng.uniform(0, s["noise_std"])
        self.blur[i] = rng.uniform(0, s["blur"])
        self.height_offset_m[i] = rng.uniform(-s["camera_height_m"], s["camera_height_m"])
        self.pitch_offset_deg[i] = rng.uniform(-s["camera_pitch_deg"], s["camera_pitch_deg"])
        self.fov_offset_deg[i] = rng.uniform(-s["camera_fov_deg"], s["camera_fov_deg"])

    def lens_poses(self, spec: CameraSpec, cars: np.ndarray) -> LensPoses:
        """The jittered lenses of `cars`: the simulator's camera `spec` moved by each car's drawn offsets (clipped to a valid camera)."""
        k = len(cars)
        base = LensPoses.of_spec(spec, k)
        return LensPoses(
            height_m=np.maximum(base.height_m + self.height_offset_m[cars], MIN_LENS_HEIGHT_M),
            pitch_down_deg=np.clip(base.pitch_down_deg + self.pitch_offset_deg[cars], -MAX_PITCH_DEG, MAX_PITCH_DEG),
            fov_deg=np.clip(base.fov_deg + self.fov_offset_deg[cars], MIN_FOV_DEG, MAX_FOV_DEG),
            x_offset_m=base.x_offset_m, y_offset_m=base.y_offset_m)

    def _tone(self, values: np.ndarray, cars: np.ndarray) -> np.ndarray:
        """(k, ...) float32 levels 0..255 of `cars` through each car's contrast, brightness and gamma: floats in [0, 1]."""
        per_car = (len(cars),) + (1,) * (values.ndim - 1)
        x = values * np.float32(1 / 255)
        x = (x - 0.5) * self.contrast[cars].reshape(per_car) + 0.5 + self.brightness[cars].reshape(per_car)
        np.clip(x, 0.0, 1.0, out=x)
        x **= self.gamma[cars].reshape(per_car)
        return x

    def apply(self, frames: np.ndarray, cars: np.ndarray) -> np.ndarray:
        """(k, H, W, C) uint8 frames of `cars` with their looks: a new uint8 array of the same shape.

        Recolouring, contrast, brightness and gamma depend on a pixel's level alone, so they are
        computed once per car for the 256 levels (or the palette's classes) and gathered per pixel:
        a table lookup instead of a power per pixel (the same float32 arithmetic, bit for bit).
        """
        k = len(cars)
        rows = np.arange(k)[:, None, None]
        levels = np.broadcast_to(np.arange(256, dtype=np.float32), (k, 256))
        class_of = self._lookup[frames[..., 0]]  # (k, H, W)
        if self.channels == 1:
            # A level that is a class colour takes that car's colour for the class instead.
            source = np.where(self._level_is_class, self.palettes[cars][:, self._level_class, 0], levels)
            x = self._tone(source, cars).reshape(-1)[rows * 256 + frames[..., 0]][..., None]  # (k, H, W, 1)
        else:
            class_tone = self._tone(self.palettes[cars], cars)  # (k, classes, C)
            recoloured = class_tone[rows, np.clip(class_of, 0, NUM_CLASSES - 1)]  # (k, H, W, C)
            level_tone = self._tone(levels, cars)  # (k, 256): a pixel no palette class owns keeps its level
            as_rendered = level_tone.reshape(-1)[rows[..., None] * 256 + frames]
            x = np.where((class_of == _UNKNOWN)[..., None], as_rendered, recoloured)
        blur = self.blur[cars].reshape(k, 1, 1, 1)
        x += blur * (box_blur3(x) - x)
        if self._noise_rng is not None:
            x += self.noise_std[cars].reshape(k, 1, 1, 1) * gaussian_noise(x.shape, self._noise_rng)
        return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)
