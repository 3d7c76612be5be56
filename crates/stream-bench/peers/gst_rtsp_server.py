#!/usr/bin/python3
"""gst-rtsp-server serving one MP4 file on 127.0.0.1, as the benchmark's reference peer.

The same H.264+AAC file Serval streams, demuxed and payloaded without transcoding, one pipeline
per session (shared=false), which is how gst-rtsp-server serves files on demand. Prints
"gst-rtsp-server ready port=<port> mount=<mount>" on stdout once listening.

Needs Debian packages gir1.2-gst-rtsp-server-1.0, python3-gi, gstreamer1.0-plugins-good and
gstreamer1.0-plugins-bad (h264parse). Run with Debian's /usr/bin/python3, which has `gi`.
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--file", required=True, help="MP4 with one H.264 and one AAC track")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mount", default="/bench.mp4")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    # The default listen backlog of 5 would make a ramp of 100 connections/s wait on SYN retries:
    # that measures the backlog, not the server.
    server.set_backlog(1024)

    location = args.file.replace("\\", "\\\\").replace('"', '\\"')
    launch = (
        f'( filesrc location="{location}" ! qtdemux name=d '
        "d.video_0 ! queue ! h264parse ! rtph264pay name=pay0 pt=96 "
        "d.audio_0 ! queue ! aacparse ! rtpmp4gpay name=pay1 pt=97 )"
    )
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(False)
    server.get_mount_points().add_factory(args.mount, factory)

    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        return 1

    # Expired sessions are only freed when the pool is asked to clean up.
    pool = server.get_session_pool()
    GLib.timeout_add_seconds(2, lambda: pool.cleanup() >= 0)

    print(f"gst-rtsp-server ready port={args.port} mount={args.mount}", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
