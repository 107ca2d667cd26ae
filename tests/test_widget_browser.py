"""The comparison widget in a real browser: JupyterLab + headless Chromium driven by Playwright.

JupyterLab serves a temporary folder holding a small notebook that builds a
:class:`~asymlib.widgets.ComparisonWidget` on embedded images and random "runs". Chromium opens the
notebook, runs it on a live kernel, drags the ``x`` zoom slider with the mouse, and the test checks that

* the slider's readout changed and the kernel received the new crop (the notebook writes the crop box
  to a file on every change),
* every panel image (LR, HR, two runs) and the overview were redrawn with new pixels,
* a screenshot can be taken (saved under the test's tmp dir).

Requirements: Chromium at ``/usr/bin/chromium`` (or ``$ASYMLIB_CHROMIUM``), installed by
``scripts/install_browser.sh``, and the ``playwright`` Python package (only its driver is used; no
browser is downloaded). The test skips only when ``scripts/install_browser.sh`` recorded that the browser
cannot be installed on this machine; a browser that is merely missing is a failure.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import IO

import nbformat
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
STATUS_FILE = REPO_ROOT / "build" / "browser-install.status"
CHROMIUM = Path(os.environ.get("ASYMLIB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-dev-shm-usage"]
SERVER_TIMEOUT_S = 180
UI_TIMEOUT_MS = 240_000

pytestmark = pytest.mark.slow

NOTEBOOK_CELLS = [
    """\
    import json
    from pathlib import Path

    import torch
    import torch.nn.functional as F

    from asymlib.analysis import fit_image
    from asymlib.data.corpus import embedded_images
    from asymlib.widgets import ComparisonWidget

    gen = torch.Generator().manual_seed(0)
    images = {}
    for name, img in embedded_images(["chelsea", "coffee"]).items():
        hr = fit_image(img, (96, 128))[0]
        runs = {f"run{i}": (hr + 0.08 * (i + 1) * torch.randn(hr.shape, generator=gen)).clamp(0, 1)
                for i in range(3)}
        images[name] = {"lr": F.avg_pool2d(hr[None], 4)[0], "hr": hr, "runs": runs}
    scores = {("chelsea", "run0"): {"PSNR": 21.5}, ("chelsea", "run1"): {"PSNR": 18.2}}
    w = ComparisonWidget(images, scores, runs=["run0", "run1"], crop_size=32, panel_px=160)
    state = Path("crop_state.json")

    def _record(_change=None):
        state.write_text(json.dumps({"crop": w.crop_box, "renders": w._render_count}))

    for _slider in (w.x_slider, w.y_slider, w.size_slider):
        _slider.observe(_record, names="value")
    _record()
    """,
    "w.widget",
]


def _require_browser() -> None:
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return
    status = STATUS_FILE.read_text().strip() if STATUS_FILE.is_file() else ""
    if status.startswith("unavailable:"):
        pytest.skip(f"Chromium cannot be installed on this machine ({status.removeprefix('unavailable:').strip()}); "
                    f"see scripts/install_browser.sh")
    pytest.fail(f"Chromium not found at {CHROMIUM}: run `bash scripts/install_browser.sh` (apt-get install chromium "
                f"chromium-driver) before the tests, or set ASYMLIB_CHROMIUM")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_notebook(root: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(textwrap.dedent(src)) for src in NOTEBOOK_CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = root / "compare.ipynb"
    nbformat.write(nb, path)
    return path


def _start_lab(root: Path, work: Path, port: int, token: str, log: IO[str]) -> subprocess.Popen:
    env = dict(os.environ)
    for sub in ("config", "data", "runtime", "ipython", "settings", "workspaces"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    env.update(JUPYTER_CONFIG_DIR=str(work / "config"), JUPYTER_DATA_DIR=str(work / "data"),
               JUPYTER_RUNTIME_DIR=str(work / "runtime"), IPYTHONDIR=str(work / "ipython"),
               JUPYTER_PLATFORM_DIRS="1", MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--LabApp.expose_app_in_browser=True", f"--LabApp.user_settings_dir={work / 'settings'}",
           f"--LabApp.workspaces_dir={work / 'workspaces'}", "--LabApp.news_url=", "--ServerApp.terminals_enabled=False",
           "--LabApp.extension_manager=readonly"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
        cmd.append("--allow-root")
    # no "Would you like to get notified about official Jupyter news?" toast over the screenshot
    news = work / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True, exist_ok=True)
    news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    return subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait_for_server(proc: subprocess.Popen, port: int, token: str, log: Path) -> None:
    deadline = time.monotonic() + SERVER_TIMEOUT_S
    url = f"http://127.0.0.1:{port}/api/status?token={token}"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"JupyterLab exited with code {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer within {SERVER_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# JavaScript run in the page ------------------------------------------------------------------------
_JS_PANEL_PIXELS = """
() => Array.from(document.querySelectorAll('.asymlib-comparison img')).map(img => {
    if (!img.complete || img.naturalWidth === 0) return null;
    const c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    c.getContext('2d').drawImage(img, 0, 0);
    return {cls: img.className, data: c.toDataURL('image/png')};
})
"""
_JS_KERNEL_READY = """
() => {
    const app = window.jupyterapp;
    const nb = app && app.shell && app.shell.currentWidget;
    const ctx = nb && nb.sessionContext;
    return !!(ctx && ctx.session && ctx.session.kernel && ctx.session.kernel.status === 'idle');
}
"""


def _panel_pixels(page) -> list[dict]:
    pix = page.evaluate(_JS_PANEL_PIXELS)
    assert all(p is not None for p in pix), "an image of the widget is not loaded"
    return pix


def test_comparison_widget_zoom_in_chromium(tmp_path):
    _require_browser()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # a declared test dependency, never a reason to skip
        pytest.fail(f"the Python package 'playwright' is needed to drive Chromium (pip install playwright): {exc}")

    root, work = tmp_path / "root", tmp_path / "work"
    root.mkdir()
    work.mkdir()
    _write_notebook(root)
    port, token = _free_port(), secrets.token_hex(16)
    log_file = (work / "jupyterlab.log").open("w")
    proc = _start_lab(root, work, port, token, log_file)
    screenshot = tmp_path / "comparison_widget.png"
    console: list[str] = []
    try:
        _wait_for_server(proc, port, token, work / "jupyterlab.log")
        with sync_playwright() as pw:
            # a persistent context is how Playwright takes Chromium's --user-data-dir (a fresh temp profile)
            context = pw.chromium.launch_persistent_context(
                str(work / "chromium-profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1400, "height": 1000})
            try:
                page = context.pages[0] if context.pages else context.new_page()
                page.set_default_timeout(UI_TIMEOUT_MS)
                page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
                page.goto(f"http://127.0.0.1:{port}/lab/tree/compare.ipynb?token={token}",
                          wait_until="domcontentloaded")
                page.wait_for_function(_JS_KERNEL_READY, polling=500)
                page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")

                panels = page.locator(".asymlib-comparison .asymlib-panel-image")
                panels.nth(3).wait_for(state="visible")
                assert panels.count() == 4  # LR, HR, run0, run1
                page.wait_for_function("() => Array.from(document.querySelectorAll('.asymlib-comparison img'))"
                                       ".every(i => i.complete && i.naturalWidth > 0)", polling=250)
                state_file = root / "crop_state.json"
                initial_state = json.loads(state_file.read_text())
                before = _panel_pixels(page)
                assert len(before) == 5  # overview + 4 panels

                slider = page.locator(".asymlib-comparison .widget-slider").filter(
                    has=page.locator("label", has_text=re.compile(r"^x$")))
                assert slider.count() == 1
                readout = slider.locator(".widget-readout")
                x_before = int(readout.inner_text().strip())
                assert x_before == initial_state["crop"][0]
                handle = slider.locator(".noUi-handle")
                track = slider.locator(".noUi-target")
                hb, tb = handle.bounding_box(), track.bounding_box()
                assert hb is not None and tb is not None
                start_x, y = hb["x"] + hb["width"] / 2, hb["y"] + hb["height"] / 2
                target_x = tb["x"] + 0.1 * tb["width"]  # drag the crop toward the left border
                page.mouse.move(start_x, y)
                page.mouse.down()
                page.mouse.move(target_x, y, steps=12)
                page.mouse.up()

                page.wait_for_function("([r, old]) => parseInt(r.textContent) !== old",
                                       arg=[readout.element_handle(), x_before], polling=250)
                x_after = int(readout.inner_text().strip())
                assert x_after < x_before

                # the kernel received the new crop and re-rendered ...
                deadline = time.monotonic() + UI_TIMEOUT_MS / 1000
                state = initial_state
                while time.monotonic() < deadline:
                    state = json.loads(state_file.read_text())
                    if state["crop"][0] == x_after:
                        break
                    time.sleep(0.25)
                assert state["crop"][0] == x_after and state["crop"][1:] == initial_state["crop"][1:], state
                # ... and every panel (and the overview) now shows new pixels in the browser
                after = before
                while time.monotonic() < deadline:
                    after = page.evaluate(_JS_PANEL_PIXELS)
                    if all(a is not None for a in after) and all(a["data"] != b["data"]
                                                                 for a, b in zip(after, before)):
                        break
                    time.sleep(0.25)
                changed = [a is not None and a["data"] != b["data"] for a, b in zip(after, before)]
                assert all(changed), f"panels not redrawn after the zoom moved: {changed}"
                info = page.locator(".asymlib-comparison").inner_text()
                assert f"crop x={x_after} " in info
                page.locator(".asymlib-comparison").screenshot(path=str(screenshot))
            finally:
                context.close()
    except Exception:
        log = work / "jupyterlab.log"
        print("--- JupyterLab log (tail) ---\n" + (log.read_text()[-4000:] if log.is_file() else ""))
        print("--- browser console ---\n" + "\n".join(console[-50:]))
        raise
    finally:
        _stop(proc)
        log_file.close()
    assert screenshot.is_file() and screenshot.stat().st_size > 1000
