"""Alerts from their direction on stereo headphones: earcons and a spherical-head stereo render.

Cues, all from a spherical head of radius 8.75 cm (no measured HRTF is needed for left/right):
- interaural time difference, Woodworth's formula ITD = a/c (theta + sin theta) for the lateral
  angle theta (up to ~0.66 ms at 90 degrees): the far ear hears it later;
- level difference and head shadow, Brown & Duda's one-pole/one-zero filter per ear,
  H(s) = (alpha s + beta) / (s + beta), beta = 2c/a, alpha from 2 (facing the source: +6 dB at
  high frequencies) down to 0.1 (shadowed: a low-pass of about -20 dB).
Stereo cannot tell front from back (a source at 30 degrees and one at 150 degrees give the same
ITD and nearly the same ILD), so the earcon does: a rising pair of tones for what is ahead, a
falling, lower pair for what is behind. Urgent earcons have three pulses, calmer ones two.

Yaw follows the project's convention: degrees, 0 ahead, positive to the right, 180 behind.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import lfilter

HEAD_RADIUS_M = 0.0875
SPEED_OF_SOUND_MPS = 343.0
# Brown & Duda (1998): alpha_min and the ear angle where the shadow is deepest.
_ALPHA_MIN = 0.1
_THETA_MIN_DEG = 150.0
# Earcon tones (Hz): the pair rises ahead and falls behind; behind is also a fifth lower.
FRONT_TONES = (880.0, 1320.0)
BACK_TONES = (660.0, 440.0)
_PULSE_S = 0.045
_PULSE_GAP_S = 0.02
EARCON_GAP_S = 0.04  # silence between the earcon and the speech
_EARCON_PEAK = 0.5  # of full scale; speech from espeak-ng peaks near 0.5-0.8


def wrap(yaw_deg: float) -> float:
    return (float(yaw_deg) + 180.0) % 360.0 - 180.0


def is_behind(yaw_deg: float) -> bool:
    return abs(wrap(yaw_deg)) > 90.0


def interaural_delay_s(yaw_deg: float) -> float:
    """Woodworth ITD, positive when the right ear hears first (source on the right)."""
    lateral = math.asin(math.sin(math.radians(wrap(yaw_deg))))  # front/back folded: same ITD
    return HEAD_RADIUS_M / SPEED_OF_SOUND_MPS * (abs(lateral) + math.sin(abs(lateral))) * math.copysign(1.0, lateral)


def _shadow_coefficients(ear_angle_deg: float, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Brown-Duda head-shadow filter for an ear `ear_angle_deg` away from the source, bilinear."""
    alpha = (1 + _ALPHA_MIN / 2) + (1 - _ALPHA_MIN / 2) * math.cos(math.radians(ear_angle_deg / _THETA_MIN_DEG * 180.0))
    beta = 2.0 * SPEED_OF_SOUND_MPS / HEAD_RADIUS_M
    k = 2.0 * sample_rate
    b = np.array([alpha * k + beta, beta - alpha * k]) / (k + beta)
    a = np.array([1.0, (beta - k) / (k + beta)])
    return b, a


def _delayed(signal: np.ndarray, delay_samples: float) -> np.ndarray:
    """`signal` delayed by a fractional number of samples (linear interpolation), same length + ceil."""
    if delay_samples <= 0:
        return signal
    whole = int(math.floor(delay_samples))
    frac = delay_samples - whole
    padded = np.concatenate([np.zeros(whole + 1), signal])
    # y[n] = (1 - frac) x[n - whole] + frac x[n - whole - 1]
    return (1.0 - frac) * padded[1:] + frac * padded[:-1]


def render_stereo(mono: np.ndarray, sample_rate: int, yaw_deg: float) -> np.ndarray:
    """(N + d, 2) float64 left/right: `mono` (float, any scale) heard from `yaw_deg`."""
    signal = np.asarray(mono, dtype=np.float64)
    yaw = wrap(yaw_deg)
    channels = []
    for ear_yaw in (-90.0, 90.0):  # left ear, right ear
        ear_angle = abs(wrap(yaw - ear_yaw))
        b, a = _shadow_coefficients(ear_angle, sample_rate)
        channels.append(lfilter(b, a, signal))
    itd = interaural_delay_s(yaw)
    delay = abs(itd) * sample_rate
    left, right = channels
    if itd > 0:
        left = _delayed(left, delay)
        right = np.concatenate([right, np.zeros(len(left) - len(right))])
    elif itd < 0:
        right = _delayed(right, delay)
        left = np.concatenate([left, np.zeros(len(right) - len(left))])
    return np.stack([left, right], axis=1)


def earcon(yaw_deg: float, sample_rate: int, urgent: bool) -> np.ndarray:
    """Mono float earcon: tone pulses rising ahead, falling and lower behind; 3 pulses if urgent."""
    first, second = BACK_TONES if is_behind(yaw_deg) else FRONT_TONES
    tones = (first, second, second) if urgent else (first, second)
    n = int(round(_PULSE_S * sample_rate))
    t = np.arange(n) / sample_rate
    # Raised-cosine edges (5 ms) so the pulses click neither on nor off.
    edge = int(0.005 * sample_rate)
    envelope = np.ones(n)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, edge))
    envelope[:edge], envelope[-edge:] = ramp, ramp[::-1]
    gap = np.zeros(int(round(_PULSE_GAP_S * sample_rate)))
    pulses = []
    for tone in tones:
        # The fundamental plus two weaker harmonics: energy above 1.5 kHz makes the level and
        # shadow cues audible, the fundamental carries the time cue.
        wave = np.sin(2 * np.pi * tone * t) + 0.5 * np.sin(4 * np.pi * tone * t) + 0.25 * np.sin(6 * np.pi * tone * t)
        pulses += [wave / 1.75 * envelope * _EARCON_PEAK, gap]
    return np.concatenate(pulses[:-1])


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Float samples in full-scale units (1.0 = int16 full scale) to int16, clipped."""
    return np.clip(np.round(samples * 32767.0), -32768, 32767).astype(np.int16)
