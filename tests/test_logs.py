"""Log lines: the JSON format (one object per line, with the event's fields) and the
text format that stays as it was; the ready line the supervisors search for, in both."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from click.testing import CliRunner

from minichain.cli import main
from minichain.node.logs import event, ready_line, setup_logging
from minichain.testnet.process import READY

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def lines_of(fmt: str, emit) -> list[str]:
    stream = io.StringIO()
    setup_logging("debug", fmt, stream)
    emit(logging.getLogger("minichain.node"))
    return stream.getvalue().splitlines()


def test_json_lines_carry_time_level_event_message_and_the_fields_flat(restore_logging):
    block = "00" * 16 + "ab" * 16

    def emit(log):
        log.info("new tip %s height %d", block[:16], 7, extra=event("tip", block=block, height=7, peer="127.0.0.1:1"))
        log.warning("plain line without an event")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed", extra=event("peer_error", peer="127.0.0.1:2"))

    lines = lines_of("json", emit)
    assert len(lines) == 3                                     # the traceback stays inside its object
    tip, plain, failed = (json.loads(line) for line in lines)
    assert ISO_UTC.match(tip["time"])
    assert tip["level"] == "info" and tip["logger"] == "minichain.node" and tip["event"] == "tip"
    assert tip["message"] == f"new tip {block[:16]} height 7"
    assert (tip["block"], tip["height"], tip["peer"]) == (block, 7, "127.0.0.1:1")
    assert plain["event"] == "log" and plain["level"] == "warning"
    assert failed["event"] == "peer_error" and "ValueError: boom" in failed["exc"] and failed["level"] == "error"


def test_text_lines_stay_readable_and_show_no_fields(restore_logging):
    lines = lines_of("text", lambda log: log.info("new tip %s height %d", "00ab", 7,
                                                  extra=event("tip", block="00ab", height=7)))
    assert len(lines) == 1
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO    minichain.node: new tip 00ab height 7$", lines[0])


def test_event_refuses_field_names_the_json_object_uses_itself():
    with pytest.raises(ValueError, match="reserved"):
        event("tip", level=3)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_ready_line_is_found_by_the_supervisor_in_both_formats(fmt):
    text = "minichain node ready network=regtest p2p=127.0.0.1:1234 api=127.0.0.1:1235 height=5 pid=99"
    line = ready_line(text, fmt, p2p_port=1234)
    found = READY.search(line)
    assert found and (found.group(3), found.group(5), found.group(7)) == ("1234", "1235", "99")
    if fmt == "json":
        assert json.loads(line)["event"] == "ready" and json.loads(line)["p2p_port"] == 1234
    else:
        assert line == text


def test_an_unknown_log_format_is_a_usage_error_not_a_traceback():
    result = CliRunner().invoke(main, ["node", "--log-format", "xml"])
    assert result.exit_code == 2
    assert "Invalid value for '--log-format'" in result.output and "Traceback" not in result.output
