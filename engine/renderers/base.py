"""The renderer seam: a synchronous `render(state) -> RGB frame`, one instance per session.

Renderers are plain synchronous objects; the streaming shell runs them in a worker
so the event loop never blocks. New renderers register a factory by name.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

import numpy as np

from ..types import FaceState


class RendererError(RuntimeError):
    """A renderer cannot be created or cannot draw (bad avatar, missing device, ...)."""


@runtime_checkable
class Renderer(Protocol):
    name: str
    size: tuple[int, int]  # (height, width) of the frames it draws

    def render(self, state: FaceState) -> np.ndarray:
        """Draw one face state as an (H, W, 3) uint8 RGB frame."""
        ...

    def close(self) -> None:
        ...


_REGISTRY: dict[str, Callable[..., Renderer]] = {}
# Renderers drawn from a trained bundle directory (`emolive avatar train --backend NAME`): name -> its check
_TRAINED: dict[str, Callable[[object], bool]] = {}


def register(name: str, is_bundle: Callable[[object], bool] | None = None):
    """Register a renderer factory; `is_bundle` for a renderer drawn from a trained bundle: whether a path is one."""
    def deco(factory: Callable[..., Renderer]) -> Callable[..., Renderer]:
        _REGISTRY[name] = factory
        if is_bundle is not None:
            _TRAINED[name] = is_bundle
        return factory

    return deco


def trained() -> tuple[str, ...]:
    """The renderers drawn from a trained bundle directory rather than from an avatar."""
    return tuple(sorted(_TRAINED))


def is_trained_bundle(path) -> bool:
    """Whether `path` is a bundle directory of one of the trained renderers (it carries its own avatar)."""
    return isinstance(path, (str, Path)) and any(check(path) for check in _TRAINED.values())


def available() -> list[str]:
    return sorted(_REGISTRY)


def create(name: str, avatar, **options) -> Renderer:
    """Create the renderer registered as `name` for an avatar (see engine.avatar)."""
    if name not in _REGISTRY:
        raise RendererError(f"unknown renderer {name!r}; available: {', '.join(available()) or 'none'}")
    return _REGISTRY[name](avatar, **options)


def bundle_dir(avatar, bundle, is_bundle: Callable[[object], bool]) -> Path | None:
    """The trained bundle a renderer of that kind is created from: `bundle`, else `avatar` when it is a path to
    such a bundle (what `emolive serve --avatar DIR` passes), else None (a photo or avatar: the fallback)."""
    if bundle is not None:
        return Path(bundle)
    if isinstance(avatar, (str, Path)) and is_bundle(avatar):
        return Path(avatar)
    return None


def switch_options(name: str, neural_mouth: bool = False) -> dict:
    """The options the command line and the server config set, for the renderer `name`: only those it takes
    (an unknown keyword is an error in a renderer's factory). diffusion and nerf take it for their meshwarp fallback."""
    return {"neural_mouth": neural_mouth} if name in ("meshwarp", "diffusion", "nerf") else {}
