"""Headless Chromium for the page tests (the API's page, the report): find the browser, read its screenshot.

Imported by tests/test_api.py and tests/test_report.py (pytest puts tests/ on ``sys.path``); stdlib only, so
the API tests need no Spark to use it.
"""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from collections import Counter
from pathlib import Path

import pytest

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars")


def chromium() -> str:
    """The browser's path; outside CI a missing browser skips the test, in CI it fails (CI installs it)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs Debian's package (apt-get install chromium)")
        pytest.skip("chromium not installed (apt-get install chromium); CI installs it and runs this test")
    return browser


def png_pixels(path: Path) -> tuple[int, int, bytes, int]:
    """Width, height, unfiltered pixel bytes and bytes per pixel of an 8-bit RGB(A) PNG (stdlib only)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, bpp = 8, b"", 0, 0, 3
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and color in (2, 6), (depth, color)
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw, stride = zlib.decompress(idat), width * bpp
    out, prev = bytearray(), bytearray(stride)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            pred = (0, a, b, (a + b) // 2)[f] if f < 4 else (
                a if abs(b - c) <= abs(a - c) and abs(b - c) <= abs(a + b - 2 * c) else
                b if abs(a - c) <= abs(a + b - 2 * c) else c)
            line[i] = (line[i] + pred) & 0xFF
        out += line
        prev = line
    return width, height, bytes(out), bpp


def colours_and_ink(path: Path) -> tuple[int, int, Counter, float]:
    """The screenshot's size, its colour counts and its ink: the share of pixels outside its two commonest colours
    (page background and card white), near 0 for a blank page."""
    width, height, pixels, bpp = png_pixels(path)
    colours = Counter(pixels[i:i + 3] for i in range(0, len(pixels), bpp))
    return width, height, colours, 1 - sum(n for _, n in colours.most_common(2)) / (width * height)
