"""The transport: WebRTC sessions, the control websocket, PCM push, WHIP/WHEP, the front and its workers."""
from engine.blas import pin_blas_threads

pin_blas_threads()  # before numpy loads in `python -m streaming.server` / `streaming.worker` (engine/blas.py)
