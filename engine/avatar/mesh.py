"""The avatar's warp mesh: MediaPipe's face tessellation plus fills and an outer region.

Vertices: the 478 landmarks, then rings of points around the face oval (hair,
ears, neck), then a border grid. Triangles come in groups so the renderer can
treat them differently: the outer region (constrained Delaunay, so it meets the
face oval exactly and nothing tears), the face surface, the mouth opening and
the eye openings (filled so that lids and lips can move over them).
"""
from __future__ import annotations

import collections
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..face_geometry import EYE_L, EYE_R, FACE_OVAL, IRIS_L, IRIS_R, LIPS_INNER, NUM_LANDMARKS

GROUP_OUTER, GROUP_FACE, GROUP_MOUTH, GROUP_EYE = 0, 1, 2, 3
RING_FACTORS = (1.22, 1.5, 1.9, 2.5)  # radial multiples of the face oval
BORDER_STEP = 48  # px between fixed border points


@dataclass(frozen=True)
class WarpMesh:
    vertices: np.ndarray  # (V, 3) float32 px; first 478 are the landmarks
    triangles: np.ndarray  # (T, 3) int32
    groups: np.ndarray  # (T,) uint8 GROUP_*
    head_weight: np.ndarray  # (V,) float32: how much a vertex follows head rotation
    parent: np.ndarray  # (V,) int32 oval landmark a ring vertex follows (-1 for none)
    follow: np.ndarray  # (V,) float32 share of its parent's expression displacement


@lru_cache(maxsize=1)
def _tessellation_cliques() -> tuple[tuple[int, int, int], ...]:
    import mediapipe as mp

    adj: dict[int, set[int]] = collections.defaultdict(set)
    for a, b in mp.solutions.face_mesh.FACEMESH_TESSELATION:
        adj[a].add(b)
        adj[b].add(a)
    tris = set()
    for a in adj:
        for b in adj[a]:
            for c in adj[a] & adj[b]:
                tris.add(tuple(sorted((a, b, c))))
    return tuple(sorted(tris))


def _contains_any(tri_xy: np.ndarray, pts: np.ndarray) -> bool:
    a, b, c = tri_xy
    d = (b[1] - c[1]) * (a[0] - c[0]) + (c[0] - b[0]) * (a[1] - c[1])
    if abs(d) < 1e-12:
        return False
    l1 = ((b[1] - c[1]) * (pts[:, 0] - c[0]) + (c[0] - b[0]) * (pts[:, 1] - c[1])) / d
    l2 = ((c[1] - a[1]) * (pts[:, 0] - c[0]) + (a[0] - c[0]) * (pts[:, 1] - c[1])) / d
    l3 = 1 - l1 - l2
    eps = 1e-6
    return bool(np.any((l1 > eps) & (l2 > eps) & (l3 > eps)))


def face_triangles(landmarks: np.ndarray) -> np.ndarray:
    """Faces of MediaPipe's tessellation graph (3-cliques, minus the few that enclose a vertex)."""
    xy = np.asarray(landmarks, np.float64)[:468, :2]
    cliques = _tessellation_cliques()
    edge_count = collections.Counter()
    for t in cliques:
        edge_count.update(((t[0], t[1]), (t[0], t[2]), (t[1], t[2])))
    out = []
    for t in cliques:
        shared = any(edge_count[e] > 2 for e in ((t[0], t[1]), (t[0], t[2]), (t[1], t[2])))
        if shared:
            others = np.delete(xy, list(t), axis=0)
            if _contains_any(xy[list(t)], others):
                continue
        out.append(t)
    return np.array(out, np.int32)


def _triangulate_polygon(xy: np.ndarray, loop: list[int], inner: list[int]) -> np.ndarray:
    """Constrained triangulation of a closed loop (plus interior points) in global indices."""
    import triangle

    idx = list(loop) + list(inner)
    n = len(loop)
    seg = [[i, (i + 1) % n] for i in range(n)]
    res = triangle.triangulate({"vertices": xy[idx].astype(np.float64), "segments": np.array(seg)}, "pQ")
    tri = res.get("triangles", np.zeros((0, 3), int))
    if len(res["vertices"]) != len(idx):  # no Steiner points may appear; keep only original ones
        tri = tri[(tri < len(idx)).all(axis=1)]
    return np.array(idx, np.int32)[tri]


