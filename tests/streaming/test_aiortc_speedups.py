"""The numpy audio level is aiortc's, value for value."""
import av
import numpy as np
import pytest
from aiortc import rtp

from streaming import aiortc_speedups


def _frame(samples):
    f = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    f.sample_rate = 48000
    return f


@pytest.mark.parametrize("scale", [0, 1, 30, 1000, 20000, 32767])
def test_same_level_as_aiortc(scale):
    rng = np.random.default_rng(scale)
    for _ in range(20):
        x = np.clip(rng.normal(0, scale, 960), -32768, 32767).astype(np.int16)
        f = _frame(x)
        assert aiortc_speedups.audio_level_dbov(f) == aiortc_speedups._stock_level(f)


def test_install_swaps_the_function_aiortc_calls():
    try:
        aiortc_speedups.install()
        assert rtp.compute_audio_level_dbov is aiortc_speedups.audio_level_dbov
    finally:
        aiortc_speedups.uninstall()
    assert rtp.compute_audio_level_dbov is aiortc_speedups._stock_level
