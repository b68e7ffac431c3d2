"""cinepatch: open text-to-video with spacetime-patch diffusion, Sora-style edits and provenance.

Layers, each importing only those before it::

    errors, config → io, world → models → flow → pipeline → editing → safety, provenance
    → app (the one entry every request takes) → cli, service
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