def _ring_points(landmarks: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points on rings around the face oval, kept inside the frame with a margin."""
    oval = np.array(FACE_OVAL)
    p = landmarks[oval]
    centre = p[:, :2].mean(axis=0)
    pts, parents, factors = [], [], []
    margin = BORDER_STEP * 0.35
    for f in RING_FACTORS:
        for i, o in zip(oval, p):
            xy = centre + (o[:2] - centre) * f
            if margin <= xy[0] <= width - 1 - margin and margin <= xy[1] <= height - 1 - margin:
                pts.append((xy[0], xy[1], o[2]))
                parents.append(i)
                factors.append(f)
    return np.array(pts, np.float64).reshape(-1, 3), np.array(parents, np.int32), np.array(factors)


def _border_points(width: int, height: int) -> np.ndarray:
    xs = np.linspace(0, width - 1, max(2, round((width - 1) / BORDER_STEP) + 1))
    ys = np.linspace(0, height - 1, max(2, round((height - 1) / BORDER_STEP) + 1))
    pts = [(x, 0) for x in xs] + [(x, height - 1) for x in xs]
    pts += [(0, y) for y in ys[1:-1]] + [(width - 1, y) for y in ys[1:-1]]
    return np.array(pts, np.float64)


def build_mesh(landmarks: np.ndarray, width: int, height: int, person: np.ndarray | None = None) -> WarpMesh:
    """Warp mesh for a face whose 478 landmarks are given in the frame's pixels.

    `person` is an optional (H, W) person-probability mask: outer points on the
    background get no head motion, so the background stays still.
    """
    import triangle

    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (NUM_LANDMARKS, 3):
        raise ValueError(f"expected (478, 3) landmarks, got {lm.shape}")
    ring, parents, factors = _ring_points(lm, width, height)
    border = _border_points(width, height)

    # Outer region: constrained Delaunay of oval + rings + border, the face oval as a hole.
    oval = list(FACE_OVAL)
    outer_xy = np.concatenate([lm[oval, :2], ring[:, :2], border])
    n_oval = len(oval)
    seg = np.array([[i, (i + 1) % n_oval] for i in range(n_oval)])
    hole = lm[[1, 168, 13]].mean(axis=0)[None, :2]  # nose / mouth: surely inside the oval
    res = triangle.triangulate({"vertices": outer_xy, "segments": seg, "holes": hole}, "pcQ")
    if len(res["vertices"]) != len(outer_xy):
        raise ValueError("outer triangulation added vertices; the face oval crosses itself")
    outer_to_global = np.concatenate([np.array(oval), NUM_LANDMARKS + np.arange(len(ring) + len(border))])
    outer_tris = outer_to_global[res["triangles"]]

    face_tris = face_triangles(lm)
    mouth_tris = _triangulate_polygon(lm[:, :2], list(LIPS_INNER), [])
    eye_tris = np.concatenate([
        _triangulate_polygon(lm[:, :2], list(EYE_R), list(IRIS_R)),
        _triangulate_polygon(lm[:, :2], list(EYE_L), list(IRIS_L)),
    ])

    vertices = np.concatenate([lm, ring, np.c_[border, np.zeros(len(border))]]).astype(np.float32)
    tris = np.concatenate([outer_tris, face_tris, mouth_tris, eye_tris]).astype(np.int32)
    groups = np.concatenate([
        np.full(len(outer_tris), GROUP_OUTER), np.full(len(face_tris), GROUP_FACE),
        np.full(len(mouth_tris), GROUP_MOUTH), np.full(len(eye_tris), GROUP_EYE),
    ]).astype(np.uint8)

    v = len(vertices)
    head_weight = np.zeros(v, np.float32)
    head_weight[:NUM_LANDMARKS] = 1.0
    chin_y, top_y = lm[152, 1], lm[10, 1]
    face_h = max(chin_y - top_y, 1.0)
    ring_ids = NUM_LANDMARKS + np.arange(len(ring))
    for k, gid in enumerate(ring_ids):
        x, y = ring[k, :2]
        w = 1.0
        if y > chin_y:  # neck and shoulders follow the head less the lower they are
            w = float(np.clip(1.0 - (y - chin_y) / (0.5 * face_h), 0.0, 1.0))
        if person is not None:  # background (low person probability) never moves
            w *= float(np.clip((person[int(round(y)), int(round(x))] - 0.3) / 0.4, 0.0, 1.0))
        head_weight[gid] = w
    parent = np.full(v, -1, np.int32)
    follow = np.zeros(v, np.float32)
    parent[ring_ids] = parents
    # Only the first ring shares the oval's expression motion (jaw drop drags the skin below).
    follow[ring_ids] = np.where(factors == RING_FACTORS[0], 0.5, 0.0)
    return WarpMesh(vertices=vertices, triangles=tris, groups=groups, head_weight=head_weight,
                    parent=parent, follow=follow)
