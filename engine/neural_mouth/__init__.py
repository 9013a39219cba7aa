"""The neural mouth: a small one-shot generator that redraws the lower face of a meshwarp frame."""
