"""An expression-conditioned neural radiance field of one person's head (docs/design/nerf.md).

instant-NGP's multiresolution hash encoding of 3D position, density and colour
MLPs conditioned on the face state's 52 coefficients, rays transformed by the
head pose, an occupancy grid for empty-space skipping. Trained per person by
`emolive avatar train --backend nerf`; drawn by the `nerf` renderer.
"""
