"""What one soak client peer received, read: A/V offsets from the audio marks and the frame ids in the pixels
(as decoded, at RTP arrival, on the timeline), the timeline's slips off the frame grid, frame-id gaps and
repeats (benchmarks/bench_soak.py).
"""
from __future__ import annotations

import bisect

import numpy as np

SLIP_MAX_MS = 1.0  # timeline offset beyond whole frame periods: the marks' detection is good to ~0.1 ms
RATE = 48_000
VIDEO_CLOCK = 90_000
FRAME_SAMPLES = 960  # one 20 ms audio packet at 48 kHz


class Received:
    """What one client peer received (video frames with their ids, audio marks), growing window by window."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.video: list[list] = []  # [arrival, pts, frame id or -1], in arrival order
        self.marks: list[list] = []  # [time the mark's onset was decoded, pts, score]
        self._times: list[float] = []
        # at the end, RTP arrivals (before the client's jitter buffers): pts -> arrival, audio packets and
        # video frames (their last packet)
        self.audio_rtp: dict[int, float] = {}
        self.video_rtp: dict[int, float] = {}
        self._apts = np.zeros(0, np.int64)
        self.timeline_zero: float | None = None

    def add(self, video: list, marks: list) -> None:
        self.video += video
        self._times += [v[0] for v in video]
        self.marks += marks

    def add_rtp(self, rtp: dict) -> None:
        from profiler.figures import _rtp_times

        self.audio_rtp = _rtp_times(rtp.get("audio", []), last_of_frame=False)
        self.video_rtp = _rtp_times(rtp.get("video", []), last_of_frame=True)
        self._apts = np.array(sorted(self.audio_rtp), np.int64)

    def _audio_arrival(self, pts: int) -> float | None:
        """When the RTP packet holding received audio sample pts arrived (+ the sample's place in it)."""
        i = int(np.searchsorted(self._apts, pts, side="right")) - 1
        if i < 0 or pts >= self._apts[i] + FRAME_SAMPLES:
            return None
        return self.audio_rtp[int(self._apts[i])] + (pts - self._apts[i]) / RATE

    def _span(self, t0: float, t1: float) -> tuple[int, int]:
        return bisect.bisect_left(self._times, t0), bisect.bisect_left(self._times, t1)

    def offsets(self, t0: float, t1: float, fps: int, raw: bool = False) -> dict | list:
        """A/V offset over the marks decoded in [t0, t1) (bench_figures' pairing of marks and frame ids),
        p50 / p95 / n: as decoded (`decoded`: the client peer's buffers and decoders in it); once the RTP
        arrivals are in, at RTP arrival (`rtp`: the server's sending, the network); and on the timeline
        (`timeline`: frame k's video pts against the audio pts of the mark at frame k's first sample, 0
        when frame k went out at its own tick, one frame period per tick late)."""
        from profiler.figures import mark_frames

        lo, hi = self._span(t0 - 2.0, t1 + 2.0)  # frames around the window: each mark's frame is within 0.5 s
        marked = [v for v in self.video[lo:hi] if v[2] >= 0]
        marks = [m for m in self.marks if t0 <= m[0] < t1]
        decoded, rtp, timeline = [], [], []
        for mark, frame in mark_frames(marks, marked, RATE // fps, RATE, t0, t1 - 1e-9):
            decoded.append(1000.0 * (frame[0] - mark[0]))
            t_v, t_a = self.video_rtp.get(frame[1]), self._audio_arrival(mark[1])
            if t_v is not None and t_a is not None:
                rtp.append(1000.0 * (t_v - t_a))
            timeline.append(1000.0 * (frame[1] / VIDEO_CLOCK - mark[1] / RATE))
        if raw:
            return timeline
        if self.timeline_zero is not None:
            timeline = [x - self.timeline_zero for x in timeline]
        return {"decoded": _pct(decoded), "rtp": _pct(rtp), "timeline": _pct(timeline)}

    def set_timeline_zero(self, t0: float, t1: float, fps: int) -> None:
        """The timeline offset of a frame sent on time (the received pts count from the first packet of
        each track, hence a zero to find): the smallest of the offsets a whole number of frame periods
        from a middle one (a frame never goes out before its tick; a mark misread in a starved receiver
        is left out)."""
        self.timeline_zero = None
        off = np.sort(np.array(self.offsets(t0, t1, fps, raw=True)))
        if len(off):
            self.timeline_zero = float(off[_slips(off - off[len(off) // 2], fps) <= SLIP_MAX_MS].min())

    def slips(self, t0: float, t1: float, fps: int) -> np.ndarray:
        """|timeline offset - the nearest whole number of frame periods| of each mark in [t0, t1)."""
        return _slips(np.array(self.offsets(t0, t1, fps, raw=True)) - (self.timeline_zero or 0.0), fps)

    def frames(self, t0: float, t1: float) -> dict:
        """Frames received in [t0, t1): count, ids not read, frame-id gaps (ids never received) and repeats
        (the same id again: the server repeated a frame), each frame compared with the last id before it."""
        lo, hi = self._span(t0, t1)
        prev = next((v[2] for v in reversed(self.video[:lo]) if v[2] >= 0), None)
        gaps = repeats = unread = back = 0
        last_id = None
        for _, _, fid in self.video[lo:hi]:
            if fid < 0:
                unread += 1
                continue
            if prev is not None:
                d = (fid - prev) % 65536
                if d == 0:
                    repeats += 1
                elif d > 32768:
                    back += 1  # an older id after a newer one: out of order
                else:
                    gaps += d - 1
            prev = last_id = fid
        return {"received": hi - lo, "id_gaps": gaps, "id_repeats": repeats, "ids_unread": unread,
                "ids_back": back, "last_id": last_id}


def _pct(values: list[float]) -> dict | None:
    if not values:
        return None
    p = np.percentile(values, [50, 95])
    return {"p50": round(float(p[0]), 2), "p95": round(float(p[1]), 2), "n": len(values)}


def _slips(offsets_ms: np.ndarray, fps: int) -> np.ndarray:
    period = 1000.0 / fps
    return np.abs(offsets_ms - period * np.round(offsets_ms / period))
