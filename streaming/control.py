"""The control websocket of one session: validated commands in, events out, bounded both ways.

Commands are handled on their own lane (this connection's task) and only touch
the media path through the session worker, so they never wait behind media
and media never waits on them. Bad input gets an error event; the connection
and the stream go on.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import re
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from aiohttp import WSMsgType, web

from engine.emotion import EmotionError

from .avatar_swap import build_avatar
from .config import ServerConfig
from .parts import UnsupportedRequest
from .protocol import (LARGE_MESSAGE_TYPES, PROTOCOL_VERSION, ErrorCode, ProtocolError, error_event, event,
                       parse_message)
from .runner import SessionRunner
from .talkinghead import stream_of
from .whip_publish import PublishNotAllowed, SessionPublish

log = logging.getLogger(__name__)

OUTBOX_LIMIT = 200  # events waiting for a slow client; beyond it the oldest go
CHUNK_BACKLOG = 10  # talkinghead chunks waiting for a slow client (2 s of audio); beyond it the oldest go
HARD_SIZE_FACTOR = 4  # beyond this multiple of the size limit, aiohttp closes with 1009
LARGE_RATE_PER_S = 1.0  # large (image) messages per second, burst 2: parsing megabytes is not free
BACKGROUND_NICE = 10  # added to the niceness of the threads that read prompts and photos


def _below_media() -> None:
    """Run this thread below the media threads: when the cores are short, frames are rendered and sent first
    and a prompt or a photo is read a little later. Linux keeps a niceness per thread; raising it needs no
    privilege. Elsewhere the thread keeps the normal priority."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + BACKGROUND_NICE))
    except (AttributeError, OSError):
        pass


# One thread each for every session's text prompts and reference photos: a burst of them queues here
# instead of filling the default executor, and runs below the media.
PROMPT_READER = ThreadPoolExecutor(1, thread_name_prefix="emolive-prompt", initializer=_below_media)
IMAGE_READER = ThreadPoolExecutor(1, thread_name_prefix="emolive-image", initializer=_below_media)


def image_message_limit(config: ServerConfig) -> int:
    """Largest text message accepted for reference_image: base64 of ws_max_image_bytes plus some JSON."""
    return (config.ws_max_image_bytes + 2) // 3 * 4 + 512


def _large_type(text: str) -> str | None:
    """The type of an over-sized message, if it may be large; found without parsing the image."""
    head = text[:256]
    for kind in LARGE_MESSAGE_TYPES:
        if f'"{kind}"' in head or f'"{kind}"' in text[-256:]:
            return kind
    return None


_ID = re.compile(r'"id"\s*:\s*(?:"([^"\\]{0,128})"|(-?\d{1,18})\b)')


def _peek_id(text: str) -> str | int | None:
    """The `id` of a message refused unread (too large, over a rate), found without parsing it, so that the
    client can match the refusal to its request (a photo's page waits on it); None when it is not near an end."""
    for part in (text[:256], text[-256:]):
        m = _ID.search(part)
        if m:
            return m.group(1) if m.group(1) is not None else int(m.group(2))
    return None


def _reference_target(image_b64: str, max_bytes: int):
    """Decode a reference_image's base64 and read the emotion of the face in it (CPU, ~300 ms: off the loop)."""
    try:
        from engine.emotion.reference import target_from_image
    except ImportError:
        raise UnsupportedRequest("reference-image emotions are not available in this engine build") from None
    return target_from_image(decode_image_b64(image_b64, max_bytes))


def _new_avatar(renderer_factory, image_b64: str, name: str, max_bytes: int, side: int):
    """Decode a set_avatar's photo and build the avatar and its renderer (CPU, a second or two: off the loop)."""
    return build_avatar(renderer_factory, decode_image_b64(image_b64, max_bytes), name, side)


def decode_image_b64(text: str, max_bytes: int) -> bytes:
    """An image's bytes from base64 as clients write it: plain, wrapped in lines (as the `base64` command
    prints it) or as a data URL (a browser's FileReader); anything else is bad_image."""
    if text.startswith("data:"):
        head, sep, text = text.partition(",")
        if not sep or not head.endswith(";base64"):
            raise ProtocolError(ErrorCode.bad_image, "image: a data URL must be base64 (data:image/...;base64,...)")
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(ErrorCode.bad_image, "image: not valid base64") from None
    if len(data) > max_bytes:
        raise ProtocolError(ErrorCode.too_large, f"image: {len(data)} bytes, over {max_bytes}")
    return data


