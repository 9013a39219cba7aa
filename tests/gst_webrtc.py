"""A WHIP publisher and a WHEP player built on GStreamer's webrtcbin, for interop tests.

Run with the system Python (Debian's python3-gi and the GStreamer typelibs; scripts/setup.sh installs
them), not the project's virtual environment:

    /usr/bin/python3 tests/gst_webrtc.py publish URL WAV [--token T]
    /usr/bin/python3 tests/gst_webrtc.py play URL --frames N --out FILE [--size S] [--token T]

`publish` sends the wav's voice as Opus, paced by the pipeline clock, to a WHIP endpoint; `play` receives a
WHEP resource's video and audio, decodes both, and writes N video frames, scaled to S x S RGB, one after
another to FILE (the decoded voice's peak is reported). Each prints JSON lines on stdout:
`{"event": "created", "status", "location", "etag"}` after the offer is answered, `{"event": "done", ...}`
with counts, and `{"event": "deleted", "status"}` after DELETE on the resource; failures print
`{"event": "error", "message"}` and exit 1.

Debian's own GStreamer WHIP client (simple-whip-client, `whip-client`) cannot be used: it links libsoup 2
while GStreamer's nice and webrtc plugins on Debian 12 link libsoup 3, and it aborts at start. HTTP here is
urllib's; offers are sent whole (every ICE candidate in the SDP, as WHIP allows), the answer likewise.
"""
from __future__ import annotations

import argparse
import array
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

OPUS = "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000"
VP8 = "application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000"


def say(**event) -> None:
    print(json.dumps(event), flush=True)


def http(method: str, url: str, body: bytes | None = None, token: str | None = None,
         content_type: str | None = None):
    """(status, headers, body) of one request; HTTP errors are answers too."""
    req = urllib.request.Request(url, data=body, method=method)
    if content_type:
        req.add_header("Content-Type", content_type)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class Client:
    """One webrtcbin peer that offers once the pipeline asks to negotiate, POSTs the whole offer, and
    applies the answer."""

    def __init__(self, pipeline: Gst.Pipeline, url: str, token: str | None):
        self.pipe, self.url, self.token = pipeline, url, token
        self.webrtc = pipeline.get_by_name("webrtc")
        self.loop = GLib.MainLoop()
        self.location: str | None = None
        self.failed = False
        self.webrtc.connect("on-negotiation-needed", self._negotiate)
        self.webrtc.connect("notify::ice-gathering-state", self._gathered)
        bus = pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self._message)

    def fail(self, message: str) -> None:
        say(event="error", message=message)
        self.failed = True
        self.loop.quit()

    def _message(self, _bus, msg) -> None:
        if msg.type == Gst.MessageType.ERROR:
            err, _ = msg.parse_error()
            self.fail(f"pipeline: {err.message}")
        elif msg.type == Gst.MessageType.EOS:
            self.loop.quit()

    def _negotiate(self, _element) -> None:
        promise = Gst.Promise.new_with_change_func(self._offer_created, None)
        self.webrtc.emit("create-offer", None, promise)

    def _offer_created(self, promise, _data) -> None:
        promise.wait()  # the reply is read only once the promise is settled (else a crash, now and then)
        reply = promise.get_reply()
        offer = reply.get_value("offer") if reply is not None else None
        if offer is None or offer.sdp is None:
            GLib.idle_add(self.fail, "webrtcbin made no offer")
            return
        self._offer = offer  # held: webrtcbin reads it after this callback returns
        self.webrtc.emit("set-local-description", offer, Gst.Promise.new())

    def _gathered(self, *_args) -> None:
        if self.webrtc.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            GLib.idle_add(self._post)

    def _post(self) -> bool:
        sdp = self.webrtc.get_property("local-description").sdp.as_text()
        status, headers, body = http("POST", self.url, sdp.encode(), self.token, "application/sdp")
        if status != 201:
            self.fail(f"POST answered {status}: {body.decode(errors='replace')[:200]}")
            return False
        self.location = headers.get("Location")
        say(event="created", status=status, location=self.location, etag=headers.get("ETag"),
            content_type=headers.get("Content-Type"))
        _, msg = GstSdp.SDPMessage.new_from_text(body.decode())
        answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, msg)
        self.webrtc.emit("set-remote-description", answer, Gst.Promise.new())
        return False

    def run(self) -> None:
        self.pipe.set_state(Gst.State.PLAYING)
        try:
            self.loop.run()
        finally:
            self.pipe.set_state(Gst.State.NULL)
            if self.location:
                status, _, _ = http("DELETE", urllib.parse.urljoin(self.url, self.location), token=self.token)
                say(event="deleted", status=status)


