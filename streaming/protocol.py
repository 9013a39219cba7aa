"""The control websocket's wire protocol (version 1), validated with pydantic.

docs/reference/protocol.md documents it; extend by adding optional fields or new message
types, never by changing the meaning of existing ones.
"""
from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

PROTOCOL_VERSION = 1


class ErrorCode(str, Enum):
    bad_json = "bad_json"  # not JSON, or not a JSON object
    bad_message = "bad_message"  # a known type with missing / wrong / out-of-range fields
    unknown_type = "unknown_type"
    unsupported_version = "unsupported_version"
    too_large = "too_large"  # over the message size limit
    rate_limited = "rate_limited"  # over the message rate limit; the message was ignored
    unknown_emotion = "unknown_emotion"
    bad_prompt = "bad_prompt"
    unsupported = "unsupported"  # valid, but this engine build cannot do it
    unauthorized = "unauthorized"
    no_session = "no_session"
    internal = "internal"  # a bug: reported, logged, the session goes on
    bad_image = "bad_image"  # reference_image / set_avatar: not a decodable image, or no usable face in it
    # PCM push (/push)
    no_start = "no_start"  # audio before the start message
    bad_audio = "bad_audio"  # not whole s16le samples
    buffer_full = "buffer_full"  # more pending audio than the push buffer holds; the frame was dropped
    busy = "busy"  # another connection is already pushing to this session
    forbidden = "forbidden"  # publish: the server does not allow this URL (publish_whip_allow)


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | int | None = Field(None, description="echoed in the answer, to match answers to requests")
    v: int = Field(PROTOCOL_VERSION, description="protocol version the client speaks")


class SetEmotion(_Msg):
    type: Literal["set_emotion"]
    emotion: str | None = Field(None, min_length=1, max_length=64)
    mixture: dict[Annotated[str, Field(min_length=1, max_length=64)], Annotated[float, Field(ge=0, le=1)]] | None = \
        Field(None, max_length=16)
    intensity: float = Field(1.0, ge=0, le=1)
    transition_ms: float = Field(250, ge=0, le=10_000)
    at_t: float | None = Field(None, ge=0, description="stream time (s) to apply at; default: now")

    @model_validator(mode="after")
    def _one_target(self):
        if (self.emotion is None) == (self.mixture is None):
            raise ValueError("give exactly one of 'emotion' or 'mixture'")
        if self.mixture is not None and not self.mixture:
            raise ValueError("'mixture' is empty")
        return self


class Prompt(_Msg):
    type: Literal["prompt"]
    text: str = Field(min_length=1, max_length=500)
    transition_ms: float = Field(250, ge=0, le=10_000)


class SetIdle(_Msg):
    type: Literal["set_idle"]
    enabled: bool = True
    amount: float = Field(1.0, ge=0, le=2, description="scale of idle motion (blinks, head sway, gaze)")


class GetState(_Msg):
    type: Literal["get_state"]


STREAMS = Literal["face_state", "stats", "talkinghead"]


class Subscribe(_Msg):
    type: Literal["subscribe"]
    stream: STREAMS


class Unsubscribe(_Msg):
    type: Literal["unsubscribe"]
    stream: STREAMS


class Interrupt(_Msg):
    type: Literal["interrupt", "clear"]


class ReferenceImage(_Msg):
    type: Literal["reference_image", "set_emotion_image"]
    image: str = Field(min_length=1, description="base64 JPEG/PNG of a face showing the wanted emotion")
    transition_ms: float = Field(250, ge=0, le=10_000)


class SetAvatar(_Msg):
    type: Literal["set_avatar"]
    image: str = Field(min_length=1, description="base64 JPEG/PNG/... portrait photo: the session's new avatar")
    name: str = Field("photo", min_length=1, max_length=200, description="the photo's file name, for messages")


class Publish(_Msg):
    type: Literal["publish"]
    url: str = Field(min_length=8, max_length=2000, pattern=r"^https?://[^\s]+$",
                     description="a WHIP endpoint (http or https); {session} becomes the session id")
    token: str | None = Field(None, min_length=1, max_length=4096, description="its bearer token")


