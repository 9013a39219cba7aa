"""The emotion layer: emotion directions, mixing with speech, a sans-I/O controller,
text prompts, reference photos and idle life. See docs/design/emotion.md."""
from .controller import EmotionController, EmotionReport
from .directions import EMOTIONS, EmotionError, EmotionSpace, load_directions
from .mixing import MAX_INTENSITY, MixConfig, apply_emotion
from .target import EmotionTarget, parse_spec

__all__ = ["EMOTIONS", "EmotionController", "EmotionError", "EmotionReport", "EmotionSpace", "EmotionTarget",
           "MAX_INTENSITY", "MixConfig", "apply_emotion", "load_directions", "parse_spec"]
