"""The log tail an activation failure shows (``activation.log_tail``): a Python server's traceback is folded to
its exception line, so that what the server logged before it failed stays in view."""

from __future__ import annotations

from imageworks_models.serving.activation import log_tail

FRAMES = [f'  File "/srv/lib/module{i}.py", line {i}, in f{i}\n    call_{i}()\n' for i in range(12)]


def test_traceback_frames_are_folded_and_the_lines_before_it_kept(tmp_path):
    log = tmp_path / "server.log"
    log.write_text("loading model\nerror loading model: unknown model architecture: 'x'\n"
                   "Traceback (most recent call last):\n" + "".join(FRAMES) +
                   "ValueError: Failed to load model from file: /m.gguf\n")

    assert log_tail(log) == ["loading model", "error loading model: unknown model architecture: 'x'",
                             "(a traceback of 25 lines is in the log)",
                             "ValueError: Failed to load model from file: /m.gguf"]


def test_a_log_without_a_traceback_keeps_its_last_lines(tmp_path):
    log = tmp_path / "server.log"
    log.write_text("".join(f"line {i}\n" for i in range(40)) + "\n  indented\n")

    assert log_tail(log, 3) == ["line 38", "line 39", "  indented"]
