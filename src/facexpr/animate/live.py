"""Live Link-style JSON over UDP: ``facexpr animate webcam:0 --avatar NAME --live``.

One datagram per avatar per frame, UTF-8 JSON (at most a few kB, well inside one datagram)::

    {"format": "facexpr-live", "version": 1, "avatar": "ict", "frame": 12, "time": 0.4,
     "face": true,
     "blendshapes": {"EyeBlinkLeft": 0.02, ..., "TongueOut": 0.0},   # Live Link Face's 52 names
     "head": {"HeadYaw": 0.05, "HeadPitch": -0.01, "HeadRoll": 0.0}}   # radians

``blendshapes`` holds the 52 ARKit shapes under Live Link Face's capitalised names (its CSV's
columns); ``head`` the head rotation in radians, as Live Link Face's ``HeadYaw``/``HeadPitch``/
``HeadRoll``. ``face`` is false while the face is lost (the last weights are held). Nothing is
acknowledged or retransmitted: a receiver keeps the newest packet of each avatar.
"""

from __future__ import annotations

import json
import math
import socket
from collections.abc import Iterable

from facexpr.animate.animator import LiveFrame
from facexpr.core.errors import ConfigError

__all__ = ["PACKET_FORMAT", "live_packet", "parse_address", "send_live"]

PACKET_FORMAT = "facexpr-live"


def parse_address(text: str) -> tuple[str, int]:
    """Returns (host, port) of ``HOST:PORT`` (or ``PORT`` for 127.0.0.1).

    Raises:
        ConfigError: not HOST:PORT with a port in 1..65535.
    """
    host, _, port = text.rpartition(":")
    host = host or "127.0.0.1"
    try:
        p = int(port)
    except ValueError:
        p = -1
    if not 1 <= p <= 65535:
        raise ConfigError(f"--udp {text!r}: give HOST:PORT with a port in 1..65535")
    return host, p


def live_packet(frame: LiveFrame, avatar: str) -> bytes:
    """Returns the UTF-8 JSON datagram of one avatar in one frame (format: module docstring)."""
    from facexpr.avatars.export import LIVE_LINK_SHAPES
    from facexpr.core.arkit import ARKIT_NAMES

    index = {n.lower(): i for i, n in enumerate(ARKIT_NAMES)}
    w = frame.arkit[avatar]
    pitch, yaw, roll = (math.radians(float(v)) for v in frame.pose)
    data = {
        "format": PACKET_FORMAT,
        "version": 1,
        "avatar": avatar,
        "frame": int(frame.index),
        "time": round(float(frame.timestamp), 6),
        "face": bool(frame.present),
        "blendshapes": {n: round(float(w[index[n.lower()]]), 6) for n in LIVE_LINK_SHAPES},
        "head": {
            "HeadYaw": round(yaw, 6),
            "HeadPitch": round(pitch, 6),
            "HeadRoll": round(roll, 6),
        },
    }
    return json.dumps(data, separators=(",", ":")).encode("utf-8")


def send_live(frames: Iterable[LiveFrame], host: str, port: int) -> int:
    """Sends every frame's packets (one per avatar) to ``host:port`` over UDP; returns how many
    frames were sent."""
    n = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for frame in frames:
            for avatar in frame.arkit:
                sock.sendto(live_packet(frame, avatar), (host, port))
            n += 1
    return n
