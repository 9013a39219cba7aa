"""Server settings: defaults < YAML file (configs/server*.yaml) < environment < command line."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator


class ServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    avatar: str | None = None  # default avatar for sessions that do not ask for one
    renderer: str = "meshwarp"
    # true: meshwarp redraws the lower face with the neural mouth (engine/neural_mouth); off by default
    neural_mouth: bool = False
    fps: int = Field(25, ge=1, le=60)
    sample_rate: int = 48_000  # engine and outbound audio rate (the Opus rate)
    # Both are part of the voice delay (look-ahead + render budget + jitter). Chosen from the bench
    # (docs/design/performance.md): meshwarp's face state + render + I420 take ~5 ms p50 and ~15 ms p99 on one
    # loaded core; the scheduler's drain absorbs the input jitter it observes, so jitter_s is the margin
    # below the latest input seen. A slower renderer (diffusion) needs a larger render budget: "auto"
    # times a few warm renders when each session opens and follows them (engine/render_budget.py).
    render_budget_s: float | Literal["auto"] = 0.02  # seconds a frame may take to render, or "auto"
    jitter_s: float = Field(0.01, ge=0, le=1)  # input jitter headroom, part of the latency
    # A frame not rendered by its send time is waited for this long before the previous one is repeated
    # (sent late, it is still shown on time: its RTP timestamp comes from the audio clock).
    late_frame_grace_s: float = Field(0.012, ge=0, le=0.04)
    max_sessions: int = Field(4, ge=1)
    # Past capacity (engine/overload.py): "frame_rate" shows every session of an overloaded process fewer video
    # frames, all alike, down to overload_min_fps, and refuses new sessions there (503 server_busy) while its
    # sessions still miss frames; "none": full rate always, frames repeat when late, no such refusal.
    overload_policy: Literal["frame_rate", "none"] = "frame_rate"
    overload_min_fps: float = Field(12.5, gt=0, le=60)
    # Processes the sessions are spread over (streaming/front.py): one aiortc process tops out near
    # 1.5 cores and a crash ends only its own sessions. "auto": one per core, at most max_sessions
    # (one with --mic or --record, which need a single process).
    workers: int | Literal["auto"] = "auto"
    render_threads: int = Field(2, ge=1)
    # "tuned": streaming/encoders.py (no denoiser, faster presets, capped bitrate, fewer rebuilds);
    # "aiortc": aiortc's own encoders, as they come
    video_encoder: Literal["tuned", "aiortc"] = "tuned"
    video_max_bitrate: int = Field(1_000_000, ge=250_000, le=10_000_000)
    token: str | None = None  # bearer token for /offer, /ws, /push; also EMOLIVE_TOKEN
    allowed_origins: list[str] = Field(default_factory=list)  # empty: same host only
    ice_loopback: bool = False  # offer 127.0.0.1 as an ICE host candidate (local testing)
    # Sessions one client address may open: client_session_rate_per_s a second, client_session_burst at once
    # (streaming/admission.py); null: no limit. Offers refused for what they are do not count.
    client_session_rate_per_s: float | None = Field(1.0, gt=0)
    client_session_burst: int = Field(8, ge=1)
    whep_max_viewers: int = Field(4, ge=1)  # WHEP viewers of one WHIP session (each has its own encoder)
    ws_max_message_bytes: int = Field(16_384, ge=256)
    ws_rate_per_s: float = Field(20.0, gt=0)  # control messages per second, with a burst of ws_burst
    ws_burst: int = Field(40, ge=1)
    stats_interval_s: float = Field(1.0, gt=0)
    session_idle_timeout_s: float = Field(30.0, gt=0)  # no ICE connection by then: the session is closed
    # A connected peer from which nothing (media, RTCP, STUN) has arrived for this long is gone: its session
    # is closed (streaming/liveness.py; without it, ICE consent freshness closes it after ~30 s).
    peer_timeout_s: float = Field(10.0, gt=0)
    ws_max_image_bytes: int = Field(2 * 1024 * 1024, ge=1024)  # decoded reference_image size limit
    # Inputs other than the browser's microphone (at most one of audio / mic).
    audio: str | None = None  # --audio FILE: played as every session's voice input
    audio_loop: bool = False
    mic: bool = False  # --mic: the local microphone (sounddevice) as every session's input
    mic_device: int | str | None = None
    push_buffer_s: float = Field(20.0, ge=1, le=120)  # pushed (TTS) audio held ahead of playback
    push_frames_per_s: float = Field(200.0, gt=0)  # binary frames per second on /push (burst 2x)
    # --livelink HOST:PORT: every session's rendered face states as Live Link Face UDP packets (Unreal
    # MetaHumans; streaming/livelink_out.py), subject emolive-<first 8 characters of the session id>
    livelink: str | None = None
    # --publish-whip URL: every session's avatar and voice pushed to a WHIP server (an SFU's ingest), `{session}`
    # replaced by the session id (streaming/whip_publish.py); the bearer token also from EMOLIVE_PUBLISH_WHIP_TOKEN
    publish_whip: str | None = None
    publish_whip_token: str | None = None
    # URL prefixes a control client's `publish` message may name (streaming/whip_publish.py); None: any http(s)
    # URL, [] : none (the message is refused). The server connects to what a control client names: restrict it
    # where control clients are not trusted as much as the machine's own network.
    publish_whip_allow: list[str] | None = None
    record: str | None = None  # --record OUT.mp4: what is sent, per session (OUT-<sid8>.mp4 after the first)
    record_queue_frames: int = Field(50, ge=2)  # video frames waiting for the encoder; beyond it frames are dropped
    # Measurement only (benchmarks/bench_soak.py): every session stamps its frame ids into the pixels and mixes
    # audio marks into the voice (streaming/frame_marks.py, streaming/audio_marks.py), as `emolive bench`
    # does for the sessions it adopts. Visible and audible: never for real viewers.
    bench_marks: bool = False

    @field_validator("livelink")
    @classmethod
    def _livelink(cls, v):
        if v is not None:
            livelink_target(v)  # ValueError with the reason
        return v

    @field_validator("publish_whip")
    @classmethod
    def _publish_whip(cls, v):
        if v is not None:
            parsed = urlsplit(v.replace("{session}", "session"))
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise ValueError(f"publish_whip must be an http:// or https:// URL, got {v!r}")
        return v

    @field_validator("render_budget_s", mode="before")
    @classmethod
    def _render_budget(cls, v):
        """'auto' or seconds in (0, 1]: one clear message for anything else (YAML, env or command line)."""
        if isinstance(v, str) and v.strip().lower() == "auto":
            return "auto"
        try:
            x = float(v) if not isinstance(v, bool) else None
        except (TypeError, ValueError):
            x = None
        if x is None or not 0 < x <= 1:  # NaN fails too
            raise ValueError(f"render_budget_s must be 'auto' or seconds in (0, 1], got {v!r}")
        return x


def livelink_target(text: str) -> tuple[str, int]:
    """(host, port) of a `livelink` setting: HOST:PORT, [IPv6]:PORT, or HOST alone for Unreal's port 11111."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ("" if not rest else None)
        if not sep or port is None:
            raise ValueError(f"livelink: expected HOST:PORT or [IPv6]:PORT, got {text!r}")
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    if not host:
        raise ValueError(f"livelink: no host in {text!r} (expected HOST:PORT, e.g. 192.168.1.20:11111)")
    if not port:
        return host, 11111
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"livelink: the port must be a number in 1..65535, got {port!r}")
    return host, int(port)


