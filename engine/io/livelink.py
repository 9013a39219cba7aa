"""Live Link Face packets: a face state as the UDP datagram Unreal's Live Link Face source reads.

The Live Link Face iOS app streams one datagram per frame to Unreal (port 11111 by
default); Unreal's Live Link Face source turns it into the ARKit curves a MetaHuman's
face animation blueprint reads. This module is the pure encoder and its inverse; the
UDP sender is `streaming.livelink.LiveLinkSender`.

Layout (packet version 6, every multi-byte field big-endian), matched against the
open-source decoders of PyLiveLinkFace (github.com/JimWest/PyLiveLinkFace,
`pylivelinkface/pylivelinkface.py`, its enum fixes the 61-value order) and of the
UE5 `LiveLinkFrame` decoder whose test reads a captured iPhone packet, following
forums.unrealengine.com/t/unreal-live-link-udp-packet-format/472878:

    uint8    packet version (6)
    int32    device id length, then the device id (UTF-8)
    int32    subject name length, then the subject name (UTF-8)
    int32    frame number        } Unreal's FQualifiedFrameTime:
    float32  sub-frame (0..1)    } FFrameTime (frame, sub-frame) and
    int32    fps numerator       } FFrameRate (numerator, denominator)
    int32    fps denominator     }
    uint8    value count (61)
    61 x float32: the 52 ARKit blendshapes in ARFaceAnchor order (LIVELINK_NAMES),
             then head yaw, pitch, roll, left eye yaw, pitch, roll, right eye
             yaw, pitch, roll.

Blendshapes are 0..1. The nine angles are radians, as the app sends ARKit's
rotations (the captured packet's eye angles are about 0.2); emolive's degrees are
converted, signs as in `FaceState` (a blueprint may negate an axis to match its rig).
Both eyes get the state's gaze (yaw, pitch); roll is 0.
"""
from __future__ import annotations

import math
import struct

import numpy as np

from engine.types import BLENDSHAPE_NAMES, COEFF_INDEX, FaceState

PACKET_VERSION = 6
DEFAULT_PORT = 11111

# Apple's ARFaceAnchor.BlendShapeLocation order, as Live Link Face sends it.
LIVELINK_BLENDSHAPES: tuple[str, ...] = tuple("""
eyeBlinkLeft eyeLookDownLeft eyeLookInLeft eyeLookOutLeft eyeLookUpLeft eyeSquintLeft eyeWideLeft
eyeBlinkRight eyeLookDownRight eyeLookInRight eyeLookOutRight eyeLookUpRight eyeSquintRight eyeWideRight
jawForward jawLeft jawRight jawOpen
mouthClose mouthFunnel mouthPucker mouthLeft mouthRight
mouthSmileLeft mouthSmileRight mouthFrownLeft mouthFrownRight
mouthDimpleLeft mouthDimpleRight mouthStretchLeft mouthStretchRight
mouthRollLower mouthRollUpper mouthShrugLower mouthShrugUpper mouthPressLeft mouthPressRight
mouthLowerDownLeft mouthLowerDownRight mouthUpperUpLeft mouthUpperUpRight
browDownLeft browDownRight browInnerUp browOuterUpLeft browOuterUpRight
cheekPuff cheekSquintLeft cheekSquintRight noseSneerLeft noseSneerRight tongueOut
""".split())
LIVELINK_ANGLES: tuple[str, ...] = (
    "headYaw", "headPitch", "headRoll",
    "leftEyeYaw", "leftEyePitch", "leftEyeRoll",
    "rightEyeYaw", "rightEyePitch", "rightEyeRoll",
)
LIVELINK_NAMES: tuple[str, ...] = LIVELINK_BLENDSHAPES + LIVELINK_ANGLES
VALUE_COUNT = len(LIVELINK_NAMES)  # 61

# emolive coefficient index for each Live Link blendshape slot, matched by name.
_FROM_STATE = np.array([COEFF_INDEX[n] for n in LIVELINK_BLENDSHAPES], dtype=np.intp)
_TIME = struct.Struct(">ifiiB")  # frame, sub-frame, fps numerator, denominator, value count
_VALUES = struct.Struct(">%df" % VALUE_COUNT)
_LEN = struct.Struct(">i")


