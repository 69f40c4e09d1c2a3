"""Offline speech: espeak-ng synthesis in a worker thread, to WAV files or the audio device.

Synthesis never runs on the loop thread. The worker takes the next utterance from the
`SpeechQueue` (edge/announce.py), renders it with `alert_audio.render_alert` (earcon, speech,
stereo direction; espeak-ng's word events say when each direction has been heard) and writes
it to a WAV file or streams it to the device, the earcon first, before the speech is even
synthesised. An urgent alert sounds its earcon over calmer speech at once and cuts that speech
once its direction phrase is over; the worker tells the queue which directions were heard, so a
direction that was cut is carried on, never dropped.

Backends: the espeak-ng library bundled by `espeakng-loader`, driven through ctypes (~6 ms a
sentence), or Debian's `espeak-ng` program. If neither works the error says so: speech is
never silently missing while the wearer believes it is on.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import re
import shutil
import subprocess
import threading
import time
import wave
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vigil360.config import SpeechConfig
from vigil360.edge.alert_audio import earcon_samples, render_alert
from vigil360.edge.announce import SpeechQueue, Utterance
from vigil360.edge.profiling import Samples
from vigil360.errors import UserError

# espeak-ng's public C API (speak_lib.h).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_RATE = 1
_ESPEAK_EVENT_WORD = 1
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class _EspeakEvent(ctypes.Structure):
    """espeak_EVENT (speak_lib.h); the list a callback receives ends with type 0."""

    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_void_p)]


@dataclass(frozen=True)
class WordTiming:
    text_position: int  # 0-based index of the word's first character in the text
    start_s: float  # where the word starts in the audio


class Synthesizer:
    """Text -> mono int16 samples at `sample_rate`."""

    name = "synthesizer"
    sample_rate = 22050

    def synthesize(self, text: str) -> np.ndarray:
        raise TypeError(f"{type(self).__name__} cannot synthesise")

    def synthesize_timed(self, text: str) -> tuple[np.ndarray, list[WordTiming] | None]:
        """Samples and, where the engine reports them, where each word starts (else None)."""
        return self.synthesize(text), None


class EspeakLibrary(Synthesizer):
    """libespeak-ng from espeakng-loader, synchronous mode: samples arrive through a callback."""

    name = "espeak-ng (espeakng-loader)"
    _lock = threading.Lock()  # the library keeps global state: one synthesis at a time per process
    _initialised: tuple[ctypes.CDLL, int] | None = None

    def __init__(self, voice: str = "en", rate_wpm: int = 175) -> None:
        self._lib, self.sample_rate = self._load()
        self._chunks: list[np.ndarray] = []
        self._words: list[WordTiming] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # kept referenced: ctypes must not free it
        with self._lock:
            if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise UserError(f"espeak-ng has no voice {voice!r}")
            self._lib.espeak_SetParameter(_ESPEAK_RATE, int(rate_wpm), 0)

    @classmethod
    def _load(cls) -> tuple[ctypes.CDLL, int]:
        with cls._lock:
            if cls._initialised is None:
                try:
                    import espeakng_loader
                except ImportError as error:
                    raise UserError("espeakng-loader is not installed (pip install espeakng-loader)") from error
                lib = ctypes.CDLL(espeakng_loader.get_library_path())
                lib.espeak_Initialize.restype = ctypes.c_int
                lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
                lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
                lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
                lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                             ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
                # espeak wants the folder that *contains* espeak-ng-data.
                data_parent = str(Path(espeakng_loader.get_data_path()).parent)
                rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_parent.encode(), 0)
                if rate <= 0:
                    raise UserError(f"espeak-ng failed to initialise with data in {data_parent}")
                cls._initialised = (lib, rate)
            return cls._initialised

    def _collect(self, samples, count, events) -> int:
        if count > 0 and samples:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        if events:
            event = ctypes.cast(events, ctypes.POINTER(_EspeakEvent))
            i = 0
            while event[i].type != 0:
                if event[i].type == _ESPEAK_EVENT_WORD:
                    # text_position counts characters from 1; audio_position is ms from the start.
                    self._words.append(WordTiming(event[i].text_position - 1, event[i].audio_position / 1000.0))
                i += 1
        return 0

    def synthesize_timed(self, text: str) -> tuple[np.ndarray, list[WordTiming]]:
        data = text.encode("utf-8") + b"\0"
        with self._lock:
            self._chunks, self._words = [], []
            self._lib.espeak_SetSynthCallback(self._callback)
            status = self._lib.espeak_Synth(data, len(data), 0, 0, 0, _ESPEAK_CHARS_UTF8, None, None)
            chunks, self._chunks = self._chunks, []
            words, self._words = self._words, []
        if status != 0:
            raise RuntimeError(f"espeak_Synth failed with status {status}")
        return (np.concatenate(chunks) if chunks else np.zeros(0, np.int16)), words

    def synthesize(self, text: str) -> np.ndarray:
        return self.synthesize_timed(text)[0]


class EspeakProgram(Synthesizer):
    """Debian's `espeak-ng` command writing a WAV to stdout."""

    name = "espeak-ng (program)"

    def __init__(self, voice: str = "en", rate_wpm: int = 175) -> None:
        self.program = shutil.which("espeak-ng")
        if self.program is None:
            raise UserError("the espeak-ng program is not installed (apt-get install espeak-ng)")
        self.voice, self.rate_wpm = voice, rate_wpm
        self.sample_rate = read_wav(io.BytesIO(self._run("test")))[1]

    def _run(self, text: str) -> bytes:
        done = subprocess.run([self.program, "-v", self.voice, "-s", str(self.rate_wpm), "--stdout", text],
                              capture_output=True, timeout=30, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"espeak-ng exited {done.returncode}: {done.stderr.decode(errors='replace')}")
        return done.stdout

    def synthesize(self, text: str) -> np.ndarray:
        return read_wav(io.BytesIO(self._run(text)))[0]


