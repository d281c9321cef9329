"""The progress line: only on a terminal, only for runs longer than a moment, erased at the end."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from obsctl import progress as progress_module
from obsctl.cli import main
from obsctl.progress import Progress

ROOT = Path(__file__).resolve().parents[2]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_nothing_on_a_pipe_or_before_the_delay() -> None:
    piped = io.StringIO()
    with Progress(piped, after=0) as p:
        p.phase("writing", total=2)
        p.step(2)
    assert piped.getvalue() == ""
    clock, tty = Clock(), Terminal()
    with Progress(tty, after=0.5, clock=clock) as p:
        p.phase("rendering")
        clock.now = 0.4
        p.step()
    assert tty.getvalue() == ""


def test_one_line_rewritten_in_place_then_erased() -> None:
    clock, tty = Clock(), Terminal()
    with Progress(tty, after=0.5, interval=0.1, clock=clock) as p:
        clock.now = 1.0
        p.phase("writing", total=3)
        clock.now = 1.05
        p.step()  # within the interval: not drawn
        clock.now = 1.2
        p.step()
        p.step()  # the last one is always drawn
    text = tty.getvalue()
    assert "\n" not in text
    frames = text.split("\r")[1:]
    assert frames[:3] == ["obsctl: writing 0/3 …", "obsctl: writing 2/3 …", "obsctl: writing 3/3 …"]
    assert frames[-2].strip() == "" and frames[-1] == ""  # erased: blanks, then back to the line start


def test_render_draws_progress_on_a_terminal_and_keeps_stdout_clean(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress_module, "AFTER_SECONDS", 0.0)
    out, err = io.StringIO(), Terminal()
    code = main(["--config", str(ROOT / "examples" / "obsctl.yaml"), "render", str(ROOT / "examples" / "catalog"),
                 "--out", str(tmp_path / "out")], out, err)
    assert code == 0
    assert "obsctl: rendering 5 services" in err.getvalue() and "obsctl: writing" in err.getvalue()
    assert "\r" not in out.getvalue() and "created" in out.getvalue()
