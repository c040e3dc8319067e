"""The web page in a real headless Chromium (Debian's, through Playwright; see browser.py):
its fake camera plays a .y4m made from a real face photo, and the page must show a box and
an emotion label for that face, with the bar chart and the FPS; the upload form; a phone-sized
screen; a denied camera. Screenshots go to the test's tmp dir; the README's docs/serve.png
is written when it is missing or FERKIT_UPDATE_DOCS=1 (so a test run leaves the tree clean)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="needs ferkit[serve]")
from browser import chromium, open_page  # noqa: E402
from test_serve import live_server  # noqa: E402

from ferkit.recognize import Recognizer, demo_image_path  # noqa: E402
from ferkit.serve import create_app  # noqa: E402

DOCS_SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "serve.png"
FAKE_CAMERA = ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")
TIMEOUT_MS = 60_000


def camera_frame() -> np.ndarray:
    """640x480 BGR: the real face photo scaled to the frame's height, centred on grey."""
    photo = cv2.imread(str(demo_image_path()))
    h, w = photo.shape[:2]
    scaled = cv2.resize(photo, (round(w * 480 / h), 480), interpolation=cv2.INTER_AREA)
    frame = np.full((480, 640, 3), 110, np.uint8)
    x = (640 - scaled.shape[1]) // 2
    frame[:, x:x + scaled.shape[1]] = scaled
    return frame


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = 10) -> Path:
    """YUV4MPEG2, 4:2:0 (I420 planes from OpenCV), for Chromium's fake camera."""
    height, width = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            f.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


@pytest.fixture(scope="module")
def server():
    with live_server(create_app(Recognizer(threads=1), max_upload_bytes=2_000_000)) as url:
        yield url


@pytest.fixture(scope="module")
def y4m(tmp_path_factory) -> Path:
    return write_y4m(tmp_path_factory.mktemp("camera") / "face.y4m", [camera_frame()] * 20)


def _faces(page, list_id: str) -> list[dict]:
    return page.eval_on_selector_all(f"#{list_id} li.face", "els => els.map(e => ({...e.dataset}))")


def _painted_pixels(page, canvas_id: str) -> int:
    return page.evaluate(f"""() => {{
        const c = document.getElementById('{canvas_id}');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }}""")


def test_live_camera_page_shows_box_label_chart_and_fps(server, y4m, tmp_path):
    # What the library says for the frame as the page sends it (640 px wide; the server
    # detects on a 320 px copy and crops from the full frame).
    [expected] = Recognizer(threads=1, detect_width=320).predict(camera_frame())
    with chromium([*FAKE_CAMERA, f"--use-file-for-fake-video-capture={y4m}"]) as browser:
        page, errors = open_page(browser, server + "/", viewport={"width": 1100, "height": 700})
        page.wait_for_selector("#faces li.face", timeout=TIMEOUT_MS)
        page.wait_for_function("document.getElementById('fps').textContent.includes('fps,')", timeout=TIMEOUT_MS)
        page.wait_for_timeout(1500)  # a few more frames: the smoothed probabilities settle
        [face] = _faces(page, "faces")
        assert face["label"] == expected.label and face["trackId"] == "1"
        box = [int(v) for v in face["box"].split(",")]
        assert max(abs(a - b) for a, b in zip(box, expected.box)) <= 12, (box, expected.box)
        assert _painted_pixels(page, "overlay") > 500  # the box and label are drawn over the video
        # YuNet's five points, mapped from the 640 px frame the page sends, each drawn as a dot
        # (inside the face, where neither the box's outline nor the label reaches)
        landmarks, alpha = page.evaluate("""() => {
            const c = document.getElementById('overlay'), li = document.querySelector('#faces li.face');
            const points = JSON.parse(li.dataset.landmarks), s = c.width / 640;
            const d = c.getContext('2d');
            return [points, points.map(([x, y]) => d.getImageData(Math.round(x * s), Math.round(y * s), 1, 1).data[3])];
        }""")
        assert len(landmarks) == 5 and min(alpha) > 0, alpha
        assert max(abs(a - b) for p, q in zip(landmarks, expected.landmarks) for a, b in zip(p, q)) <= 12
        assert float(face["roll"]) == 0  # an upright face is not turned
        assert page.locator("#chart").is_visible()
        assert page.locator("#chart .bar-row").count() == 7
        widest = page.eval_on_selector_all("#chart .bar", "bars => Math.max(...bars.map(b => b.offsetWidth))")
        top = page.locator(f"#chart .bar-row[data-emotion='{expected.label}'] .bar").evaluate("b => b.offsetWidth")
        assert top == widest > 0  # the label's bar is the longest
        assert re.search(r"\d+\.\d fps", page.locator("#fps").inner_text())
        assert page.locator("#status").inner_text().startswith("live: 1 face")
        shot = tmp_path / "serve.png"
        page.screenshot(path=str(shot))
        assert errors == []

        # A phone-sized screen: the page fits its width and still works.
        phone, phone_errors = open_page(browser, server + "/", viewport={"width": 390, "height": 844},
                                        is_mobile=True, has_touch=True, device_scale_factor=2)
        phone.wait_for_selector("#faces li.face", timeout=TIMEOUT_MS)
        assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        phone.screenshot(path=str(tmp_path / "serve-phone.png"))
        assert phone_errors == []
    if os.environ.get("FERKIT_UPDATE_DOCS") == "1" or not DOCS_SCREENSHOT.exists():
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOT)


