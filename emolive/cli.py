"""The `emolive` command: avatars, offline renders, the demo, the streaming server and the profiler.

It sits above every package (engine, streaming, profiler) and is the only place that ties them together.

Every user-facing failure ends as one line on stderr and exit status 2 (bad
input) or 1 (internal error); `--debug` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

log = logging.getLogger("emolive")

EXIT_BAD_INPUT, EXIT_INTERNAL = 2, 1


def _user_errors() -> tuple[type[BaseException], ...]:
    from engine.avatar import AvatarError
    from engine.io.timeline import TimelineError
    from engine.io.video_writer import VideoWriterError
    from engine.renderers import RendererError
    from engine.types import FaceStateError

    errs: list[type[BaseException]] = [AvatarError, TimelineError, VideoWriterError, RendererError, FaceStateError]
    try:
        from engine.audio import AudioInputError
        errs.append(AudioInputError)
    except ImportError:
        pass
    return tuple(errs)


def _cmd_avatar_create(args) -> int:
    from engine.avatar import create_avatar, save_avatar

    av = create_avatar(args.photo, size=args.size)
    out = save_avatar(av, args.out)
    pitch, yaw, roll = av.pose
    print(f"avatar written to {out} ({av.size[1]}x{av.size[0]}, {len(av.mesh.triangles)} triangles, "
          f"pose pitch {pitch:.1f} yaw {yaw:.1f} roll {roll:.1f} deg)")
    return 0


def _cmd_render(args) -> int:
    from engine.offline import render_to_mp4

    if args.prompt is not None and args.audio:
        from engine.emotion.prompt import parse_prompt

        # Say how the sentence was read: an unrelated one renders neutral, which should not pass silently.
        t = parse_prompt(args.prompt)
        mix = " + ".join(f"{e} {w:.2f}" for e, w in sorted(t.mixture.items(), key=lambda kv: -kv[1]))
        print(f"prompt read as {mix} at intensity {t.intensity:.2f} (confidence {t.confidence:.2f}): {t.reason}")
    n = render_to_mp4(out=args.out, avatar=args.avatar, expressions=args.expressions, audio=args.audio,
                      fps=args.fps, emotion=args.emotion, prompt=args.prompt, size=args.size,
                      neural_mouth=args.neural_mouth, renderer=args.renderer, device=args.device)
    print(f"wrote {args.out} ({n} frames)")
    return 0


def _cmd_demo(args) -> int:
    from engine.offline import render_demo

    n = render_demo(args.out)
    print(f"wrote {args.out} ({n} frames of the default avatar)")
    return 0


def _positive_int(lo: int, hi: int):
    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {s!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"must be between {lo} and {hi}, got {v}")
        return v
    return parse


def _fps(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {s!r}") from None
    if not 1 <= v <= 60:
        raise argparse.ArgumentTypeError(f"fps must be between 1 and 60, got {s}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="emolive", description="Real-time emotional talking-head avatars.")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = p.add_subparsers(dest="command", required=True)

    av = sub.add_parser("avatar", help="manage avatars").add_subparsers(dest="avatar_command", required=True)
    c = av.add_parser("create", help="turn one portrait photo into an avatar bundle")
    c.add_argument("photo", help="portrait photo (jpg, png, webp, bmp, tiff, ...)")
    c.add_argument("--out", required=True, help="output bundle directory")
    c.add_argument("--size", type=_positive_int(128, 2048), default=512, help="frame size in px (default 512)")
    c.set_defaults(func=_cmd_avatar_create)

    r = sub.add_parser("render", help="render face states or speech to an H.264 mp4")
    src = r.add_mutually_exclusive_group(required=True)
    src.add_argument("--expressions", help="expressions JSON ({\"fps\": 25, \"frames\": [...]})")
    src.add_argument("--audio", help="speech file (wav, mp3, m4a, ...) to lip-sync, muxed into the output")
    r.add_argument("--avatar", help="avatar bundle directory or portrait photo (default: built-in avatar)")
    r.add_argument("--out", required=True, help="output .mp4")
    r.add_argument("--fps", type=_fps, default=None, help="frame rate for --audio (default 25)")
    r.add_argument("--size", type=_positive_int(128, 2048), default=512, help="frame size when --avatar is a photo")
    r.add_argument("--neural-mouth", action=argparse.BooleanOptionalAction, default=False,
                   help="redraw the lower face with the neural mouth (meshwarp; default: off)")
    r.add_argument("--renderer", choices=("meshwarp", "diffusion", "nerf"), default="meshwarp",
                   help="meshwarp (default), or a trained renderer whose bundle is --avatar DIR")
    r.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="device of a trained renderer (default: a CUDA GPU if there is one, else the CPU)")
    emo = r.add_mutually_exclusive_group()
    emo.add_argument("--emotion", help="NAME[:INTENSITY], a mixture 'happy:0.7,surprised:0.3', or a timeline JSON file")
    emo.add_argument("--prompt", help='emotion as text, e.g. "very happy with a little surprised"')
    r.set_defaults(func=_cmd_render)

    t = av.add_parser("train", add_help=False,
                      help="train a neural renderer on talking videos of one person (--backend diffusion|nerf)")
    t.set_defaults(func=None)

    d = sub.add_parser("demo", help="render the default avatar speaking a synthesised sentence to an mp4")
    d.add_argument("--out", default="out/demo.mp4")
    d.set_defaults(func=_cmd_demo)

    s = sub.add_parser("serve", help="run the real-time WebRTC server", add_help=False)
    s.set_defaults(func=None, passthrough="serve")
    k = sub.add_parser("ctl", help="send control commands to a running server", add_help=False)
    k.set_defaults(func=None, passthrough="ctl")
    b = sub.add_parser("bench", help="measure stage costs, latency and capacity of the streaming engine",
                       add_help=False)
    b.set_defaults(func=None, passthrough="bench")
    v = sub.add_parser("camera", help="play a WHIP session's avatar into a virtual webcam (Zoom, Meet, Teams)",
                       add_help=False)
    v.set_defaults(func=None, passthrough="camera")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from engine.blas import pin_blas_threads

    pin_blas_threads()  # before any command loads numpy (engine/blas.py)
    os.environ.setdefault("GLOG_minloglevel", "2")  # mediapipe's C++ logs drown the user's messages
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # serve/ctl/bench and avatar training own their arguments.
    if argv and argv[0] in PASSTHROUGH:
        return _passthrough(argv[0], argv[1:])
    if argv[:2] == ["avatar", "train"]:
        return _avatar_train(argv[2:])
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format="emolive: %(levelname)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except _user_errors() as e:
        if args.debug:
            raise
        print(f"emolive: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as e:  # noqa: BLE001 - last resort: one line, not a traceback
        if args.debug:
            raise
        print(f"emolive: internal error: {type(e).__name__}: {e} (run with --debug for details)", file=sys.stderr)
        return EXIT_INTERNAL


def _serve(argv: list[str]) -> int:
    from streaming.server import main as serve_main

    return serve_main(argv)


def _ctl(argv: list[str]) -> int:
    from streaming.ctl import main as ctl_main

    return ctl_main(argv)


def _bench(argv: list[str]) -> int:
    from profiler.bench import main as bench_main

    return bench_main(argv)


def _camera(argv: list[str]) -> int:
    from streaming.camera import main as camera_main

    return camera_main(argv)


# Subcommands that parse their own arguments. Imported when called: `emolive render` should not pay for aiortc.
PASSTHROUGH = {"serve": _serve, "ctl": _ctl, "bench": _bench, "camera": _camera}


def _passthrough(command: str, argv: list[str]) -> int:
    try:
        return int(PASSTHROUGH[command](argv) or 0)
    except ImportError as e:
        print(f"emolive: error: `emolive {command}` is not available: {e}", file=sys.stderr)
        return EXIT_INTERNAL


def _avatar_train(argv: list[str]) -> int:
    """`emolive avatar train VIDEO... --backend diffusion|nerf --out DIR`: the backend's trainer parses the rest."""
    pre = argparse.ArgumentParser(prog="emolive avatar train", add_help=False)
    pre.add_argument("--backend", default="diffusion")
    known, rest = pre.parse_known_args(argv)
    if known.backend not in ("diffusion", "nerf"):
        print(f"emolive: error: unknown --backend {known.backend!r}: 'diffusion' and 'nerf' are the trainable ones "
              "(meshwarp needs no training: use `emolive avatar create PHOTO`)", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        if known.backend == "nerf":
            from engine.nerf.train import main as train_main
        else:
            from engine.diffusion.train import main as train_main
    except ImportError as e:  # torch is needed for training
        print(f"emolive: error: `emolive avatar train` is not available: {e}", file=sys.stderr)
        return EXIT_INTERNAL
    return int(train_main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