class Unpublish(_Msg):
    type: Literal["unpublish"]


ClientMessage = Annotated[Union[SetEmotion, Prompt, SetIdle, GetState, Subscribe, Unsubscribe, Interrupt,
                                ReferenceImage, SetAvatar, Publish, Unpublish], Field(discriminator="type")]
_client_adapter: TypeAdapter = TypeAdapter(ClientMessage)
MESSAGE_TYPES = ("set_emotion", "prompt", "set_idle", "get_state", "subscribe", "unsubscribe", "interrupt",
                 "clear", "reference_image", "set_emotion_image", "set_avatar", "publish", "unpublish")
LARGE_MESSAGE_TYPES = ("reference_image", "set_emotion_image", "set_avatar")  # may exceed ws_max_message_bytes


# -- server -> client events with a schema of their own --

class TalkingHeadAnim(BaseModel):
    """One TalkingHead (three.js) blendshape animation: frame i holds `vs[name][i]` for `dt[i]` ms."""
    model_config = ConfigDict(extra="forbid")
    name: Literal["blendshapes"] = "blendshapes"
    delay: float = Field(0, description="ms from the chunk's first audio sample to the first frame (always 0)")
    dt: list[float] = Field(description="per frame: ms of the chunk's audio it covers")
    vs: dict[str, list[float]] = Field(description="the 52 ARKit coefficients by name, one value per frame")


class TalkingHeadChunk(BaseModel):
    """A `talkinghead` event: one chunk of the voice the session plays and the face of the frames rendered
    for it, as TalkingHead's `streamAudio({audio, anims})` takes it once `audio` is decoded to an Int16Array."""
    model_config = ConfigDict(extra="forbid")
    type: Literal["talkinghead"] = "talkinghead"
    v: int = PROTOCOL_VERSION
    sample: int = Field(ge=0, description="timeline position (48 kHz samples) of the chunk's first audio sample")
    t: float = Field(ge=0, description="stream time of the first sample, s (sample / sample_rate)")
    sample_rate: int
    frame: int = Field(ge=0, description="timeline index of the first frame (frame k shows sample k * rate / fps)")
    audio: str = Field(description="base64 of the chunk's samples, int16 little-endian mono")
    anims: list[TalkingHeadAnim]
    dropped: int = Field(0, ge=0, description="chunks this subscriber has lost so far (it did not read in time)")


class ProtocolError(Exception):
    def __init__(self, code: ErrorCode, message: str, ref: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref


def parse_message(data: Any) -> BaseModel:
    """Validate one decoded JSON value; raises ProtocolError with a code a client can act on."""
    if not isinstance(data, dict):
        raise ProtocolError(ErrorCode.bad_json, "a message must be a JSON object")
    ref = data.get("id") if isinstance(data.get("id"), (str, int)) else None
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in MESSAGE_TYPES:
        raise ProtocolError(ErrorCode.unknown_type, f"unknown message type {str(kind)[:40]!r}; known: "
                            + ", ".join(MESSAGE_TYPES), ref)
    v = data.get("v", PROTOCOL_VERSION)
    if v != PROTOCOL_VERSION:
        raise ProtocolError(ErrorCode.unsupported_version, f"protocol version {str(v)[:20]} is not supported; "
                            f"this server speaks {PROTOCOL_VERSION}", ref)
    try:
        return _client_adapter.validate_python(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or kind
        raise ProtocolError(ErrorCode.bad_message, f"{where}: {first['msg']}", ref) from None


def event(kind: str, **fields: Any) -> dict[str, Any]:
    """A server event: every event carries its type and the protocol version."""
    return {"type": kind, "v": PROTOCOL_VERSION, **fields}


def error_event(code: ErrorCode, message: str, ref: Any = None) -> dict[str, Any]:
    out = event("error", code=code.value, message=message)
    if ref is not None:
        out["id"] = ref
    return out
