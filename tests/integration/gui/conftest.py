"""Fixtures for the desktop client's tests: Qt on the offscreen platform (for these tests
only: the platform is a QApplication argument, not an environment variable), and
controllers that are shut down (session quit, discovery stopped, threads joined) at the end."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

pytest.importorskip("PySide6")

from chatkit.gui.controller import Controller  # noqa: E402
from chatkit.gui.options import GuiOptions  # noqa: E402


@pytest.fixture(scope="session")
def qapp_args() -> list[str]:
    return ["chatkit-tests", "-platform", "offscreen"]


@pytest.fixture
def gui(qtbot) -> Iterator[Callable[..., Controller]]:
    """Make controllers (`gui(host=..., port=..., nick=...)`); all are shut down after."""
    made: list[Controller] = []

    def make(**options: object) -> Controller:
        controller = Controller(GuiOptions(**options))  # type: ignore[arg-type]
        made.append(controller)
        return controller

    yield make
    for controller in made:
        controller.shutdown()
    qtbot.wait(10)  # let deleteLater() and queued signals run before the leak check

