"""Training data: buckets, the world source, a folder-of-videos source and the step stream."""

from cinepatch.data.buckets import Bucket, assign_bucket, parse_bucket, parse_buckets
from cinepatch.data.folder import Clip, FolderSource, fit_frames, read_captions
from cinepatch.data.stream import BatchStream, Source, StepBatch
from cinepatch.data.world import WorldSource

__all__ = [
    "Bucket",
    "parse_bucket",
    "parse_buckets",
    "assign_bucket",
    "Clip",
    "FolderSource",
    "fit_frames",
    "read_captions",
    "WorldSource",
    "BatchStream",
    "Source",
    "StepBatch",
]
