"""Compiled CPU kernels for the mesh-warp renderer."""
from .warp import blend_masked, warmup, warp_triangles
from .warp_reference import warp_triangles_ref

__all__ = ["blend_masked", "warmup", "warp_triangles", "warp_triangles_ref"]
