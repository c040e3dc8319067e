"""Drawing faces and emotions on images with OpenCV."""

from __future__ import annotations

import cv2
import numpy as np

#: BGR colour of each emotion's box and label.
COLORS: dict[str, tuple[int, int, int]] = {
    "angry": (40, 40, 220), "disgust": (40, 140, 40), "fear": (160, 60, 160),
    "happy": (0, 200, 255), "sad": (200, 120, 30), "surprise": (0, 160, 255),
    "neutral": (180, 180, 180),
}


#: Fractional bits of the dots' centres (``cv2.circle``'s ``shift``): 1/16 pixel.
_SHIFT = 4


def draw_faces(image: np.ndarray, faces, thickness: int | None = None,
               texts: list[str] | None = None, landmarks: bool = True) -> np.ndarray:
    """Draw each face's box and ``label score`` on a copy of the image, and its landmarks
    as dots.

    Args:
        image: (H, W, 3) uint8 BGR or (H, W) uint8 gray.
        faces: :class:`~ferkit.recognize.Face` objects (``box``, ``label``, ``score``, and
            ``landmarks``: (x, y) float pixels or ``None``; objects without the attribute
            have none).
        thickness: box line width in pixels; default scales with the image size.
        texts: one caption per face instead of ``label score`` (e.g. with a track id);
            the box colour still follows the face's label.
        landmarks: draw each face's landmarks (YuNet: the eyes, the nose tip, the mouth
            corners) as filled dots of the box's colour, radius ``thickness + 1`` pixels,
            placed to 1/16 pixel; points outside the image are clipped away. ``False``:
            boxes and captions only.

    Returns:
        (H, W, 3) uint8 BGR annotated copy; the input is left unchanged.
    """
    out = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()
    t = thickness or max(1, round(max(out.shape[:2]) / 400))
    font_scale = max(0.4, max(out.shape[:2]) / 1000)
    faces = list(faces)
    if texts is not None and len(texts) != len(faces):
        raise ValueError(f"expected one text per face, got {len(texts)} texts for {len(faces)} faces")
    for i, face in enumerate(faces):
        x, y, w, h = face.box
        color = COLORS.get(face.label, (0, 255, 0))
        cv2.rectangle(out, (x, y), (x + w, y + h), color, t)
        points = getattr(face, "landmarks", None) if landmarks else None
        for px, py in points or ():
            centre = (int(round(px * (1 << _SHIFT))), int(round(py * (1 << _SHIFT))))
            cv2.circle(out, centre, (t + 1) << _SHIFT, color, cv2.FILLED, cv2.LINE_AA, _SHIFT)
        text = texts[i] if texts is not None else f"{face.label} {face.score:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, t)
        ty = y - 4 if y - th - base - 4 >= 0 else y + h + th + 4
        cv2.rectangle(out, (x, ty - th - base), (x + tw + 4, ty + base), color, cv2.FILLED)
        cv2.putText(out, text, (x + 2, ty), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), t,
                    cv2.LINE_AA)
    return out
