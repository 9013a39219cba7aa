"""Renderers behind one interface; `create(name, avatar)` picks one by name."""
from .base import Renderer, RendererError, available, create, is_trained_bundle, register, switch_options, trained
from . import meshwarp  # noqa: F401  (registers "meshwarp")
from . import diffusion  # noqa: F401  (registers "diffusion")
from . import nerf  # noqa: F401  (registers "nerf")

__all__ = ["Renderer", "RendererError", "available", "create", "register", "switch_options"]
