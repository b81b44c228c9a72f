"""cityhub realtime_ui: browser pages served by the hub (static HTML/CSS/JS modules, zh-CN)."""

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
