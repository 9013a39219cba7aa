"""Write tests/data/prompts_minilm_reference.jsonl: sentence-transformers' own embeddings of a
few texts, so the NumPy encoder (engine/emotion/embed.py) is checked against the
reference pipeline without importing sentence-transformers (15 s) in the tests.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/emotion/make_embedding_reference.py
"""
import json
import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

TEXTS = ["very happy", "a little surprised", "the weather report for tuesday",
         "Grinning from ear to ear, she could not stop laughing!", "asdf qwerty"]


def main() -> None:
    from sentence_transformers import SentenceTransformer

    from engine.emotion.embed import model_dir

    emb = SentenceTransformer(str(model_dir()), device="cpu").encode(TEXTS, normalize_embeddings=True)
    out = ROOT / "tests" / "data" / "prompts_minilm_reference.jsonl"
    with out.open("w") as f:
        for t, e in zip(TEXTS, emb):
            f.write(json.dumps({"text": t, "embedding": [round(float(x), 6) for x in e]}) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