def build_synthesizer(config: SpeechConfig, announce: Callable[[str], None] = print) -> Synthesizer:
    """The configured backend; with 'auto', the bundled library, else the program (said aloud)."""
    if config.backend == "espeakng-loader":
        return EspeakLibrary(config.voice, config.rate_wpm)
    if config.backend == "espeak-ng":
        return EspeakProgram(config.voice, config.rate_wpm)
    try:
        return EspeakLibrary(config.voice, config.rate_wpm)
    except (UserError, OSError) as first:
        try:
            synth = EspeakProgram(config.voice, config.rate_wpm)
        except UserError as second:
            raise UserError(f"no speech backend: {first}; {second}. Use --no-speech to print only") from None
        announce(f"speech: espeakng-loader unavailable ({first}); using the espeak-ng program instead")
        return synth


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """int16 samples, (N,) mono or (N, 2) stereo (interleaved left, right); written whole or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    samples = np.asarray(samples, dtype=np.int16)
    with wave.open(str(tmp), "wb") as handle:
        handle.setnchannels(1 if samples.ndim == 1 else samples.shape[1])
        handle.setsampwidth(2)
        handle.setframerate(sample_rate)
        handle.writeframes(np.ascontiguousarray(samples).tobytes())
    os.replace(tmp, path)


def read_wav(source: str | Path | io.BytesIO) -> tuple[np.ndarray, int]:
    """(samples, rate): int16, (N,) for mono files and (N, channels) otherwise."""
    with wave.open(source if isinstance(source, io.BytesIO) else str(source), "rb") as handle:
        frames = np.frombuffer(handle.readframes(handle.getnframes()), dtype=np.int16)
        channels = handle.getnchannels()
        return (frames if channels == 1 else frames.reshape(-1, channels)), handle.getframerate()


def audio_device_available() -> bool:
    """An ALSA device and a player for it (aplay); a headless machine has neither."""
    return Path("/dev/snd").is_dir() and shutil.which("aplay") is not None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:24] or "alert"


# Speech counts as dead (said on the console, in the summary and in /v1/status) after this many
# utterances in a row failed; one success brings it back.
DEAD_AFTER = 3
# Restarts of the worker's serving loop after a failure outside any one utterance.
MAX_RESTARTS = 5


class SpeechHealth(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spoken: int
    failures: int = Field(description="utterances (or worker steps) that failed")
    restarts: int = Field(description="times the worker's serving loop was restarted after a failure")
    dead: str | None = Field(None, description="why the wearer hears nothing now; None while speech works")
    last_errors: list[str] = Field(default_factory=list)


class Speaker:
    """The speech worker: SpeechQueue -> synthesis -> WAV file or audio device, off the hot path."""

    def __init__(self, config: SpeechConfig, queue: SpeechQueue, *, wav_dir: str | Path | None = None,
                 synthesizer: Synthesizer | None = None, announce: Callable[[str], None] = print) -> None:
        self.config = config
        self.queue = queue
        self.synth = synthesizer or build_synthesizer(config, announce)
        output = config.output
        if output == "auto":
            output = "device" if audio_device_available() else "wav"
        if output == "device" and not audio_device_available():
            raise UserError("speech output 'device' requested but no audio device (/dev/snd + aplay) exists; "
                            "use output 'wav'")
        if output == "wav" and wav_dir is None:
            raise UserError("speech to WAV files needs a folder to write them to")
        self.output = output
        self.wav_dir = None if wav_dir is None else Path(wav_dir)
        # The most recent utterances spoken (utterance, WAV file or None); bounded for long streams.
        self.spoken: deque[tuple[Utterance, Path | None]] = deque(maxlen=256)
        self.spoken_count = 0
        self.latency = Samples()  # frame read -> audio ready (synthesised), ms
        self.errors: deque[str] = deque(maxlen=20)
        self.failures = 0
        self.consecutive_failures = 0
        self.restarts = 0
        self._dead: str | None = None
        self._tell = announce
        self._stop = threading.Event()
        self._tick = threading.Event()  # never set: a poll interval while playback runs
        self._player: subprocess.Popen | None = None
        self._thread = threading.Thread(target=self._run, name="vigil360-speech", daemon=True)

    def describe(self) -> str:
        where = f"WAV files in {self.wav_dir}" if self.output == "wav" else "the audio device"
        return f"{self.synth.name} -> {where}"

    def start(self) -> Speaker:
        """Start the worker (once; later calls do nothing)."""
        if self._thread.ident is None:
            self._thread.start()
        return self

    def _run(self) -> None:
        # Any failure is caught, counted and reported; the worker goes on with the next utterance
        # (a full disk or a busy device may recover). Only a failure of the worker's own machinery
        # (outside one utterance) restarts the serving loop, a bounded number of times.
        while True:
            try:
                self._serve()
                return
            except Exception as error:  # noqa: BLE001 - speech must not end silently
                self._failed(f"speech worker: {type(error).__name__}: {error}")
                if self.restarts >= MAX_RESTARTS:
                    self._dead = f"speech worker stopped after {self.restarts} restarts (last: {error})"
                    self._tell(f"vigil360: SPEECH IS DEAD: {self._dead}; alerts are no longer spoken")
                    return
                self.restarts += 1

    def _serve(self) -> None:
        while not self._stop.is_set() or self.queue.pending():
            utterance = self.queue.get(timeout=0.1)
            if utterance is None:
                continue
            try:
                self._speak(utterance)
            except Exception as error:  # noqa: BLE001 - counted and reported, see `health`
                self._failed(f"{utterance.text!r}: {type(error).__name__}: {error}")
            else:
                if self.consecutive_failures >= DEAD_AFTER:
                    self._tell("vigil360: speech works again")
                self.consecutive_failures = 0

    def _failed(self, message: str) -> None:
        self.errors.append(message)
        self.failures += 1
        self.consecutive_failures += 1
        if self.consecutive_failures == DEAD_AFTER:
            self._tell(f"vigil360: SPEECH IS FAILING: {DEAD_AFTER} utterances in a row not spoken "
                       f"(last: {message}); alerts are printed but not heard")

    def alive(self) -> bool:
        return self._thread.is_alive()

    def health(self) -> SpeechHealth:
        """Whether the wearer hears alerts: dead when the worker ended or failed DEAD_AFTER times in a row."""
        ended = self._thread.ident is not None and not self._thread.is_alive() and not self._stop.is_set()
        dead = self._dead or ("speech worker ended unexpectedly" if ended else None)
        if dead is None and self.consecutive_failures >= DEAD_AFTER:
            dead = f"the last {self.consecutive_failures} utterances failed"
        return SpeechHealth(spoken=self.spoken_count, failures=self.failures, restarts=self.restarts,
                            dead=dead, last_errors=list(self.errors)[-3:])

    def _speak(self, utterance: Utterance) -> None:
        heard: set[str] = set()
        failed = True
        try:
            if self.output == "device":
                audio, played = self._play(utterance)
            else:
                audio = render_alert(utterance, self.synth, self.config)
                assert self.wav_dir is not None
                path = self.wav_dir / f"{self.spoken_count + 1:04d}_{utterance.entity_id}_{_slug(utterance.text)}.wav"
                write_wav(path, audio.samples, audio.sample_rate)
                self._done(utterance, path)
                played = audio.duration_s
            heard = {entity for entity, at in audio.heard_at_s.items() if at <= played}
            failed = False
        finally:
            # The queue learns which directions the wearer heard; a cut one is carried on (a failed
            # utterance is counted and reported by `_serve`, not retried).
            self.queue.finished(utterance, heard, cut=not failed)

    def _done(self, utterance: Utterance, path: Path | None) -> None:
        self.latency.add((time.perf_counter() - utterance.frame_read_at) * 1000.0)
        self.spoken.append((utterance, path))
        self.spoken_count += 1

    def _play(self, utterance: Utterance):
        """Play on the device: the earcon starts before the speech is synthesised (raw PCM streams
        into the player). Returns the audio and the seconds played before the end or a cut."""
        rate = self.synth.sample_rate
        channels = 2 if self.config.spatial == "stereo" else 1
        player = subprocess.Popen(["aplay", "-q", "-t", "raw", "-f", "S16_LE", "-c", str(channels), "-r", str(rate)],
                                  stdin=subprocess.PIPE)
        self._player = player
        assert player.stdin is not None
        started = time.perf_counter()
        written = 0

        def write(samples: np.ndarray) -> None:
            nonlocal written
            player.stdin.write(np.ascontiguousarray(samples, dtype=np.int16).tobytes())
            player.stdin.flush()
            written += len(samples)

        cut = False
        try:
            audio = render_alert(utterance, self.synth, self.config, on_earcon=write)
            self._done(utterance, None)
            # An urgent alert's earcon sounds at once over calmer speech; the speech is cut once
            # its direction phrase is over (a direction lasts at most ~0.8 s), never inside it,
            # unless it repeats a direction the wearer has heard (`cut_at_once`).
            protect_until = started + audio.heard_at_s.get(utterance.entity_id, 0.0)

            def may_cut() -> bool:
                if not self.queue.interrupt.is_set():
                    return False
                self._overlay_earcon(self.queue.interrupting)
                return self.queue.cut_current and (self.queue.cut_at_once or time.perf_counter() >= protect_until)

            # Small writes: the pipe blocks while the player is ahead, so an interruption is seen
            # within one chunk (~20 ms of audio), not after the whole sentence was buffered.
            chunk = max(1, rate // 50)
            while written < len(audio.samples) and not cut:
                cut = may_cut()
                if not cut:
                    write(audio.samples[written:written + chunk])
        finally:
            with contextlib.suppress(BrokenPipeError):
                player.stdin.close()
        played = len(audio.samples) / rate
        while not cut and player.poll() is None:
            cut = may_cut()
            if not cut:
                self._tick.wait(0.01)
        if cut:
            played = time.perf_counter() - started
            player.terminate()
        player.wait()
        return audio, played

    def _overlay_earcon(self, urgent: Utterance | None) -> None:
        """The urgent alert's earcon, on a second player stream (the device mixes them)."""
        if urgent is None or urgent.earcon_played or urgent.yaw is None or not self.config.earcons:
            return
        urgent.earcon_played = True
        samples = earcon_samples(urgent.yaw, self.synth.sample_rate, True, self.config)
        channels = 1 if samples.ndim == 1 else samples.shape[1]
        command = ["aplay", "-q", "-t", "raw", "-f", "S16_LE", "-c", str(channels), "-r", str(self.synth.sample_rate)]

        def play() -> None:  # off the worker thread: the speech being finished keeps streaming
            try:
                subprocess.run(command, input=np.ascontiguousarray(samples).tobytes(), timeout=5, check=False)
            except (OSError, subprocess.SubprocessError) as error:
                self.errors.append(f"earcon: {error}")

        threading.Thread(target=play, name="vigil360-earcon", daemon=True).start()

    def close(self, drain_s: float = 5.0) -> None:
        """Finish what is queued (up to `drain_s`), then stop the worker."""
        deadline = time.perf_counter() + drain_s
        while self.queue.pending() and time.perf_counter() < deadline and self._thread.is_alive():
            time.sleep(0.01)
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=drain_s)
