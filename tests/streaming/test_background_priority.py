"""Prompts and reference photos are read on threads below the media: their niceness is raised (Linux)."""
import os
import sys
import threading

import pytest

from streaming.control import BACKGROUND_NICE, IMAGE_READER, PROMPT_READER


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")
@pytest.mark.parametrize("pool", [PROMPT_READER, IMAGE_READER], ids=["prompts", "images"])
def test_reader_threads_run_below_the_media(pool):
    def own_niceness():
        return threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    tid, nice = pool.submit(own_niceness).result(timeout=30)
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())  # this (media-side) thread is untouched
    assert tid != threading.get_native_id()
    assert nice == min(19, base + BACKGROUND_NICE)
