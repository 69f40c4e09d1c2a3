"""Settings: one pydantic model, one section per concern, refusing keys it does not know.

Load from a JSON file with `Settings.from_file`; every field has a description so
`vigil360 config --schema` (and the server's /v1/config) can document itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vigil360.errors import UserError


class Section(BaseModel):
    # A typo in a config file is an error naming the key, never a silently ignored setting; NaN
    # and infinities (JSON's 1e400 reads as infinity) are refused everywhere.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class CameraConfig(Section):
    height_m: float = Field(
        1.2, gt=0.2, lt=3.0,
        description="camera height above the ground in metres (1.2 m suits a chest or shoulder rig)",
    )
    height_sigma_m: float = Field(0.1, ge=0, le=1.0, description="uncertainty of height_m (one sigma)")
    fps: float = Field(30.0, gt=0, le=1000, description="nominal frame rate when the source does not say")


class ReflexConfig(Section):
    """The weight-free reflex tier (edge/reflex): motion proposals, tracking and physical risk.

    Defaults are justified in place; the distances assume `camera.height_m` is right. Upper
    bounds are ceilings far past any useful value, not tuning: they refuse a typo (1e9) before
    it turns into an endless history or a track that never ends.
    """

    work_width: int = Field(
        480, ge=64, le=1920,
        description="internal equirectangular working width in pixels (height = width / 2); 480 keeps "
                    "0.75 deg per pixel - a person at 8 m is still ~20 px tall - at a few ms per frame",
    )
    bg_history_s: float = Field(
        13.3, gt=0, le=120, description="MOG2 history in seconds (converted to frames at the measured rate): a person "
                                "who stops for a few seconds stays foreground, a parked car fades in eventually",
    )
    bg_var_threshold: float = Field(
        24.0, gt=0, le=400, description="MOG2 squared Mahalanobis threshold; above OpenCV's 16 to ignore the "
                                "half-pixel edge flicker that ego-rotation compensation leaves",
    )
    bg_ratio: float = Field(
        0.7, gt=0, le=1, description="MOG2 background ratio; below OpenCV's 0.9 so that someone who "
                                     "stops next to the wearer (a thief reaching for a bag) takes ~5 s, "
                                     "not ~1.5 s, to fade into the background",
    )
    bootstrap_s: float = Field(
        1.0, gt=0, le=10, description="seconds of frames buffered at start (and after the wearer stops walking); "
                               "their per-pixel median seeds the background model, so whoever walks through "
                               "that second is foreground at once instead of leaving a ghost where they stood",
    )
    min_area_deg2: float = Field(
        6.0, gt=0, le=5000, description="smallest moving region kept, in square degrees (a 30 cm ball at 4 m "
                               "covers ~18 deg^2; leaves and noise blobs are smaller)",
    )
    merge_gap_deg: float = Field(
        3.0, ge=0, le=45, description="regions closer than this (deg) are merged: one person often splits "
                               "where clothing matches the background",
    )
    max_missed_s: float = Field(
        0.34, ge=0, le=10, description="seconds a track coasts on its constant-velocity prediction before it is "
                                "dropped (covers short occlusions)",
    )
    min_track_s: float = Field(
        0.07, ge=0, le=10, description="a track is reported once it has been matched for this long (and at least "
                                "twice): 3 frames at 30 fps, 2 at 10 fps",
    )
    settle_s: float = Field(
        0.0, ge=0, le=60, description="extra seconds without flags after switching on; 0 (default): none. The "
                               "background model's own warm-up is the bootstrap (no proposals meanwhile), "
                               "and every risk rule already needs 12 observations whose motion agrees, so "
                               "an entity whose approach is certain is alerted from the first second on "
                               "(a blanket 2 s window made the first 2 s of every run blind)",
    )
    confirm_s: float = Field(
        0.1, ge=0, le=10, description="seconds at or above the threshold (and at least two frames in a row) before a "
                               "track is flagged: costs little lead time, removes one-frame blips",
    )
    min_fit_s: float = Field(
        0.37, gt=0, le=10, description="span of observations a track's motion fit needs before any rule may use it: "
                                "over less, one pixel of jitter reads as metres per second (12 frames at 30 fps, "
                                "4 at 10 fps)",
    )
    min_rate_fps: float = Field(
        10.0, gt=0, le=1000, description="below this effective frame rate the tier warns that its timing rules are "
                                "unreliable (fits get too few samples, alerts come late)",
    )
    max_entity_height_m: float = Field(
        2.2, gt=0, le=10, description="tallest upright entity assumed when joining a region's pieces above "
                               "its ground contact (a person's legs and head often separate)",
    )
    gate_deg: float = Field(
        12.0, gt=0, le=180, description="largest jump (deg, beyond the box half-sizes) between a predicted "
                                "track and a region for them to be associated",
    )
    history_s: float = Field(
        1.0, gt=0, le=30, description="window for velocity / looming fits; long enough to average out "
                               "one-pixel jitter, short enough to follow a change of course",
    )
    mask_history_frames: int = Field(60, ge=0, le=3600, description="RLE masks kept per track (working resolution)")
    personal_zone_m: float = Field(
        1.5, gt=0, le=20, description="personal-space radius: an approach predicted to pass inside it is risky",
    )
    horizon_s: float = Field(
        3.0, gt=0, le=30, description="look-ahead for predicted contact; 3 s gives a spoken alert (~1 s) and "
                               "a reaction (~1 s) before the entity is within the personal zone",
    )
    min_closing_mps: float = Field(
        0.6, ge=0, le=100, description="closing speeds below this (slow drift, distance noise) never count as "
                               "an approach; a brisk walk is ~1.4 m/s",
    )
    rear_yaw_deg: float = Field(
        110.0, ge=0, le=180, description="|yaw| beyond which an entity is behind the wearer",
    )
    front_half_width_deg: float = Field(
        45.0, ge=0, le=180, description="|yaw| within which an entity is in front (crossing check)",
    )
    crossing_distance_m: float = Field(4.0, gt=0, le=100, description="crossings farther than this are ignored")
    close_pass_m: float = Field(
        2.5, gt=0, le=50, description="a fast mover predicted to pass within this distance (within horizon_s) "
                               "is risky wherever it is: a car brushing past at arm's length plus a step",
    )
    speed_sigmas: float = Field(
        2.0, ge=0, le=10, description="the motion rules use the fitted speed and closing speed less this many "
                               "sigmas of their own error (from the scatter of the positions about the fit): "
                               "contact-row jitter at 6-8 m makes a 1.3 m/s passer-by look like 2.5 m/s, a "
                               "car or a bike keeps metres per second to spare",
    )
    max_speed_mps: float = Field(
        15.0, gt=0, le=100, description="fastest anything on a street moves (~54 km/h, urban traffic): a ground range "
                                "that jumps by more than this per frame plus two pixel rows of contact jitter "
                                "is a merge or a lost contact, and the speed rules (crossing, close pass) skip "
                                "the window; the tracker lets a track's range change by this much per second "
                                "plus 3 sigma of the measurements' own error",
    )
    pass_horizon_s: float = Field(
        4.0, gt=0, le=30, description="look-ahead for a predicted close pass at speed. Longer than horizon_s because "
                               "a far, fast mover's speed is underestimated while its contact still spans few "
                               "pixel rows (one row is ~3 m at 16 m): a car at 8 m/s is first predicted to pass "
                               "~3.7 s ahead when it is ~3 s away, and the alert must come >= 1.5 s before it is "
                               "within 1.5 m. Walkers never reach the speed this rule needs, so it costs no "
                               "false flags on passers-by",
    )
    crossing_speed_mps: float = Field(
        2.5, gt=0, le=100, description="speed over ground that makes a crossing or a close pass 'fast': above a "
                               "brisk walk (~1.8 m/s) so passers-by never count; runners, bikes and cars do",
    )
    flag_threshold: float = Field(
        0.5, gt=0, le=1, description="risk at which a track is flagged (risk is 0.5 exactly where a "
                                     "rule's own threshold is met)",
    )
    appearance_every_s: float = Field(
        0.33, gt=0, le=60, description="re-measure appearance this often (colours change slowly; it costs ~0.2 ms "
                                "per track)",
    )


class SpeechConfig(Section):
    """What is said, when, and how it is voiced (edge/announce.py, edge/speech.py).

    Timing rules follow assistive practice (Soundscape-style callout queues): alerts are rare,
    early and never stale; an entity is not repeated unless its situation gets worse.
    """

    enabled: bool = Field(True, description="speak alerts; when false they are only printed/emitted")
    muted: bool = Field(False, description="temporarily silence speech (alerts are still recorded)")
    backend: Literal["auto", "espeakng-loader", "espeak-ng"] = Field(
        "auto", description="TTS engine: the bundled espeak-ng library (espeakng-loader) or Debian's "
                            "espeak-ng program; auto tries them in that order and says which it uses",
    )
    output: Literal["auto", "wav", "device"] = Field(
        "auto", description="where speech goes: WAV files, the audio device, or auto (the device when one "
                            "exists, else WAV files)",
    )
    voice: str = Field("en", description="espeak-ng voice name")
    rate_wpm: int = Field(185, ge=80, le=450, description="speaking rate, words per minute (screen-reader "
                                                          "users often prefer faster than the 175 default)")
    verbosity: Literal["minimal", "normal", "verbose"] = Field(
        "normal", description="minimal: what + where; normal: who + what + whom + where; verbose: adds "
                              "distance uncertainty and the reason",
    )
    directions: Literal["clock", "words"] = Field(
        "clock", description="'5 o'clock' or 'behind you on the right'",
    )
    min_risk: float = Field(
        0.5, ge=0, le=1, description="sensitivity: flagged entities below this risk are not announced",
    )
    cooldown_s: float = Field(
        6.0, ge=0, le=3600, description="an entity is not announced again within this time unless it escalates",
    )
    escalation: float = Field(
        0.2, gt=0, le=1, description="risk increase that counts as escalation (re-announce within cooldown)",
    )
    urgent_risk: float = Field(
        0.85, ge=0, le=1, description="risk at which an alert is urgent: it interrupts what is being said",
    )
    stale_after_s: float = Field(
        1.5, gt=0, le=60, description="an alert not yet spoken this long after its frame is dropped: a warning "
                               "about where someone was 2 s ago misleads more than it helps",
    )
    queue_size: int = Field(4, ge=1, le=64, description="pending alerts kept; the lowest-risk is dropped beyond it")
    spatial: Literal["off", "stereo"] = Field(
        "stereo", description="stereo: each alert (earcon and speech) comes from its direction on headphones "
                              "(interaural time and level differences, head shadow); off: plain mono",
    )
    earcons: bool = Field(
        True, description="a short tone before each alert: rising for ahead, falling and lower for behind "
                          "(stereo alone confuses front and back); urgent alerts get three pulses",
    )
    ducking_db: float = Field(
        -6.0, ge=-30.0, le=0.0, description="level of calmer (non-urgent) alerts relative to urgent ones, dB: "
                                            "urgent ones stand out; 0 plays both alike",
    )


class LoopConfig(Section):
    """The on-device loop (edge/loop.py): rates of the side outputs and of the optional model stages."""

    track_event_every: int = Field(5, ge=1, le=10_000, description="emit TrackEvents every N frames (6 Hz at 30 fps)")
    stats_period_s: float = Field(1.0, gt=0, le=3600, description="seconds between StatsEvents")
    preview_max_hz: float = Field(5.0, gt=0, le=60, description="most preview images rendered per second")
    mask_every: int = Field(
        1, ge=1, le=10_000, description="record the masks of announced entities every N frames (1: every frame)",
    )
    live_buffer: int = Field(
        1, ge=1, le=8, description="frames a live source keeps; newer frames replace older ones, which "
                                   "are counted as dropped (latest-frame policy)",
    )
    grounder_period_s: float = Field(
        2.0, gt=0, le=3600, description="the VLM grounder also runs at this period without a reflex trigger",
    )
    caption_clip_frames: int = Field(4, ge=1, le=16, description="frames sent to the VLM captioner")
    view_size: int = Field(448, ge=64, le=1024, description="side of the perspective views sent to models")


class VlmHttpConfig(Section):
    """An OpenAI-compatible chat endpoint (vLLM, llama.cpp server, Ollama, hosted)."""

    base_url: str = Field("http://127.0.0.1:8000/v1", description="endpoint root; /chat/completions is appended")
    model: str = Field("smolvlm", description="model name the server expects")
    api_key_env: str | None = Field(
        None, description="name of the environment variable holding the API key (the key never goes in a file)",
    )
    timeout_s: float = Field(30.0, gt=0, le=600, description="read timeout per request")
    connect_timeout_s: float = Field(3.0, gt=0, le=120, description="connect timeout: a tethered phone that is gone "
                                                            "should fail fast")
    max_retries: int = Field(2, ge=0, le=10, description="retries after connection errors, timeouts, 429, 5xx")
    backoff_s: float = Field(0.5, ge=0, le=60, description="first retry delay; doubles per retry")
    max_concurrency: int = Field(2, ge=1, le=64, description="requests in flight at once")
    image_format: Literal["jpeg", "png"] = Field("jpeg", description="how images travel (base64 data URLs)")
    max_image_side: int | None = Field(768, ge=64, le=8192, description="images are downscaled to this longer side")


class VlmBackendConfig(Section):
    """One VLM role (grounding or captioning): which backend, which model."""

    backend: Literal["transformers", "onnx", "http"] = Field(
        "onnx", description="transformers: a model folder (reference); onnx: a `vigil360 export vlm` folder; "
                            "http: an OpenAI-compatible server",
    )
    model_dir: str | None = Field(None, description="local model folder (transformers backend)")
    onnx_dir: str | None = Field(None, description="exported folder with manifest.json (onnx backend)")
    providers: Literal["auto", "cpu", "cuda", "tensorrt"] = Field("auto", description="onnxruntime providers")
    threads: int | None = Field(None, ge=1, le=1024,
                                description="CPU threads for torch / onnxruntime (None: library default)")
    max_new_tokens: int = Field(128, ge=8, le=2048, description="token budget per answer")
    http: VlmHttpConfig = Field(default_factory=VlmHttpConfig)


class VlmConfig(Section):
    """The compact VLM (models/vlm): who/what/whom grounding and per-instance captions."""

    grounder: VlmBackendConfig = Field(default_factory=lambda: VlmBackendConfig(max_new_tokens=160))
    captioner: VlmBackendConfig = Field(default_factory=lambda: VlmBackendConfig(max_new_tokens=96))
    debug_dir: str | None = Field(
        None, description="write every image set sent to the VLM here as PNGs, to see what the model saw",
    )
    clip_size: int = Field(384, ge=64, le=1024, description="side of the highlighted crops sent to the captioner")
    dim: float = Field(0.35, ge=0, le=1, description="brightness kept outside the highlighted instance")


class Settings(Section):
    camera: CameraConfig = Field(default_factory=CameraConfig)
    reflex: ReflexConfig = Field(default_factory=ReflexConfig)
    speech: SpeechConfig = Field(default_factory=SpeechConfig)
    loop: LoopConfig = Field(default_factory=LoopConfig)
    vlm: VlmConfig = Field(default_factory=VlmConfig)

    @classmethod
    def from_file(cls, path: str | Path) -> Settings:
        path = Path(path)
        try:
            return cls.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            raise UserError(f"{path}: settings file not found") from None
        except ValidationError as error:
            from vigil360.records import describe_validation_error

            raise UserError(describe_validation_error(error, str(path))) from None
