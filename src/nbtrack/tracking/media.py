"""Figures and images as artifact entries, saved as MLflow's ``log_figure`` and
``log_image`` save them.

Every entry is rendered before anything is stored, so a figure that cannot be saved or an
image that cannot be converted changes nothing. The file format follows the artifact
file's extension, as the libraries' own ``savefig`` / ``write_html`` / ``save`` decide it.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from time import time
from typing import TYPE_CHECKING, Any

from nbtrack.errors import InvalidParameterError
from nbtrack.store import Store
from nbtrack.store.artifacts import relative_path
from nbtrack.tracking.artifacts import add
from nbtrack.validation import metric_step, metric_timestamp

if TYPE_CHECKING:
    from PIL.Image import Image

    from nbtrack.tracking.artifacts import Entries

LOGGED_IMAGES_TAG = "mlflow.loggedImages"  # MLflow's UI shows a run's image charts by it
COMPRESSED_IMAGE_SIZE = 256  # the longer side of the preview MLflow stores beside each image
PLOTLY_IMAGE_EXTENSIONS = (".png", ".jpeg", ".webp", ".svg", ".pdf")
_IMAGE_KEY = re.compile(r"^[a-zA-Z0-9_\-./ ]+$")


def rendered(artifact_file: str, save: Callable[[str], Any]) -> bytes:
    """The bytes ``save(path)`` writes to a temporary file named as ``artifact_file``, so the
    saving library picks the format from its extension."""
    name = os.path.basename(artifact_file)
    with tempfile.TemporaryDirectory(prefix="nbtrack-") as folder:
        path = os.path.join(folder, name)
        save(path)
        if not os.path.isfile(path):  # e.g. matplotlib appends ".png" to a bare name
            raise InvalidParameterError(
                f"artifact_file={artifact_file!r}: the figure was not saved under that name; "
                "end it with the format's extension, such as .png."
            )
        return Path(path).read_bytes()


# -- figures ---------------------------------------------------------------------------------


def figure_entries(
    figure: Any, artifact_file: str, save_kwargs: dict[str, Any] | None = None
) -> Entries:
    """A matplotlib, Plotly or Altair figure saved as ``artifact_file``.

    Raises
    ------
    InvalidParameterError
        For another kind of ``figure``, a path that leaves the run, or an extension the
        figure's library cannot write.
    """
    relative = relative_path(artifact_file, "artifact_file")
    options = dict(save_kwargs or {})
    extension = os.path.splitext(relative)[1].lower()
    if _is_instance(figure, "matplotlib", "matplotlib.figure", "Figure"):
        save = lambda path: figure.savefig(path, **options)  # noqa: E731
    elif _is_instance(figure, "plotly", "plotly.graph_objects", "Figure"):
        save = _plotly_saver(figure, extension, options)
    elif _is_instance(figure, "altair", "altair", "TopLevelMixin"):
        save = lambda path: figure.save(path, **options)  # noqa: E731
    else:
        raise InvalidParameterError(
            f"log_figure(figure=...) got a {type(figure).__module__}.{type(figure).__name__}; "
            "pass a matplotlib Figure, a Plotly Figure or an Altair chart."
        )
    try:
        data = rendered(relative, save)
    except ValueError as error:  # e.g. matplotlib: "Format 'xyz' is not supported"
        message = f"log_figure(artifact_file={artifact_file!r}): {error}"
        raise InvalidParameterError(message) from None
    return [(relative, data)]


def _is_instance(value: Any, package: str, module: str, name: str) -> bool:
    """isinstance against a class of a library, without importing a library not yet loaded
    (a figure of that library cannot exist then)."""
    if package not in sys.modules:
        return False
    import importlib

    return isinstance(value, getattr(importlib.import_module(module), name))


def _plotly_saver(figure: Any, extension: str, options: dict[str, Any]) -> Callable[[str], Any]:
    if extension == ".html":
        # MLflow's defaults: the page loads plotly.js from its CDN rather than embedding it.
        options.setdefault("include_plotlyjs", "cdn")
        options.setdefault("auto_open", False)
        return lambda path: figure.write_html(path, **options)
    if extension in PLOTLY_IMAGE_EXTENSIONS:
        return lambda path: figure.write_image(path, **options)
    raise InvalidParameterError(
        f"log_figure(artifact_file=...) ends in {extension or 'no extension'!r}: a Plotly "
        f"figure is saved as .html or {', '.join(PLOTLY_IMAGE_EXTENSIONS)}."
    )


# -- images ------------------------------------------------------------------------------------


def image_entries(
    image: Any,
    artifact_file: str | None = None,
    key: str | None = None,
    step: int | None = None,
    timestamp: int | None = None,
) -> Entries:
    """An image as MLflow stores it: at ``artifact_file``, or (MLflow 3's form) under
    ``images/`` as a PNG and a WebP preview named by key, step, timestamp and a UUID.

    Raises
    ------
    InvalidParameterError
        For both or neither of ``artifact_file`` and ``key``, a bad key, step or timestamp,
        or an image that is not a numpy array, PIL image or ``mlflow.Image``.
    """
    if artifact_file is not None and (key, step, timestamp) != (None, None, None):
        raise InvalidParameterError(
            "log_image: give artifact_file alone, or key (with step and timestamp), not both."
        )
    if artifact_file is None and key is None:
        raise InvalidParameterError(
            "log_image: give key= (an image series, shown by step) or artifact_file= (one "
            "image file)."
        )
    if artifact_file is not None:
        relative = relative_path(artifact_file, "artifact_file")
        return [(relative, _saved(to_pil(image), relative))]
    name = _series_name(key, step, timestamp)
    picture = to_pil(image)
    return [
        (f"{name}.png", _saved(picture, f"{name}.png")),
        (f"{name}+compressed.webp", _saved(compressed(picture), f"{name}+compressed.webp")),
    ]


def add_images(store: Store, run_id: str, entries: Entries, series: bool) -> None:
    """Store image entries; an image series also tags the run ``mlflow.loggedImages``, by
    which MLflow's UI finds them."""
    add(store, run_id, entries)
    if series:
        store.set_tags(run_id, {LOGGED_IMAGES_TAG: "True"})


def _series_name(key: Any, step: int | None, timestamp: int | None) -> str:
    """``images/<key>+step+<step>+timestamp+<ms>+<uuid>``, MLflow 3's naming: a ``/`` in the
    key becomes ``~`` so every image of a run sits directly under ``images/``."""
    if not isinstance(key, str) or not _IMAGE_KEY.match(key):
        raise InvalidParameterError(
            f"log_image(key={key!r}): keys may only contain letters, digits, '_', '-', '.', "
            "' ' and '/'."
        )
    step = metric_step(key, step) if step else 0
    timestamp = metric_timestamp(key, timestamp) if timestamp else int(time() * 1000)
    return f"images/{key.replace('/', '~')}+step+{step}+timestamp+{timestamp}+{uuid.uuid4()}"


def _saved(image: Image, artifact_file: str) -> bytes:
    try:
        return rendered(artifact_file, image.save)
    except (ValueError, KeyError) as error:  # PIL: unknown extension (KeyError), bad mode
        raise InvalidParameterError(
            f"Cannot save the image as {artifact_file!r} ({error!r}); use an extension Pillow "
            "writes, such as .png or .jpg."
        ) from None


def to_pil(image: Any) -> Image:
    """A PIL image from a numpy array (as MLflow converts one), a PIL image, or anything
    with ``to_pil()`` (``mlflow.Image``)."""
    if _is_instance(image, "numpy", "numpy", "ndarray"):
        return _array_to_pil(image)
    if callable(getattr(image, "to_pil", None)):
        return image.to_pil()
    if _is_instance(image, "PIL", "PIL.Image", "Image"):
        return image
    raise InvalidParameterError(
        f"log_image(image=...) got a {type(image).__name__}; pass a numpy array, a PIL image "
        "or an mlflow.Image."
    )


def _array_to_pil(array: Any) -> Image:
    """MLflow's rules: H x W, H x W x 1, x 3 (RGB) or x 4 (RGBA); integers in [0, 255];
    floats and bools in [0, 1] (out-of-range floats are min/max scaled, with a warning)."""
    import numpy as np
    from PIL import Image

    if array.dtype.kind not in "biuf":
        raise InvalidParameterError(
            f"log_image: an array of dtype {array.dtype} is not an image; use bool, integers "
            "in [0, 255] or floats in [0, 1]."
        )
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise InvalidParameterError(
            f"log_image: an array of shape {array.shape} is not an image; use H x W, or "
            "H x W x 1, 3 (RGB) or 4 (RGBA)."
        )
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    is_int = array.dtype.kind in "iu"
    high = 255 if is_int else 1
    if array.min() < 0 or array.max() > high:
        if is_int:
            raise InvalidParameterError(
                f"log_image: integer pixels must be in [0, 255]; found {array.min()} to "
                f"{array.max()}."
            )
        warnings.warn(
            f"Float pixel values out of [0.0, 1.0] (found {array.min()} to {array.max()}); "
            "rescaling them with a min/max scaler, as MLflow does.",
            stacklevel=4,
        )
        array = (array - array.min()) / (array.max() - array.min())
    if not is_int:
        array = array * 255
    return Image.fromarray(array.astype(np.uint8))


def compressed(image: Image, max_size: int = COMPRESSED_IMAGE_SIZE) -> Image:
    """The preview MLflow stores beside each image: scaled so its longer side is
    ``max_size``, keeping the aspect ratio."""
    width, height = image.size
    if width > height:
        size = (max_size, int(height * (max_size / width)))
    else:
        size = (int(width * (max_size / height)), max_size)
    return image.resize(size)