def publish(args) -> int:
    pipe = Gst.parse_launch(
        "webrtcbin name=webrtc bundle-policy=max-bundle "
        "filesrc name=file ! wavparse ! audioconvert ! audioresample "
        "! audio/x-raw,rate=48000,channels=1 ! identity name=clock sync=true ! opusenc frame-size=20 "
        f"! rtpopuspay pt=111 ! {OPUS} ! webrtc.")
    pipe.get_by_name("file").set_property("location", args.wav)
    client = Client(pipe, args.url, args.token)

    def at_end(_pad, info):
        # webrtcbin posts no EOS of its own: the file's end, paced by the clock, ends the call (after the
        # last packets have left).
        if info.get_event().type == Gst.EventType.EOS:
            GLib.timeout_add(300, client.loop.quit)
        return Gst.PadProbeReturn.OK

    pipe.get_by_name("clock").get_static_pad("src").add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, at_end)
    client.webrtc.emit("get-transceiver", 0).set_property(
        "direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
    client.run()
    if not client.failed:
        say(event="done")
    return 1 if client.failed else 0


def play(args) -> int:
    pipe = Gst.Pipeline.new("play")
    webrtc = Gst.ElementFactory.make("webrtcbin", "webrtc")
    webrtc.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
    pipe.add(webrtc)
    client = Client(pipe, args.url, args.token)
    for caps in (VP8, OPUS):
        client.webrtc.emit("add-transceiver", GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY,
                           Gst.Caps.from_string(caps))
    counts = {"video": 0, "audio": 0, "audio_peak": 0.0}
    out = open(args.out, "wb")

    def on_video(sink) -> Gst.FlowReturn:
        sample = sink.emit("pull-sample")
        if counts["video"] < args.frames:
            buf = sample.get_buffer()
            out.write(buf.extract_dup(0, buf.get_size()))
        counts["video"] += 1
        if counts["video"] == args.frames:
            GLib.idle_add(client.loop.quit)
        return Gst.FlowReturn.OK

    def on_audio(sink) -> Gst.FlowReturn:
        buf = sink.emit("pull-sample").get_buffer()
        pcm = array.array("h", buf.extract_dup(0, buf.get_size() & ~1))  # opusdec: S16LE
        counts["audio"] += 1
        counts["audio_peak"] = max(counts["audio_peak"], max(map(abs, pcm), default=0) / 32768)
        return Gst.FlowReturn.OK

    def on_pad(_element, pad) -> None:
        if pad.direction != Gst.PadDirection.SRC:
            return
        media = pad.get_current_caps().get_structure(0).get_string("media")
        if media == "video":
            desc = (f"rtpvp8depay ! vp8dec ! videoconvert ! videoscale "
                    f"! video/x-raw,format=RGB,width={args.size},height={args.size} "
                    "! appsink name=v emit-signals=true sync=false")
        else:
            desc = "rtpopusdepay ! opusdec ! appsink name=a emit-signals=true sync=false"
        branch = Gst.parse_bin_from_description(desc, True)
        pipe.add(branch)
        branch.sync_state_with_parent()
        pad.link(branch.get_static_pad("sink"))
        sink = branch.get_by_name("v" if media == "video" else "a")
        sink.connect("new-sample", on_video if media == "video" else on_audio)

    client.webrtc.connect("pad-added", on_pad)
    GLib.timeout_add_seconds(args.timeout, lambda: client.fail(f"no {args.frames} frames in {args.timeout} s"))
    client.run()
    out.close()
    if not client.failed:
        say(event="done", video_frames=counts["video"], audio_buffers=counts["audio"],
            audio_peak=round(counts["audio_peak"], 4), size=args.size)
    return 1 if client.failed else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("publish")
    p.add_argument("url")
    p.add_argument("wav")
    p.add_argument("--token")
    q = sub.add_parser("play")
    q.add_argument("url")
    q.add_argument("--frames", type=int, default=50)
    q.add_argument("--out", required=True)
    q.add_argument("--size", type=int, default=256)
    q.add_argument("--timeout", type=int, default=60)
    q.add_argument("--token")
    args = ap.parse_args(argv)
    Gst.init(None)
    return publish(args) if args.cmd == "publish" else play(args)


if __name__ == "__main__":
    sys.exit(main())
