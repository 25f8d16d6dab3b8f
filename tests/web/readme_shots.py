"""The README's two screenshots of the web page, made from the browser test's own.

Run `.venv/bin/pytest -q tests/test_web.py` first (it writes tests/artifacts/web/), then
`.venv/bin/python tests/web/readme_shots.py`: the 1280 px wide shots are scaled to 800 px
and reduced to 256 colours, so the README stays light, into docs/img/.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "tests" / "artifacts" / "web"
README_IMG = ROOT / "docs" / "img"
WIDTH = 800
MAX_HEIGHT = 1200
# The browser test's shot -> the README's picture.
PAIRS = {
    "web-for-you.png": "web-recommendations.png",
    "web-cold-start.png": "web-cold-start.png",
}


def readme_copy(src: Path, dst: Path) -> tuple[int, int]:
    """Scales ``src`` to WIDTH (cut at MAX_HEIGHT), writes it to ``dst``; its size."""
    with Image.open(src) as shot:
        image = shot.convert("RGB")
    height = round(image.height * WIDTH / image.width)
    small = image.resize((WIDTH, height), Image.Resampling.LANCZOS)
    small = small.crop((0, 0, WIDTH, min(height, MAX_HEIGHT)))
    small.quantize(colors=256, dither=Image.Dither.NONE).save(dst, optimize=True)
    return small.size


def main() -> int:
    missing = [name for name in PAIRS if not (SHOTS / name).is_file()]
    if missing:
        print(
            f"no {', '.join(missing)} in {SHOTS}: run .venv/bin/pytest -q tests/test_web.py first",
            file=sys.stderr,
        )
        return 1
    for name, target in PAIRS.items():
        width, height = readme_copy(SHOTS / name, README_IMG / target)
        print(f"{README_IMG / target}: {width}x{height}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
