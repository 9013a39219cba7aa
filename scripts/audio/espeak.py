"""Synthetic speech with per-phoneme timings from libespeak-ng (ctypes, phoneme events).

    synth("bin blue at f two now", voice="en-us+f3", rate=160, pitch=50)
    -> (int16 samples, sample_rate, [(start_s, end_s, phoneme), ...])
"""
from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np

AUDIO_OUTPUT_SYNCHRONOUS = 2
INIT_PHONEME_EVENTS = 0x0001
EVENT_LIST_TERMINATED, EVENT_WORD, EVENT_END, EVENT_PHONEME = 0, 1, 5, 7
RATE, VOLUME, PITCH, RANGE = 1, 2, 3, 4


class _Id(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _Id)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class Espeak:
    def __init__(self):
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        self.lib = ctypes.CDLL(name)
        self.rate = self.lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 200, None, INIT_PHONEME_EVENTS)
        if self.rate <= 0:
            raise RuntimeError("espeak_Initialize failed")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []
        self._cb = _CALLBACK(self._on_audio)  # keep a reference: ctypes must not free it
        self.lib.espeak_SetSynthCallback(self._cb)
        self.lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                          ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]

    def _on_audio(self, wav, n, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != EVENT_LIST_TERMINATED:
            e = events[i]
            if e.type == EVENT_PHONEME:
                self._events.append((e.sample, e.id.string.decode("ascii", "replace")))
            elif e.type == EVENT_END:
                self._events.append((e.sample, "_end"))
            i += 1
        return 0

    def synth(self, text: str, voice: str = "en-us", rate: int = 170, pitch: int = 50, prange: int = 50):
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak voice {voice!r} not available")
        for k, v in ((RATE, rate), (PITCH, pitch), (RANGE, prange), (VOLUME, 100)):
            self.lib.espeak_SetParameter(k, int(v), 0)
        self._chunks, self._events = [], []
        b = text.encode() + b"\0"
        if self.lib.espeak_Synth(b, len(b), 0, 1, 0, 0, None, None) != 0:  # POS_CHARACTER, CHARS_AUTO
            raise RuntimeError("espeak_Synth failed")
        self.lib.espeak_Synchronize()
        wav = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        # Phoneme events mark phoneme starts (in samples); each lasts until the next event.
        ev = sorted(self._events)
        segs = []
        for (s0, p), (s1, _) in zip(ev, ev[1:] + [(wav.size, "_end")]):
            if p == "_end" or s1 <= s0:
                continue
            segs.append((s0 / self.rate, s1 / self.rate, p))
        return wav.astype(np.int16), self.rate, segs
