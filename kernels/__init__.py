"""Compiled CPU kernels for the mesh-warp and NeRF renderers."""
from .nerf import hash_encode, render_frame, render_rays_kernel
from .nerf import warmup as warmup_nerf
from .warp import blend_masked, warmup, warp_triangles
from .warp_reference import warp_triangles_ref

__all__ = ["blend_masked", "hash_encode", "render_frame", "render_rays_kernel", "warmup", "warmup_nerf",
           "warp_triangles", "warp_triangles_ref"]
