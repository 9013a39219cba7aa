"""Text prompts -> emotion target: "very happy with a little surprised" -> {happy .75, surprised .25} @ .9.

1. Split the prompt into clauses at connectives ("with", "and", "but", commas...),
   as EmoTalker splits a description into per-emotion parts.
2. In each clause read and remove intensity modifiers (a little, slightly,
   somewhat, very, extremely, ..., or a number such as 80% / 0.8) and negation.
3. Match what is left: an exact word of the lexicon below, else the nearest
   description by all-MiniLM-L6-v2 sentence embedding (engine/emotion/embed.py),
   cosine >= MIN_SIM. Each description carries the intensity the word implies
   ("annoyed" is mild anger, "furious" strong), used when no modifier is given.
4. Mixture weights = clause intensities (normalised); overall intensity = the
   strongest clause's. Neutral clauses ("calm") dilute the others.
Text with nothing recognisable gives neutral, a low confidence and a reason.
Never raises for any string.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .target import EmotionTarget

DEFAULT_K = 0.7  # a bare "happy"
MIN_SIM = 0.45  # below: the clause is not about an emotion (see docs/design/emotion.md for the tuning)
FULL_SIM = 0.75  # at or above: full confidence
MAX_CHARS = 500

# description -> intensity it implies (None = DEFAULT_K)
DESCRIPTIONS: dict[str, dict[str, float | None]] = {
    "neutral": {"neutral": None, "calm": None, "relaxed": None, "composed": None, "expressionless": None,
                "no emotion": None, "indifferent": None, "normal": None, "serene": None, "at ease": None,
                "blank face": None, "unemotional": None, "peaceful": None, "bored": None},
    "angry": {"angry": None, "anger": None, "annoyed": 0.35, "irritated": 0.4, "furious": 1.0, "mad": None,
              "enraged": 1.0, "frustrated": 0.5, "outraged": 0.95, "hostile": None, "cross": 0.5, "livid": 1.0,
              "irate": 0.9, "fuming": 0.95, "grumpy": 0.4},
    "contempt": {"contempt": None, "contemptuous": None, "scornful": None, "disdainful": None, "smug": 0.5,
                 "sneering": None, "condescending": None, "dismissive": 0.5, "mocking": None, "scorn": None,
                 "disdain": None, "sarcastic": 0.5, "smirk": 0.5, "smirking": 0.5},
    "disgusted": {"disgusted": None, "disgust": None, "grossed out": None, "revolted": 0.9, "repulsed": 0.9,
                  "nauseated": None, "sickened": 0.8, "gross": None, "yuck": None, "repelled": None},
    "fear": {"fear": None, "afraid": None, "scared": None, "fearful": None, "terrified": 1.0, "frightened": 0.8,
             "anxious": 0.5, "nervous": 0.4, "worried": 0.4, "panicked": 1.0, "uneasy": 0.3, "horrified": 1.0,
             "alarmed": 0.6, "petrified": 1.0},
    "happy": {"happy": None, "happiness": None, "joy": None, "joyful": None, "cheerful": None, "delighted": 0.85,
              "glad": 0.6, "pleased": 0.5, "content": 0.4, "ecstatic": 1.0, "thrilled": 0.9, "smiling": None,
              "amused": 0.5, "overjoyed": 1.0, "elated": 0.95, "jolly": None, "upbeat": 0.5, "friendly": 0.4},
    "sad": {"sad": None, "sadness": None, "unhappy": None, "sorrowful": 0.8, "gloomy": 0.5, "depressed": 0.8,
            "heartbroken": 1.0, "miserable": 0.9, "down": 0.4, "melancholy": 0.5, "grieving": 0.9,
            "disappointed": 0.4, "crying": 0.9, "tearful": 0.8, "blue": 0.4, "devastated": 1.0, "upset": 0.6},
    "surprised": {"surprised": None, "surprise": None, "astonished": 0.9, "amazed": 0.8, "shocked": 1.0,
                  "startled": None, "stunned": 0.9, "taken aback": 0.5, "wow": None, "astounded": 0.95,
                  "flabbergasted": 1.0, "in disbelief": None},
}

# modifier -> intensity; matched on word boundaries, longest first
MODIFIERS: dict[str, float] = {
    "a tiny bit": 0.2, "a tiny bit of": 0.2, "barely": 0.15, "faintly": 0.2, "a hint of": 0.2, "a trace of": 0.2,
    "a touch of": 0.25, "a tinge of": 0.25, "a little bit": 0.3, "a little": 0.3, "little": 0.3, "a bit": 0.3,
    "slightly": 0.3, "mildly": 0.3, "lightly": 0.3, "subtly": 0.25, "a little bit of": 0.3, "a bit of": 0.3,
    "somewhat": 0.5, "moderately": 0.5, "fairly": 0.55, "kind of": 0.45, "kinda": 0.45, "sort of": 0.45,
    "rather": 0.6, "pretty": 0.65, "quite": 0.7, "mostly": 0.7, "very": 0.9, "really": 0.85, "so": 0.85,
    "truly": 0.85, "deeply": 0.9, "highly": 0.9, "super": 0.95, "extremely": 1.0, "incredibly": 1.0,
    "intensely": 1.0, "totally": 1.0, "completely": 1.0, "utterly": 1.0, "absolutely": 1.0, "insanely": 1.0,
    "overwhelmingly": 1.0, "immensely": 1.0, "terribly": 0.95, "extraordinarily": 1.0,
}
_NEGATIONS = re.compile(r"\b(not|no longer|never|isn't|aren't|don't|doesn't|without|nor)\b")
_SPLIT = re.compile(r"\s*(?:,|;|/|&|\+|\band\b|\bwith\b|\bbut\b|\bplus\b|\byet\b|\bwhile\b|\bthough\b"
                    r"|\balso\b|\bas well as\b|\bmixed with\b|\bcombined with\b|\bor\b)\s*")
_FILLER = re.compile(r"\b(look|looks|looking|feel|feels|feeling|be|being|seem|seems|seeming|appear|appears|"
                     r"i am|i'm|am|is|are|a|an|the|of|face|expression|mood|at all|some|bit|hint|touch|"
                     r"please|make|him|her|them|me|it|you|the avatar)\b")
_NUMBER = re.compile(r"(\d+(?:\.\d+)?)\s*(%|percent)?")
_MOD_RE = re.compile(r"\b(" + "|".join(re.escape(m) for m in sorted(MODIFIERS, key=len, reverse=True)) + r")\b")


@dataclass(frozen=True)
class Clause:
    text: str
    emotion: str | None  # None: not recognised
    intensity: float
    confidence: float
    note: str


@lru_cache(maxsize=1)
def _bank() -> tuple[list[str], list[str], list[float | None], np.ndarray]:
    """All descriptions, their emotions and intensity hints, and their embeddings (computed once)."""
    from .embed import get_embedder

    texts, emos, hints = [], [], []
    for e, descs in DESCRIPTIONS.items():
        for d, k in descs.items():
            texts.append(d)
            emos.append(e)
            hints.append(k)
    return texts, emos, hints, get_embedder().encode(texts)


def _lexicon() -> dict[str, tuple[str, float | None]]:
    return {d: (e, k) for e, descs in DESCRIPTIONS.items() for d, k in descs.items()}


def _parse_clause(raw: str) -> Clause:
    text = raw.strip(" .!?\"'")
    if not text:
        return Clause(raw, None, 0.0, 0.0, "empty clause")
    negated = bool(_NEGATIONS.search(text))
    k_mod = None
    num = _NUMBER.search(text)
    if num:
        v = float(num.group(1))
        k_mod = v / 100.0 if (num.group(2) or v > 1.5) else v
        text = _NUMBER.sub(" ", text)
    mods = _MOD_RE.findall(text)
    if mods and k_mod is None:
        k_mod = MODIFIERS[mods[0]]
        if len(mods) > 1 and all(MODIFIERS[m] >= 0.8 for m in mods):  # "very very", "really extremely"
            k_mod = min(1.0, k_mod + 0.1)
    core = _MOD_RE.sub(" ", text)
    core = _NEGATIONS.sub(" ", core)
    core = re.sub(r"[^a-z' ]+", " ", core)
    core = re.sub(r"\s+", " ", _FILLER.sub(" ", core)).strip()
    if not core:
        return Clause(raw, None, 0.0, 0.0, "no emotion word")
    lex = _lexicon()
    if core in lex:
        emotion, hint = lex[core]
        sim, conf, how = 1.0, 1.0, "lexicon"
    else:
        from .embed import get_embedder

        texts, emos, hints, emb = _bank()
        sims = emb @ get_embedder().encode([core])[0]
        j = int(np.argmax(sims))
        sim = float(sims[j])
        if sim < MIN_SIM:
            return Clause(raw, None, 0.0, 0.0, f"{core!r} is not an emotion (nearest {texts[j]!r}, cos {sim:.2f})")
        emotion, hint = emos[j], hints[j]
        conf = float(np.clip((sim - MIN_SIM) / (FULL_SIM - MIN_SIM), 0.0, 1.0)) * 0.7 + 0.3
        how = f"~{texts[j]!r} cos {sim:.2f}"
    if negated:
        return Clause(raw, "neutral", DEFAULT_K, 0.5 * conf, f"negated {emotion} -> neutral")
    k = k_mod if k_mod is not None else (hint if hint is not None else DEFAULT_K)
    return Clause(raw, emotion, float(np.clip(k, 0.0, 1.5)), conf, how)


def split_clauses(prompt: str) -> list[str]:
    return [c for c in _SPLIT.split(prompt.lower()) if c and c.strip(" .!?\"'")]


def parse_prompt(prompt) -> EmotionTarget:
    """The emotion target a sentence asks for (never raises; see module doc)."""
    try:
        text = str(prompt if prompt is not None else "")[:MAX_CHARS]
    except Exception:  # noqa: BLE001 - an object whose str() fails is still "no prompt"
        text = ""
    if not text.strip():
        return EmotionTarget(intensity=0.0, confidence=0.0, reason="empty prompt: neutral")
    try:
        clauses = [_parse_clause(c) for c in split_clauses(text)]
    except Exception as e:  # noqa: BLE001 - e.g. the embedding model is not installed
        return EmotionTarget(intensity=0.0, confidence=0.0, reason=f"prompt not understood ({e}): neutral")
    found = [c for c in clauses if c.emotion is not None]
    notes = "; ".join(f"{c.text.strip()!r}: {c.emotion or '-'} {c.intensity:.2f} ({c.note})" for c in clauses)
    if not found:
        return EmotionTarget(intensity=0.0, confidence=0.1 if clauses else 0.0,
                             reason=f"no emotion recognised: neutral [{notes}]")
    expressive = [c for c in found if c.emotion != "neutral"]
    if not expressive:
        return EmotionTarget(intensity=0.0, confidence=float(np.mean([c.confidence for c in found])),
                             reason=f"neutral [{notes}]")
    weights: dict[str, float] = {}
    for c in found:
        w = c.intensity
        weights[c.emotion] = weights.get(c.emotion, 0.0) + max(w, 1e-3)
    k = max(c.intensity for c in expressive)
    conf = float(np.mean([c.confidence for c in clauses])) if clauses else 0.0
    return EmotionTarget(mixture=weights, intensity=k, confidence=conf, reason=notes)
