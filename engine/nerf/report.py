"""The trained bundle's report: held-out quality beside meshwarp, speed on this CPU; report.json / report.md."""
from __future__ import annotations

import json
import time
from pathlib import Path

from .data import NerfClip


def held_out_report(out: Path, report: dict, held: list[NerfClip], every: int = 1) -> dict:
    from ..renderers import create
    from .bundle import load_nerf_bundle
    from .evaluate import evaluate, face_state
    from .runtime import KernelCrops, to_u8

    b = load_nerf_bundle(out)
    crops = KernelCrops(b.config, b.arrays, b.occupancy, b.background)
    mw = create("meshwarp", b.avatar)
    fns = {"nerf": lambda s, h: to_u8(crops(s, h)[0]),
           "meshwarp": lambda s, h: b.box.cut(mw.render(face_state(s, h)))}
    report["heldout"] = evaluate(fns, held, b.mouth, every=every)
    report["speed"] = bench(out)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(out, report)
    return report


def bench(out: Path, frames: int = 10) -> dict:
    """ms per frame on this CPU: the head crop alone (kernel) and the full frame of the `nerf` renderer."""
    from ..renderers import create
    from ..types import FaceState

    r = create("nerf", None, bundle=out, device="cpu")
    states = [FaceState.from_dict({"jawOpen": 0.3 * (i % 3), "mouthSmileLeft": 0.2}) for i in range(frames + 1)]
    r.render(states[0])  # compiles / warms the kernel
    t0 = time.perf_counter()
    for st in states[1:]:
        r.crop(st)
    crop_ms = 1000 * (time.perf_counter() - t0) / frames
    t0 = time.perf_counter()
    for st in states[1:]:
        r.render(st)
    frame_ms = 1000 * (time.perf_counter() - t0) / frames
    r.close()
    return {"backend": r.backend, "crop_ms": round(crop_ms, 1), "frame_ms": round(frame_ms, 1)}


def write_markdown(out: Path, report: dict) -> None:
    h = report["heldout"]
    res = report["crop"]["res"]
    lines = [f"# NeRF renderer report: {out.name}", "",
             f"Held-out: {h['frames']} frames of {len(report['data']['heldout'])} clip(s); head crop {res}x{res} px. "
             "PSNR, SSIM: higher is better; LMD (lip landmarks re-detected, px at 256): lower is better.", "",
             "| renderer | PSNR dB | SSIM | mouth PSNR dB | LMD | LMD frames |", "|---|---|---|---|---|---|"]
    for name in ("nerf", "meshwarp"):
        v = h[name]
        lmd = "-" if v["lmd"] is None else f"{v['lmd']:.2f}"
        lines.append(f"| {name} | {v['psnr']:.2f} | {v['ssim']:.4f} | {v['mouth_psnr']:.2f} | {lmd} | "
                     f"{v['lmd_frames']} |")
    s = report["speed"]
    lines += ["", f"ms per frame on this machine ({s['backend']}): head crop {s['crop_ms']} ms, full frame "
              f"{s['frame_ms']} ms.", ""]
    (out / "report.md").write_text("\n".join(lines))