def test_upload_form_draws_the_result_and_reports_errors(server, tmp_path):
    photo = demo_image_path()
    [expected] = Recognizer(threads=1).predict(photo)
    with chromium([*FAKE_CAMERA]) as browser:  # Chromium's own fake camera: no face in it
        page, errors = open_page(browser, server + "/")
        page.set_input_files("#file", str(photo))  # choosing a file submits the form
        page.wait_for_selector("#photo-faces li.face", timeout=TIMEOUT_MS)
        [face] = _faces(page, "photo-faces")
        assert face["label"] == expected.label and face["box"] == ",".join(map(str, expected.box))
        assert page.locator("#photo-canvas").is_visible() and _painted_pixels(page, "photo-canvas") > 0
        assert "1 face(s) in grace_hopper.jpg" in page.locator("#upload-message").inner_text()

        text = tmp_path / "notes.txt"
        text.write_text("not a photo")
        page.set_input_files("#file", str(text))
        page.wait_for_function("document.getElementById('upload-message').textContent.startsWith('Refused')",
                               timeout=TIMEOUT_MS)
        assert "notes.txt" in page.locator("#upload-message").inner_text()
        assert page.locator("#photo-faces li.face").count() == 0
        assert not page.locator("#photo-canvas").is_visible()  # the last photo's result is gone
        page.screenshot(path=str(tmp_path / "upload.png"))
        assert [e for e in errors if "415" not in e] == []  # the browser logs the refused request itself

        # The API docs render with no network beyond this server (Swagger UI served by the app).
        docs, docs_errors = open_page(browser, server + "/docs")
        docs.wait_for_selector(".opblock-summary-path[data-path='/v1/predict']", timeout=TIMEOUT_MS)
        assert docs.locator(".opblock").count() >= 2 and docs_errors == []


def test_denied_camera_says_so_and_upload_still_works(server):
    with chromium(["--use-fake-device-for-media-stream", "--deny-permission-prompts"]) as browser:
        page, errors = open_page(browser, server + "/")
        message = page.locator("#camera-message")
        message.wait_for(state="visible", timeout=TIMEOUT_MS)
        assert "permission was denied" in message.inner_text()
        assert "upload still works" in message.inner_text()
        page.set_input_files("#file", str(demo_image_path()))
        page.wait_for_selector("#photo-faces li.face", timeout=TIMEOUT_MS)
        assert errors == []
