"""A gyro's angular rate, when the camera or a phone on the wearer records one (`vigil360 run --imu FILE`).

The file is CSV with a header and four columns: `time_s, gyro_x, gyro_y, gyro_z` - seconds on the
video's clock, and angular rate in degrees per second about the camera's own axes (x right, y up,
z straight ahead, i.e. the equirectangular frame's centre; right-handed, so a turn to the right is
positive gyro_y, nose down is positive gyro_x, right side up is positive gyro_z). Lines starting
with '#' are comments. Camera-embedded telemetry (GoPro GPMF, Insta360, Sony, DJI, CAMM) is read by
the maintained `telemetry-parser` library (Gyroflow's), whose `normalized_imu()` gives exactly
these four columns once its axes are mapped to the camera's: export them to this CSV.

With a gyro the rotation between two frames is its integral, and the flow only has to give the
direction of travel: the rotation survives featureless views (a white wall, a dark street) and
flow that a crowd dominates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

COLUMNS = ("time_s", "gyro_x", "gyro_y", "gyro_z")


class ImuError(ValueError):
    """An IMU file that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class GyroTrack:
    times: np.ndarray  # seconds, strictly increasing
    rates: np.ndarray  # N x 3, radians per second, camera axes

    @classmethod
    def from_csv(cls, path: str | Path) -> GyroTrack:
        path = Path(path)
        try:
            lines = path.read_text().splitlines()
        except OSError as error:
            raise ImuError(f"{path}: cannot read the IMU file ({error.strerror or error})") from None
        rows = [(number, line) for number, line in enumerate(lines, 1) if line.strip() and not line.startswith("#")]
        if not rows:
            raise ImuError(f"{path}: empty IMU file; expected a header {','.join(COLUMNS)} and samples")
        header = [name.strip().lower() for name in rows[0][1].split(",")]
        if header[:4] != list(COLUMNS):
            raise ImuError(f"{path}:{rows[0][0]}: header must start with {','.join(COLUMNS)}, got {rows[0][1]!r}")
        values = []
        for number, line in rows[1:]:
            fields = line.split(",")
            try:
                values.append([float(field) for field in fields[:4]])
            except ValueError:
                raise ImuError(f"{path}:{number}: not four numbers: {line!r}") from None
            if len(fields) < 4 or not np.all(np.isfinite(values[-1])):
                raise ImuError(f"{path}:{number}: expected four finite numbers, got {line!r}")
        if len(values) < 2:
            raise ImuError(f"{path}: at least two samples are needed, got {len(values)}")
        data = np.array(values)
        if np.any(np.diff(data[:, 0]) <= 0):
            bad = int(np.flatnonzero(np.diff(data[:, 0]) <= 0)[0]) + 1
            raise ImuError(f"{path}: sample times must increase (sample {bad + 1} at {data[bad, 0]} s)")
        return cls(data[:, 0], np.radians(data[:, 1:4]))

    def covers(self, t0: float, t1: float) -> bool:
        return self.times[0] <= t0 and t1 <= self.times[-1]

    def rotation_between(self, t0: float, t1: float) -> np.ndarray:
        """The camera's rotation vector (radians, camera axes) from t0 to t1: the integral of the rate
        (trapezoids on the samples, the rate interpolated at the ends; exact to first order over the
        0.1-0.2 s between the frames the ego stage compares)."""
        if not self.covers(t0, t1):
            raise ImuError(f"gyro samples cover {self.times[0]:.3f}-{self.times[-1]:.3f} s, not {t0:.3f}-{t1:.3f} s")
        inside = (self.times > t0) & (self.times < t1)
        times = np.concatenate([[t0], self.times[inside], [t1]])
        rates = np.stack([np.interp(times, self.times, self.rates[:, axis]) for axis in range(3)], axis=1)
        return np.trapezoid(rates, times, axis=0)
