"""A session's voice input and recording: which input drives it (browser, server file or mic, TTS push)."""
from __future__ import annotations

import logging

from aiohttp import web

from .app_common import CONFIG, COUNTERS, INPUT, PUSHES, RECORDERS
from .config import ServerConfig
from .record import RecordError, SessionRecorder, recording_path
from .runner import SessionRunner
from .sources import FileInput, InputUnavailable, Microphone, MicInput, ServerInput, load_audio_input
from .tracks import consume_audio, discard_audio

log = logging.getLogger("emolive.server")


def attach_browser_audio(app: web.Application, runner: SessionRunner, track) -> None:
    """The browser's microphone drives the session, unless the server has its own input or a TTS is pushing."""
    if app[INPUT].kind != "browser":
        runner.spawn(discard_audio(track), "audio-in-unused")
        return
    pushes = app[PUSHES]

    def gate(pcm):
        feed = pushes.get(runner.id)
        if feed is not None and feed.active:  # pushed audio has the timeline; the browser's is dropped
            runner.counters["browser_audio_muted"] = runner.counters.get("browser_audio_muted", 0) + 1
            return
        runner.on_audio_in(pcm)

    runner.spawn(consume_audio(track, gate, runner.config.sample_rate), "audio-in")


def start_recording(app: web.Application, runner: SessionRunner, cleanups: list) -> None:
    config = app[CONFIG]
    path = recording_path(config.record, app[COUNTERS]["recordings"], runner.id)
    try:
        rec = SessionRecorder(path, runner.renderer.size, config.fps, config.sample_rate,
                              max_video=config.record_queue_frames)
    except RecordError as e:  # the stream matters more than its recording
        log.error("session %s: not recorded: %s", runner.id[:6], e)
        return
    app[COUNTERS]["recordings"] += 1
    recorders = app[RECORDERS]
    for old in [r for r in recorders if r.done]:  # a long-running server keeps only live recorders
        recorders.remove(old)
        fold_recorder(app, old)
    recorders.append(rec)
    runner.video_out.tap = rec.video
    runner.audio_out.tap = rec.audio
    cleanups.append(rec.finish)
    log.info("session %s recorded to %s", runner.id[:6], path)


def build_input(config: ServerConfig) -> ServerInput:
    """The sessions' voice input from the settings; InputUnavailable (one line) when it cannot be used."""
    if config.audio is not None and config.mic:
        raise InputUnavailable("--audio and --mic exclude each other: choose one input")
    if config.audio is not None:
        return FileInput(load_audio_input(config.audio, config.sample_rate), config.audio_loop, config.audio)
    if config.mic:
        mic = Microphone(config.sample_rate, config.mic_device)
        mic.open()
        return MicInput(mic)
    return ServerInput()




def fold_recorder(app: web.Application, rec: SessionRecorder) -> None:
    """Add a finished recorder's counts to the server's totals (it is then forgotten)."""
    totals = app[COUNTERS]
    for name, value in rec.counters.items():
        totals[f"recorded_{name}"] = totals.get(f"recorded_{name}", 0) + value
