"""A painted eyeball (sclera and a round iris) for lids opened wider than the photo.

Widening the eyes (eyeWide, AU5) moves the upper-lid landmarks up while the iris
landmarks stay, so the warp stretches the photo's iris and lid into a tall dark
oval. A real widened eye shows the white above a still-round iris. Inside the
deformed eye contour we paint a shaded sclera and the photo's own iris as a
disc of its own radius at the warped iris centre (gaze still moves it), faded in
by how much wider the lids are than at rest, so the rest pose and blinks (a
narrower gap) keep the photo's eye exactly.
"""
from __future__ import annotations

import cv2
import numpy as np

from kernels.warp import blend_masked

from ..face_geometry import EYE_L, EYE_L_LIDS, EYE_R, EYE_R_LIDS, IRIS_L, IRIS_R, pixel_box

# Contours run outer corner -> upper lid -> inner corner -> lower lid (EYE_R: 33 ... 133 ... 7).
_SIDES = ((EYE_R, EYE_R_LIDS, IRIS_R), (EYE_L, EYE_L_LIDS, IRIS_L))
DEAD = 0.004  # extra lid gap (inter-ocular units) ignored: numerical noise and tiny openings stay the photo
FADE_IN = 0.018  # extra gap over which the painted eyeball fades in (eyeWide = 1 opens about 0.03)
LASH = 0.75  # the upper lid's margin: lashes over the top pixel of the eyeball (share of the lash colour)
LASH_W = 0.009  # its fall-off (inter-ocular units: about one pixel at 512 px)
LID_SHADE = 0.25  # soft shadow of the upper lid on the eyeball
LID_SHADE_W = 0.2  # its fall-off, as a share of the local lid gap
CORNER = 0.55  # towards the corners the eyeball curves away and the caruncle shows: it turns to shadowed skin
LOWER_SHADE = 0.12  # a little darkening along the lower lid (its wet line and shadow)
BALL_SHADE = 0.1  # the ball's curvature: darker away from the middle of the opening
SOFT = 0.005  # blur of the painted eyeball and its edge (inter-ocular units, ~0.5 px at 512 px): a photo's softness
MIN_SCLERA_PX = 5  # fewer visible sclera pixels than this and an eye borrows the other's colour
# Sclera luminance from the skin's below the eye, least squares over the London set's 102 neutral faces
# (204 eyes, residual sd 18 of 255; a plain ratio leaves 29; scripts/emotion/eye_stats.py): used only when
# neither eye of a photo shows enough white to measure.
SCLERA_FROM_SKIN = (114.0, 0.345)
SCLERA_MAX = 225.0  # the fallback never glows whiter than this


def _gap(xy: np.ndarray, ups: np.ndarray, downs: np.ndarray) -> float:
    """Mean upper/lower lid distance over the given lid pairs."""
    d = xy[downs, :2] - xy[ups, :2]
    return float(np.sqrt((d * d).sum(axis=1)).mean())


