"""A tiny glTF 2.0 binary (GLB) for the 3D-client tests: one quad (two triangles) with one morph target per
name, named in `mesh.extras.targetNames` as three.js's GLTFLoader reads them into `morphTargetDictionary`."""
from __future__ import annotations

import json
import struct

import numpy as np

GLB_MAGIC, GLB_VERSION = 0x46546C67, 2  # "glTF"
CHUNK_JSON, CHUNK_BIN = 0x4E4F534A, 0x004E4942  # "JSON", "BIN\0"
FLOAT, UNSIGNED_SHORT = 5126, 5123
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963


def _pad(data: bytes, fill: bytes) -> bytes:
    return data + fill * (-len(data) % 4)


def morph_quad_glb(target_names: list[str]) -> bytes:
    """The GLB bytes: a unit quad; morph target i moves vertex i % 4 along z by 0.1 * (1 + i // 4)."""
    positions = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32)
    indices = np.array([0, 1, 2, 0, 2, 3, 0, 0], np.uint16)  # 6 indices, padded to a 4-byte multiple
    blobs: list[bytes] = [indices.tobytes(), positions.tobytes()]
    accessors = [
        {"bufferView": 0, "componentType": UNSIGNED_SHORT, "count": 6, "type": "SCALAR"},
        {"bufferView": 1, "componentType": FLOAT, "count": 4, "type": "VEC3",
         "min": positions.min(0).tolist(), "max": positions.max(0).tolist()},
    ]
    targets = []
    for i, _ in enumerate(target_names):
        delta = np.zeros((4, 3), np.float32)
        delta[i % 4, 2] = 0.1 * (1 + i // 4)
        blobs.append(delta.tobytes())
        accessors.append({"bufferView": len(blobs) - 1, "componentType": FLOAT, "count": 4, "type": "VEC3",
                          "min": delta.min(0).tolist(), "max": delta.max(0).tolist()})
        targets.append({"POSITION": len(accessors) - 1})
    views, offset = [], 0
    for j, blob in enumerate(blobs):
        views.append({"buffer": 0, "byteOffset": offset, "byteLength": len(blob),
                      "target": ELEMENT_ARRAY_BUFFER if j == 0 else ARRAY_BUFFER})
        offset += len(blob)
    views[0]["byteLength"] = 12  # the 6 indices; the 2 after them are padding
    binary = b"".join(blobs)
    gltf = {
        "asset": {"version": "2.0", "generator": "emolive tests"},
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0, "name": "face"}],
        "meshes": [{"name": "face", "primitives": [{"attributes": {"POSITION": 1}, "indices": 0, "targets": targets}],
                    "weights": [0.0] * len(targets), "extras": {"targetNames": list(target_names)}}],
        "accessors": accessors, "bufferViews": views, "buffers": [{"byteLength": len(binary)}],
    }
    js = _pad(json.dumps(gltf, separators=(",", ":")).encode(), b" ")
    binary = _pad(binary, b"\0")
    total = 12 + 8 + len(js) + 8 + len(binary)
    return b"".join((struct.pack("<III", GLB_MAGIC, GLB_VERSION, total),
                     struct.pack("<II", len(js), CHUNK_JSON), js,
                     struct.pack("<II", len(binary), CHUNK_BIN), binary))
