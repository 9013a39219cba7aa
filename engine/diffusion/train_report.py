"""The trained bundle's report: speed of its renderer on the CPU, and report.json / report.md."""
from __future__ import annotations

import json
import time
from pathlib import Path


def bench_renderer(out: Path, steps_list=(1, 2, 4), frames: int = 10, threads: int = 1) -> dict:
    """ms per full frame (meshwarp + denoiser steps + paste) of the bundle's renderer, ONNX Runtime on the CPU."""
    from ..renderers.diffusion import _create
    from ..types import FaceState

    res = {}
    for s in steps_list:
        r = _create(str(out), device="cpu", steps=s, threads=threads)
        states = [FaceState.from_dict({"jawOpen": 0.3 * (i % 3), "mouthSmileLeft": 0.2}) for i in range(frames + 2)]
        r.render(states[0])
        t0 = time.perf_counter()
        for st in states[2:]:
            r.render(st)
        res[str(s)] = round(1000 * (time.perf_counter() - t0) / frames, 1)
        r.close()
    return {"CPUExecutionProvider": res}


def write_report(out: Path, report: dict) -> None:
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    h = report["heldout"]
    lines = [f"# Diffusion renderer report: {out.name}", "",
             f"Held-out: {report['data']['heldout_frames']} frames of {len(report['data']['heldout'])} clip(s); "
             f"crop {report['crop']['res']}x{report['crop']['res']} px. Higher is better.", "",
             "| renderer | steps | PSNR dB | SSIM | mouth PSNR dB |", "|---|---|---|---|---|"]
    m = h["meshwarp"]
    lines.append(f"| meshwarp | - | {m['psnr']:.2f} | {m['ssim']:.4f} | {m['mouth_psnr']:.2f} |")
    for name, block in (("diffusion (distilled, ONNX Runtime)", h.get("diffusion", {})),
                        ("undistilled base (PyTorch)", h.get("base", {}))):
        for s, v in block.items():
            lines.append(f"| {name} | {s} | {v['psnr']:.2f} | {v['ssim']:.4f} | {v['mouth_psnr']:.2f} |")
    lines += ["", "ms per frame (full render, this machine): " +
              ", ".join(f"{p} {s} steps {ms} ms" for p, d in report["speed"].items() for s, ms in d.items()), ""]
    (out / "report.md").write_text("\n".join(lines))
