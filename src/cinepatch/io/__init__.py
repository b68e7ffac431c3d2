"""Media I/O: atomic writes, video and image files, frame/tensor conversion."""

from cinepatch.io.atomic import atomic_dir, atomic_write, write_bytes
from cinepatch.io.video import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    Video,
    read_image,
    read_media,
    read_video,
    to_frames,
    to_tensor,
    write_image,
    write_strip,
    write_video,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "Video",
    "atomic_dir",
    "atomic_write",
    "read_image",
    "read_media",
    "read_video",
    "to_frames",
    "to_tensor",
    "write_bytes",
    "write_image",
    "write_strip",
    "write_video",
]
