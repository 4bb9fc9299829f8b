"""Tests of the Textual front end. `screen_text(app)` is what a terminal would show, as plain text."""

from __future__ import annotations

import io


def screen_text(app) -> str:
    """The current screen of a running app (run_test) as plain text, one line per terminal row."""
    from rich.console import Console

    width, height = app.size
    console = Console(
        width=width, height=height, file=io.StringIO(), force_terminal=True, record=True, legacy_windows=False
    )
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()