class LiveLinkError(ValueError):
    """Bytes that are not a Live Link Face packet of the supported version."""


def _field(text: str, what: str) -> bytes:
    if not isinstance(text, str) or not text:
        raise ValueError(f"Live Link {what} must be a non-empty string, got {text!r}")
    raw = text.encode("utf-8")
    return _LEN.pack(len(raw)) + raw


def encode_livelink(state: FaceState, subject: str = "emolive", device_id: str = "emolive",
                    frame_number: int = 0, fps: int = 25, sub_frame: float = 0.0) -> bytes:
    """The Live Link Face datagram for one frame of `state` (see the module's layout)."""
    if not isinstance(fps, int) or fps < 1:
        raise ValueError(f"fps must be a positive integer, got {fps!r}")
    if not -2**31 <= int(frame_number) < 2**31:
        raise ValueError(f"frame number {frame_number} does not fit a 32-bit frame time")
    blend = np.asarray(state.coeffs, dtype=np.float64)[_FROM_STATE]
    pitch, yaw, roll = (math.radians(float(a)) for a in state.head)
    gaze_yaw, gaze_pitch = (math.radians(float(a)) for a in state.gaze)
    angles = (yaw, pitch, roll, gaze_yaw, gaze_pitch, 0.0, gaze_yaw, gaze_pitch, 0.0)
    return b"".join((
        bytes((PACKET_VERSION,)),
        _field(device_id, "device id"),
        _field(subject, "subject name"),
        _TIME.pack(int(frame_number), float(sub_frame), fps, 1, VALUE_COUNT),
        _VALUES.pack(*blend.tolist(), *angles),
    ))


def _read_field(data: bytes, pos: int, what: str) -> tuple[str, int]:
    if pos + _LEN.size > len(data):
        raise LiveLinkError(f"Live Link packet ends inside the {what} length")
    (n,) = _LEN.unpack_from(data, pos)
    pos += _LEN.size
    if n < 0 or pos + n > len(data):
        raise LiveLinkError(f"Live Link {what} length {n} runs past the packet's {len(data)} bytes")
    try:
        return data[pos:pos + n].decode("utf-8"), pos + n
    except UnicodeDecodeError as e:
        raise LiveLinkError(f"Live Link {what} is not UTF-8: {e}") from None


def decode_livelink(data: bytes) -> dict:
    """The fields of a Live Link Face packet: version, device_id, subject, frame_number,
    sub_frame, fps, fps_denominator, values ({name: float} for the 61 LIVELINK_NAMES),
    and `state`, the FaceState they describe (angles back in degrees)."""
    data = bytes(data)
    if not data or data[0] != PACKET_VERSION:
        raise LiveLinkError(f"not a Live Link Face packet of version {PACKET_VERSION}: "
                            f"starts with {data[:1].hex() or 'nothing'}")
    device_id, pos = _read_field(data, 1, "device id")
    subject, pos = _read_field(data, pos, "subject name")
    if pos + _TIME.size + _VALUES.size != len(data):
        raise LiveLinkError(f"Live Link packet is {len(data)} bytes, expected "
                            f"{pos + _TIME.size + _VALUES.size} for {VALUE_COUNT} values")
    frame, sub_frame, fps, denominator, count = _TIME.unpack_from(data, pos)
    if count != VALUE_COUNT:
        raise LiveLinkError(f"Live Link packet has {count} values, expected {VALUE_COUNT}")
    floats = _VALUES.unpack_from(data, pos + _TIME.size)
    values = dict(zip(LIVELINK_NAMES, floats))
    coeffs = np.zeros(len(BLENDSHAPE_NAMES), np.float32)
    coeffs[_FROM_STATE] = floats[:len(LIVELINK_BLENDSHAPES)]
    deg = {k: math.degrees(values[k]) for k in LIVELINK_ANGLES}
    state = FaceState(coeffs=coeffs,
                      head=(deg["headPitch"], deg["headYaw"], deg["headRoll"]),
                      gaze=(deg["leftEyeYaw"], deg["leftEyePitch"]))
    return {"version": data[0], "device_id": device_id, "subject": subject,
            "frame_number": frame, "sub_frame": sub_frame, "fps": fps,
            "fps_denominator": denominator, "values": values, "state": state}
