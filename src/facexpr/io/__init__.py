"""facexpr.io: reading photos, videos, audio and webcams; writing images and videos.

Tables (:mod:`facexpr.io.tables`) and the dataset shard format (:mod:`facexpr.io.shards`) live in
their own modules and are imported from there.
"""

from facexpr.io.images import IMAGE_EXTENSIONS, is_image_path, read_image, write_image
from facexpr.io.sources import MediaSource, expand_inputs, iter_frames, natural_key
from facexpr.io.video import (
    VIDEO_EXTENSIONS,
    VideoInfo,
    VideoReader,
    VideoWriter,
    check_frame_options,
    is_video_path,
    probe_video,
    read_audio,
)
from facexpr.io.webcam import WebcamReader

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "MediaSource",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "WebcamReader",
    "check_frame_options",
    "expand_inputs",
    "is_image_path",
    "is_video_path",
    "iter_frames",
    "natural_key",
    "probe_video",
    "read_audio",
    "read_image",
    "write_image",
]