class TokenBucket:
    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate, self.burst, self.tokens, self.t = rate, burst, float(burst), now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
        self.t = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class ControlConnection:
    def __init__(self, ws: web.WebSocketResponse, runner: SessionRunner, config: ServerConfig,
                 publish: SessionPublish | None = None) -> None:
        self.ws = ws
        self.runner = runner
        self.config = config
        self.publish = publish  # the session's WHIP publishing on a client's ask (None: not available)
        self.outbox: deque[dict] = deque(maxlen=OUTBOX_LIMIT)
        self.wake = asyncio.Event()
        self.sent_one = asyncio.Event()  # the writer has sent an event (room in the outbox)
        self.dropped_events = 0
        loop = asyncio.get_running_loop()
        self.bucket = TokenBucket(config.ws_rate_per_s, config.ws_burst, loop.time())
        self.large_bucket = TokenBucket(LARGE_RATE_PER_S, 2, loop.time())
        self.subscriptions = {"stats"}
        # talkinghead chunks: their own lane, sent after the events (answers never wait behind media)
        self.chunks: deque[dict] = deque(maxlen=CHUNK_BACKLOG)
        self.dropped_chunks = 0

    def send_chunk(self, msg: dict) -> None:
        """A talkinghead chunk (the session's media path, on the loop): queued, never waited for."""
        if len(self.chunks) == self.chunks.maxlen:
            self.dropped_chunks += 1
        self.chunks.append(msg)
        self.wake.set()

    def send(self, msg: dict) -> None:
        if len(self.outbox) == self.outbox.maxlen:
            self.dropped_events += 1
        self.outbox.append(msg if "v" in msg else {**msg, "v": PROTOCOL_VERSION})
        self.wake.set()

    def _send_stats(self, msg: dict) -> None:
        if msg.get("type") != "stats" or "stats" in self.subscriptions:
            self.send(msg)

    async def _writer(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.outbox or self.chunks:
                if self.outbox:
                    await self.ws.send_str(json.dumps(self.outbox.popleft()))
                    self.sent_one.set()
                else:
                    await self.ws.send_str(json.dumps({**self.chunks.popleft(), "dropped": self.dropped_chunks}))

    async def _room(self) -> None:
        """Read the client's next message only once the outbox is at most half full: a flood's answers
        (each message gets one) then wait in the socket, not in the outbox, where the oldest would be dropped."""
        while len(self.outbox) >= OUTBOX_LIMIT // 2 and not self.ws.closed and not self.runner.closed.is_set():
            self.sent_one.clear()
            try:
                await asyncio.wait_for(self.sent_one.wait(), 1.0)
            except asyncio.TimeoutError:
                pass

    async def run(self) -> None:
        runner = self.runner
        runner.listeners.add(self._send_stats)
        writer = asyncio.get_running_loop().create_task(self._writer())
        self.send(event("hello", protocol=PROTOCOL_VERSION, session_id=runner.id,
                        max_image_bytes=self.config.ws_max_image_bytes))
        try:
            async for msg in self.ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_text(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self.send(error_event(ErrorCode.bad_json, "binary messages are not part of the protocol"))
                elif msg.type == WSMsgType.ERROR:
                    break
                if runner.closed.is_set():
                    break
                await self._room()
            await self._flush()
        finally:
            runner.listeners.discard(self._send_stats)
            runner.face_listeners.discard(self.send)
            stream_of(runner).discard(self.send_chunk)
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    async def _flush(self) -> None:
        try:
            while self.outbox and not self.ws.closed:
                await self.ws.send_str(json.dumps(self.outbox.popleft()))
        except ConnectionResetError:  # the client went while its last events were on their way
            pass

    async def _on_text(self, text: str) -> None:
        size = len(text.encode("utf-8", "surrogatepass"))
        now = asyncio.get_running_loop().time()
        if size > self.config.ws_max_message_bytes:
            if size > image_message_limit(self.config) or _large_type(text) is None:
                self.send(error_event(ErrorCode.too_large, f"message over {self.config.ws_max_message_bytes} bytes "
                                      f"(reference_image: {image_message_limit(self.config)})", _peek_id(text)))
                return
            if not self.large_bucket.take(now):
                self.send(error_event(ErrorCode.rate_limited, f"over {LARGE_RATE_PER_S:g} large messages/s; "
                                      "message ignored", _peek_id(text)))
                return
        if not self.bucket.take(now):
            self.send(error_event(ErrorCode.rate_limited,
                                  f"over {self.config.ws_rate_per_s:g} messages/s; message ignored", _peek_id(text)))
            return
        try:
            try:
                data = json.loads(text)
            except (ValueError, RecursionError):
                raise ProtocolError(ErrorCode.bad_json, "message is not valid JSON") from None
            msg = parse_message(data)
            await self._dispatch(msg)
        except ProtocolError as e:
            self.send(error_event(e.code, e.message, e.ref))
        except Exception as e:  # a bug must not end the connection or the stream
            if self.runner.closing:  # the session closed under the command (its worker is shut down)
                self.send(error_event(ErrorCode.no_session, "the session has closed"))
                return
            log.exception("control message failed")
            self.send(error_event(ErrorCode.internal, f"internal error: {type(e).__name__}"))

    async def _state(self, ref) -> None:
        state = await self.runner.run_in_session(self.runner.state)
        out = event("state", **state, subscriptions=sorted(self.subscriptions),
                    publish=self.publish.describe() if self.publish is not None else None)
        if ref is not None:
            out["id"] = ref
        self.send(out)

    async def _dispatch(self, msg) -> None:
        r = self.runner
        emo = r.emotion
        try:
            if msg.type == "set_emotion":
                await r.run_in_session(emo.set_emotion, msg.emotion, msg.mixture, msg.intensity,
                                       msg.transition_ms, msg.at_t)
            elif msg.type == "prompt":
                # Reading a prompt may load the sentence encoder (seconds, once per process): on the prompt
                # thread, not the session worker, so face states keep flowing meanwhile, and one thread for
                # every session's prompts, so a burst of them cannot fill the default executor.
                target = await asyncio.get_running_loop().run_in_executor(PROMPT_READER, emo.read_prompt, msg.text)
                await r.run_in_session(emo.controller.set, target, None, msg.transition_ms)
            elif msg.type == "set_idle":
                await r.run_in_session(emo.set_idle, msg.enabled, msg.amount)
            elif msg.type == "subscribe":
                self.subscriptions.add(msg.stream)
                if msg.stream == "face_state":
                    r.face_listeners.add(self.send)
                elif msg.stream == "talkinghead":
                    stream_of(r).add(self.send_chunk)
            elif msg.type == "unsubscribe":
                self.subscriptions.discard(msg.stream)
                if msg.stream == "face_state":
                    r.face_listeners.discard(self.send)
                elif msg.stream == "talkinghead":
                    stream_of(r).discard(self.send_chunk)
                    self.chunks.clear()
            elif msg.type in ("interrupt", "clear"):
                r.scheduler.clear_input()
                await r.run_in_session(r.session.forget_speech)
            elif msg.type in ("reference_image", "set_emotion_image"):
                # Reading the face takes ~300 ms of CPU: the image thread, not the session worker,
                # so face states keep flowing; only the cheap controller update is ordered with them.
                target = await asyncio.get_running_loop().run_in_executor(
                    IMAGE_READER, _reference_target, msg.image, self.config.ws_max_image_bytes)
                await r.run_in_session(emo.controller.set, target, None, msg.transition_ms)
            elif msg.type == "set_avatar":
                # The same thread as reference photos, below the media: the stream goes on meanwhile with the
                # old avatar, and the render loop takes the new one between two frames.
                new = await asyncio.get_running_loop().run_in_executor(
                    IMAGE_READER, _new_avatar, r.renderer_factory, msg.image, msg.name,
                    self.config.ws_max_image_bytes, r.frame_side())
                r.swap_avatar(new)
            elif msg.type == "publish":
                if self.publish is None:
                    raise UnsupportedRequest("this session cannot be published")
                await self.publish.start(msg.url, msg.token)
            elif msg.type == "unpublish" and self.publish is not None:
                await self.publish.stop()  # nothing published: nothing to do, the state says so
        except PublishNotAllowed as e:
            raise ProtocolError(ErrorCode.forbidden, str(e), msg.id) from None
        except EmotionError as e:
            code = {"prompt": ErrorCode.bad_prompt, "reference_image": ErrorCode.bad_image,
                    "set_emotion_image": ErrorCode.bad_image}.get(msg.type, ErrorCode.unknown_emotion)
            raise ProtocolError(code, str(e), msg.id) from None
        except UnsupportedRequest as e:
            raise ProtocolError(ErrorCode.unsupported, str(e), msg.id) from None
        except ProtocolError as e:
            e.ref = msg.id if e.ref is None else e.ref
            raise
        await self._state(msg.id)
