"""Speech -> expression: PCM intake, streaming features, the audio model and the streaming class."""
from .errors import AudioInputError
from .io import read_audio_file
from .stream import AudioToExpression, run_file, run_samples

__all__ = ["AudioInputError", "AudioToExpression", "read_audio_file", "run_file", "run_samples"]
