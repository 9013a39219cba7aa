"""Emotion from the expressive tags in a voice agent's text.

LLMs driving an expressive TTS write how to say the next words into the text itself. The tags read here:

| syntax | where from | e.g. |
| --- | --- | --- |
| `<<name>>` | a delivery of the Real-time Context Standard (Pipecat's expressive conversation) | `<<cheerful>>` |
| `[[name]]` | a sound of the same standard | `[[laugh]]` |
| `[name]` | ElevenLabs v3 audio tags | `[excited]` |
| `<emotion value="name"/>` | Cartesia's emotion tag | `<emotion value="sad"/>` |

A tag becomes an emolive emotion spec through TAGS (the names those TTS vocabularies use most, with the
intensity the word suggests). A delivery or emotion tag that is not in TAGS is read by the text-prompt
reader when it names an emotion clearly enough (`confidence` at least PROMPT_CONFIDENCE); single-bracket
tags only through TAGS, since square brackets also hold ordinary text ("[1]", "[sic]"). Pacing and emphasis
(`<<slow: ...>>`, `^^word^^`) carry no emotion and are skipped.
"""
from __future__ import annotations

import re

PROMPT_CONFIDENCE = 0.6
_NAME = r"([A-Za-z][A-Za-z _-]{0,40}?)"
DELIVERY = re.compile(r"<<\s*" + _NAME + r"\s*>>")
SOUND = re.compile(r"\[\[\s*" + _NAME + r"\s*\]\]")
AUDIO_TAG = re.compile(r"(?<!\[)\[\s*" + _NAME + r"\s*\](?!\])")
EMOTION_TAG = re.compile(r"<emotion\s+value\s*=\s*[\"']" + _NAME + r"[\"']\s*/?>", re.IGNORECASE)

_GROUPS = {
    "happy@0.8": ("happy", "happily"),
    "happy@0.7": ("cheerful", "cheerfully", "enthusiastic", "enthusiastically", "delighted"),
    "happy@0.9": ("joyful", "elated", "laugh", "laughs", "laughing", "laughter"),
    "happy:0.8+surprised:0.2@0.9": ("excited", "excitedly", "thrilled"),
    "happy@0.6": ("playful", "amused", "chuckle", "chuckles", "giggle", "giggles", "proud"),
    "happy@0.4": ("warm", "warmly", "friendly", "content", "grateful", "hopeful"),
    "sad@0.8": ("sad", "sadly", "sorrowful", "melancholic", "melancholy"),
    "sad@1.0": ("crying", "cries", "sobbing", "sobs", "heartbroken"),
    "sad@0.6": ("disappointed", "regretful"),
    "sad@0.45": ("apologetic", "apologetically", "sorry"),
    "sad@0.4": ("sigh", "sighs", "sighing", "tired", "weary"),
    "sad@0.35": ("sympathetic", "empathetic", "compassionate", "gentle", "gently"),
    "angry@0.8": ("angry", "angrily", "shouting", "shouts", "yelling", "mad"),
    "angry@1.0": ("furious", "enraged", "outraged"),
    "angry@0.5": ("frustrated", "irritated"),
    "angry@0.4": ("annoyed",),
    "angry@0.3": ("stern", "firm", "firmly"),
    "surprised@0.8": ("surprised", "gasp", "gasps", "gasping"),
    "surprised@1.0": ("shocked", "astonished", "stunned"),
    "surprised@0.7": ("amazed", "awed", "impressed"),
    "surprised@0.3": ("curious", "curiously", "intrigued"),
    "fear@0.8": ("scared", "afraid", "fearful", "frightened"),
    "fear@1.0": ("terrified", "panicked"),
    "fear@0.4": ("nervous", "nervously", "anxious", "worried", "uneasy", "hesitant"),
    "disgusted@0.8": ("disgusted", "grossed out", "revolted"),
    "contempt@0.6": ("smug", "condescending", "dismissive"),
    "contempt@0.5": ("sarcastic", "sarcastically", "mocking"),
    "neutral": ("neutral", "calm", "calmly", "serious", "professional", "flat", "whisper", "whispers",
                "whispering", "matter-of-fact"),
}
TAGS: dict[str, str] = {name: spec for spec, names in _GROUPS.items() for name in names}


def _key(name: str) -> str:
    return " ".join(name.lower().replace("_", " ").split())


def tag_names(text: str) -> list[tuple[str, bool]]:
    """(tag name, whether a prompt may read it) for every emotion-bearing tag in `text`, in order."""
    found = []
    for pattern, open_vocabulary in ((DELIVERY, True), (SOUND, False), (AUDIO_TAG, False), (EMOTION_TAG, True)):
        found += [(m.start(), _key(m.group(1)), open_vocabulary) for m in pattern.finditer(text)]
    return [(name, open_vocabulary) for _, name, open_vocabulary in sorted(found)]


def target_of(name: str, open_vocabulary: bool):
    """The emotion target (engine.emotion.EmotionTarget) one tag names, or None when it names none (pacing, a
    sound like a cough). Names outside TAGS may load the sentence encoder: read them off the event loop."""
    from engine.emotion.target import parse_spec

    if name in TAGS:
        return parse_spec(TAGS[name])
    if not open_vocabulary:
        return None
    from engine.emotion.prompt import parse_prompt

    target = parse_prompt(name)
    return target if target.confidence >= PROMPT_CONFIDENCE else None