def _poly_mask(poly: np.ndarray, x0: int, y0: int, w: int, h: int) -> np.ndarray:
    """Anti-aliased fill of a polygon into an (h, w) float32 mask in [0, 1], box origin (x0, y0)."""
    m = np.zeros((h, w), np.uint8)
    cv2.fillPoly(m, [np.round((poly - (x0, y0)) * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    return m.astype(np.float32) * np.float32(1.0 / 255.0)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114])


class _Eye:
    """One eye's photo measurements: rest gap, iris sprite (colour + alpha), sclera colour."""

    def __init__(self, image: np.ndarray, photo: np.ndarray, rest: np.ndarray, contour, lids, iris):
        self.contour = list(contour)
        self.upper = list(contour[:9])
        self.lower = list(contour[8:]) + [contour[0]]
        # The middle three lid pairs (as eye_aspect_ratio): the corners barely open.
        self.ups = np.array([u for u, _ in lids[2:5]])
        self.downs = np.array([d for _, d in lids[2:5]])
        self.centre = iris[0]
        self.rest_gap = _gap(rest, self.ups, self.downs)
        h, w = image.shape[:2]
        c = photo[iris[0], :2].astype(np.float64)
        # The horizontal rim points: the vertical ones sit under the lids in most photos and the
        # detector places them short (their radius is ~10 % smaller on the London faces).
        self.radius = r = float(np.mean([np.hypot(*(photo[i, :2] - c)) for i in (iris[1], iris[3])]))
        half = int(np.ceil(r)) + 2
        sx0, sy0 = int(np.floor(c[0])) - half, int(np.floor(c[1])) - half
        size = 2 * half + 2
        self.sprite_origin = np.array([sx0, sy0], np.float64) - c  # relative to the photo's iris centre
        ys, xs = np.mgrid[sy0:sy0 + size, sx0:sx0 + size]
        d = np.hypot(xs - c[0], ys - c[1])
        patch = image[np.clip(ys, 0, h - 1), np.clip(xs, 0, w - 1)].astype(np.float64)
        # Visible eye pixels: inside the photo's eye contour, one pixel in from the lid margins (lashes).
        poly = photo[self.contour, :2]
        inside = _poly_mask(poly, sx0, sy0, size, size) > 0.99
        inside = cv2.erode(inside.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        iris_px = inside & (d < r - 0.5)
        # Radial profile (median per 1-px ring, robust to the catch-light and lashes): the top of the iris is
        # usually under the lid, so the profile draws the whole disc; rings never seen take the nearest seen.
        nb = int(np.ceil(r))
        ring = np.minimum(d.astype(int), nb - 1)
        prof = np.full((nb, 3), np.nan)
        for b in range(nb):
            sel = iris_px & (ring == b)
            if sel.sum() >= 2:
                prof[b] = np.median(patch[sel], axis=0)
        seen = np.flatnonzero(~np.isnan(prof[:, 0]))
        if len(seen) == 0:  # an eye shut in the photo: a dark brown disc, darker at the pupil
            prof = np.array([[40.0, 30.0, 25.0]]) * np.linspace(0.6, 1.0, nb)[:, None]
        else:
            prof = np.stack([np.interp(np.arange(nb), seen, prof[seen, k]) for k in range(3)], axis=1)
        self.profile = prof
        colour = prof[ring]
        # Where the photo shows the iris, keep its own texture and catch-light (feathered so no seam shows).
        keep = cv2.GaussianBlur(iris_px.astype(np.float32), (0, 0), 0.8) * iris_px
        colour = colour * (1 - keep[..., None]) + patch * keep[..., None]
        a = np.clip(r + 0.5 - d, 0.0, 1.0)  # a 1-px anti-aliased rim
        # Colour premultiplied by alpha, alpha last: one sub-pixel warp moves both, and the edge blends right.
        self.sprite = np.ascontiguousarray(np.dstack([colour * a[..., None], a]), np.float32)
        # Sclera: visible pixels clear of the iris (and its darker limbal ring); the lit part (luminance
        # between the 60th and 95th percentile: at 512 px a few pixels of white are blurred with lashes,
        # lid shadow and the corners, which the shading paints back; the very brightest may be a catch-light).
        bx0, by0, bx1, by1 = pixel_box(poly, image.shape)
        self.sclera_px = 0
        self.sclera = None
        if bx1 - bx0 > 2 and by1 - by0 > 2:
            m = _poly_mask(poly, bx0, by0, bx1 - bx0, by1 - by0) > 0.99
            m = cv2.erode(m.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            yy, xx = np.mgrid[by0:by1, bx0:bx1]
            m &= np.hypot(xx - c[0], yy - c[1]) > 1.15 * r + 1.0
            px = image[by0:by1, bx0:bx1][m].astype(np.float64)
            self.sclera_px = len(px)
            if len(px) >= MIN_SCLERA_PX:
                lum = _luma(px)
                lo, hi = np.percentile(lum, [60, 95])
                self.sclera = np.median(px[(lum >= lo) & (lum <= hi)], axis=0)
        # Skin just below the lower lid (for the fallback sclera).
        low = photo[self.lower, :2]
        ky0 = int(np.ceil(low[:, 1].max())) + 2
        kx0, kx1 = int(np.floor(low[:, 0].min())), int(np.ceil(low[:, 0].max()))
        skin = image[min(ky0, h - 1):min(ky0 + max(2, int(r)), h), max(kx0, 0):min(kx1, w)].reshape(-1, 3)
        self.skin = np.median(skin, axis=0).astype(np.float64) if len(skin) else np.array([128.0, 100.0, 90.0])
        # The lash colour: the darkest third of the pixels on the upper lid margin.
        up = np.round(photo[self.upper, :2]).astype(int)
        lash = image[np.clip(up[:, 1], 0, h - 1), np.clip(up[:, 0], 0, w - 1)].astype(np.float64)
        self.lash = lash[np.argsort(_luma(lash))[:3]].mean(axis=0).astype(np.float32)
        self.corner_rgb = (0.8 * self.skin).astype(np.float32)  # shadowed skin / caruncle at the corners


def _fallback_sclera(skin: np.ndarray) -> np.ndarray:
    """A sclera for a photo that shows almost none: its luminance as real faces' relates to their skin's
    (lit by the same light; brighter than dark skin, about as bright as fair skin, never glowing white),
    nearly grey with a trace of the skin's warmth."""
    a, b = SCLERA_FROM_SKIN
    lum = min(a + b * float(_luma(skin)), SCLERA_MAX)
    tint = skin / max(float(_luma(skin)), 1.0)
    return lum * (0.85 + 0.15 * tint)


class EyePainter:
    """Paints both eyeballs when the deformed lids open wider than at rest.

    `image`: the avatar photo (RGB uint8); `photo_xy`: its landmarks (px); `rest_xy`: the vertices of the
    renderer's rest pose (the photo with its own expression undone), whose lid gap is the reference;
    `scale`: the inter-ocular distance in px.
    """

    def __init__(self, image: np.ndarray, photo_xy: np.ndarray, rest_xy: np.ndarray, scale: float):
        self._eyes = [_Eye(image, photo_xy, rest_xy, *s) for s in _SIDES]
        a, b = self._eyes
        for e, other in ((a, b), (b, a)):
            if e.sclera is None:
                # Too little white to measure (narrow or hooded eyes): the other eye's, or failing that a
                # colour from the skin below the eye (see _fallback_sclera).
                e.sclera = other.sclera if other.sclera is not None else _fallback_sclera(e.skin)
        for e in self._eyes:
            e.palette = np.stack([e.sclera, e.corner_rgb, e.lash]).astype(np.float32)  # rows: the mix's colours
        self._lash_k = np.float32(-1.0 / (LASH_W * scale))
        self._soft = SOFT * scale
        self._dead = DEAD * scale
        self._fade = FADE_IN * scale

    def strength(self, xy: np.ndarray) -> list[float]:
        """Per eye (image-left first), how much of the painted eyeball shows for these deformed vertices."""
        return [min(max((_gap(xy, e.ups, e.downs) - e.rest_gap - self._dead) / self._fade, 0.0), 1.0)
                for e in self._eyes]

    def paint(self, out: np.ndarray, xy: np.ndarray) -> None:
        for e, s in zip(self._eyes, self.strength(xy)):
            if s > 0.0:
                self._paint_eye(out, xy, e, s)

    def _paint_eye(self, out: np.ndarray, xy: np.ndarray, e: _Eye, strength: float) -> None:
        poly = xy[e.contour, :2].astype(np.float64)
        x0, y0, x1, y1 = pixel_box(poly, out.shape)
        if x1 - x0 < 3 or y1 - y0 < 3:
            return
        bw, bh = x1 - x0, y1 - y0
        alpha = _poly_mask(poly, x0, y0, bw, bh) * np.float32(strength)

        # Shading of a lit ball seen through the lids (float32, per column where it can be): a shadow and the
        # lashes under the upper lid, a little along the lower lid, darker and skin-toned towards the corners.
        xs = np.arange(x0, x1, dtype=np.float32) + np.float32(0.5)
        ys = np.arange(y0, y1, dtype=np.float32)[:, None] + np.float32(0.5)
        up, lo = poly[:9], np.vstack([poly[8:], poly[:1]])
        o = np.argsort(up[:, 0])
        yu = np.interp(xs, up[o, 0], up[o, 1]).astype(np.float32)
        o = np.argsort(lo[:, 0])
        yl = np.interp(xs, lo[o, 0], lo[o, 1]).astype(np.float32)
        gap = np.maximum(yl - yu, np.float32(1.0))
        below = np.maximum(ys - yu, np.float32(0.0))
        above = np.maximum(yl - ys, np.float32(0.0))
        cx = 0.5 * (poly[:, 0].min() + poly[:, 0].max())
        half_w = max(0.5 * float(np.ptp(poly[:, 0])), 1.0)
        side = np.minimum(np.abs(xs - np.float32(cx)) * np.float32(1.0 / half_w), np.float32(1.0))
        column = np.float32(1.0) - np.float32(BALL_SHADE) * side * side
        corner = (np.float32(CORNER / 0.45 ** 2) * np.maximum(side - np.float32(0.55), np.float32(0.0)) ** 2)
        shade = ((np.float32(1.0) - np.float32(LID_SHADE) * np.exp(below * (np.float32(-1.0 / LID_SHADE_W) / gap)))
                 * (np.float32(1.0) - np.float32(LOWER_SHADE) * np.exp(above * (np.float32(-1.0 / 0.2) / gap)))
                 * column)
        lash = np.float32(LASH) * np.exp(below * self._lash_k)

        # The iris sprite, moved to the warped iris centre (sub-pixel, so gaze moves it smoothly).
        t = xy[e.centre, :2] + e.sprite_origin - (x0, y0)
        m = np.float32([[1, 0, t[0]], [0, 1, t[1]]])
        iris = cv2.warpAffine(e.sprite, m, (bw, bh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        # Sclera under the iris, corners turned to shadowed skin, shaded, lashes over the top: one linear mix
        # per pixel of the iris and three fixed colours, weights computed on one channel.
        keep = shade * (np.float32(1.0) - corner) * (np.float32(1.0) - lash)
        weights = np.stack([keep * (np.float32(1.0) - iris[..., 3]), shade * corner * (np.float32(1.0) - lash), lash],
                           axis=-1)
        colour = weights @ e.palette
        colour += keep[..., None] * iris[..., :3]
        colour = cv2.GaussianBlur(colour, (0, 0), self._soft)
        alpha = cv2.GaussianBlur(alpha, (0, 0), self._soft)
        overlay = np.minimum(colour + np.float32(0.5), np.float32(255.0)).astype(np.uint8)
        blend_masked(out[y0:y1, x0:x1], overlay, alpha)
