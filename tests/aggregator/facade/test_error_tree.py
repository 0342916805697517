"""The error tree maps completely: every code on every face, every exception a facade can see."""

from __future__ import annotations

import json

import pytest

from aggregator.facade.base import FacadeHTTPError
from aggregator.facade.kit import parse_json_object, render_anthropic, render_ollama, render_openai, render_plain
from aggregator.protocol import errors, jsonrpc
from aggregator.protocol.errors import ErrorCode, RequestError, ToolmuxError
from servers.kit.errors import ToolError, error_from_result, error_result

RENDERERS = [render_plain, render_openai, render_ollama, render_anthropic]


@pytest.mark.parametrize("face", sorted(errors.FACES))
def test_every_code_maps_on_every_face(face: str) -> None:
    assert set(errors.FACES[face]) == set(ErrorCode)


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_code_renders_as_json_on_every_http_face_with_its_status(code: ErrorCode) -> None:
    error = ToolError("it failed", code=code, field="x")
    for render in RENDERERS:
        response = render(error, "rid-1")
        assert response.status_code == errors.HTTP_STATUS[code]
        assert json.loads(bytes(response.body))
        assert response.headers["x-request-id"] == "rid-1"
    assert errors.jsonrpc_error(error)["code"] == errors.JSONRPC_CODE[code]


@pytest.mark.parametrize("code", list(ErrorCode))
def test_a_tool_error_survives_the_is_error_wire_form(code: ErrorCode) -> None:
    sent = ToolError("it failed", code=code, field="f", retry_after=2.5, reason="why", data={"k": 1})
    received = error_from_result(error_result(sent))
    assert received is not None
    assert received.to_dict() == sent.to_dict()


def test_the_jsonrpc_codes_are_those_of_the_jsonrpc_module() -> None:
    assert errors.INVALID_PARAMS == jsonrpc.INVALID_PARAMS
    assert errors.METHOD_NOT_FOUND == jsonrpc.METHOD_NOT_FOUND
    assert errors.INTERNAL_ERROR == jsonrpc.INTERNAL_ERROR
    assert errors.UPSTREAM_UNAVAILABLE == jsonrpc.UPSTREAM_UNAVAILABLE
    assert errors.UPSTREAM_TIMEOUT == jsonrpc.UPSTREAM_TIMEOUT
    assert errors.UNAUTHORIZED == jsonrpc.UNAUTHORIZED


@pytest.mark.parametrize(
    ("rpc_code", "code"),
    [
        (jsonrpc.INVALID_PARAMS, ErrorCode.NOT_FOUND),
        (jsonrpc.UPSTREAM_UNAVAILABLE, ErrorCode.UNAVAILABLE),
        (jsonrpc.UPSTREAM_TIMEOUT, ErrorCode.TIMEOUT),
        (jsonrpc.UNAUTHORIZED, ErrorCode.FORBIDDEN),
        (jsonrpc.INTERNAL_ERROR, ErrorCode.UPSTREAM_ERROR),
        (-1, ErrorCode.UPSTREAM_ERROR),
    ],
)
def test_jsonrpc_errors_translate_into_the_tree(rpc_code: int, code: ErrorCode) -> None:
    assert errors.from_rpc_error(rpc_code, "m").code is code


def test_every_exception_a_facade_sees_is_in_the_tree() -> None:
    assert issubclass(ToolError, ToolmuxError) and issubclass(RequestError, ToolmuxError)
    assert issubclass(FacadeHTTPError, RequestError)
    for status in (400, 401, 403, 404, 405, 409, 413, 415, 429, 500, 502, 503, 504):
        assert FacadeHTTPError(status, "m").status == status
    for raw in (b"{nope", b"[1]", b"[" * 5000 + b"]" * 5000, b"\xff"):
        with pytest.raises(RequestError):
            parse_json_object(raw)


def test_busy_is_a_retryable_503_with_retry_after() -> None:
    response = render_plain(ToolError("engine busy", code="busy", retry_after=2.2), "r")
    assert response.status_code == 503 and response.headers["retry-after"] == "3"
    assert render_openai(ToolError("busy", code="busy"), "r").headers["retry-after"] == "1"


def test_an_unknown_code_from_a_foreign_child_reads_as_upstream_error() -> None:
    assert ToolError("m", code="no_such_code").code is ErrorCode.UPSTREAM_ERROR
