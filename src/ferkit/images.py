"""Reading images from files and bytes with OpenCV, with errors that name the file."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from .errors import ImageReadError


def decode_image(data: bytes, *, gray: bool = False, name: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, BMP, TIFF, WebP, ...) with OpenCV.

    Args:
        data: the encoded file content.
        gray: return a (H, W) grayscale array instead of (H, W, 3) BGR.
        name: what to call the image in an error message.

    Returns:
        uint8 array, (H, W, 3) BGR or (H, W) gray, values 0-255.

    Raises:
        ImageReadError: empty data, or data OpenCV cannot decode as an image.
    """
    if not data:
        raise ImageReadError(f"{name}: file is empty")
    buf = np.frombuffer(data, dtype=np.uint8)
    flag = cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR
    image = cv2.imdecode(buf, flag)
    if image is None:
        raise ImageReadError(f"{name}: not an image, or corrupt (OpenCV could not decode it)")
    return image


def read_image(path: str | os.PathLike, *, gray: bool = False) -> np.ndarray:
    """Read an image file with OpenCV.

    Args:
        path: the file to read.
        gray: return a (H, W) grayscale array instead of (H, W, 3) BGR.

    Returns:
        uint8 array, (H, W, 3) BGR or (H, W) gray, values 0-255.

    Raises:
        ImageReadError: the file is missing, a directory, unreadable, empty, corrupt or
            not an image; the message names the file and the reason.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"{path}: is a directory, not an image file") from None
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return decode_image(data, gray=gray, name=str(path))
