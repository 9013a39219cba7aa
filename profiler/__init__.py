"""The latency profiler: `emolive bench`, its client peers, the browser receiver, figures and reports.

It sits above the transport: streaming exposes hooks (aiortc timing hooks in
streaming/instruments.py, frame and audio marks in streaming/frame_marks.py and
streaming/audio_marks.py, per-session stage rings from engine/profiling.py) and
the profiler measures through them. Nothing below imports it.
"""