def worker_count(config: ServerConfig) -> int:
    """Processes to run; ValueError (one line) for settings that need a single process."""
    if config.workers == "auto":
        single = config.mic or config.record is not None
        return 1 if single else max(1, min(os.cpu_count() or 1, config.max_sessions))
    n = config.workers
    if n < 1:
        raise ValueError("workers must be >= 1 or 'auto'")
    if n > 1 and config.mic:
        raise ValueError("--mic needs a single process (--workers 1): one process owns the microphone")
    if n > 1 and config.record is not None:
        raise ValueError("--record needs a single process (--workers 1): recordings are named per process")
    return n


def load_config(path: str | Path | None = None, **overrides) -> ServerConfig:
    """Build the config from an optional YAML file, EMOLIVE_TOKEN and EMOLIVE_PUBLISH_WHIP_TOKEN, then explicit
    overrides (None = unset)."""
    data: dict = {}
    if path is not None:
        with open(path, encoding="utf-8") as f:
            loaded = yaml.safe_load(f) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping of settings")
        data.update(loaded)
    if os.environ.get("EMOLIVE_TOKEN"):
        data["token"] = os.environ["EMOLIVE_TOKEN"]
    if os.environ.get("EMOLIVE_PUBLISH_WHIP_TOKEN"):
        data["publish_whip_token"] = os.environ["EMOLIVE_PUBLISH_WHIP_TOKEN"]
    data.update({k: v for k, v in overrides.items() if v is not None})
    return ServerConfig(**data)
