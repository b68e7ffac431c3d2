"""Open-weight video models in diffusers format (Wan 2.1/2.2, LTX-Video, CogVideoX) as backends.

``load_diffusers_backend(folder, settings=...)`` reads ``model_index.json``, picks the family
from its ``_class_name``, loads the folder offline and returns a backend implementing
:class:`~cinepatch.backends.base.Backend`; one module per family maps the backend-neutral
:class:`~cinepatch.backends.base.GenerationSpec` onto that family's pipelines.
"""

from cinepatch.backends.diffusers.common import WHO_CAN, DiffusersBackend
from cinepatch.backends.diffusers.loading import FAMILIES, load_diffusers_backend
from cinepatch.backends.diffusers.settings import DiffusersSettings

__all__ = ["load_diffusers_backend", "DiffusersSettings", "DiffusersBackend", "FAMILIES", "WHO_CAN"]
