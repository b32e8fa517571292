"""Gateway errors: each a LapError with a one-line message and a hint. Never holds the key."""

from __future__ import annotations

from typing import Sequence

from lap_tui.domain.errors import LapError
from lap_tui.gateway.types import ToolCall

KEY_HINT = "check LITELLM_API_KEY"
BASE_HINT = "check LITELLM_API_BASE and that the LiteLLM gateway is running"


class GatewayError(LapError):
    """Base of every gateway error."""

    exit_code = 6
    retryable = False


class GatewayAuthError(GatewayError):
    """401/403: the key is missing, wrong, or not allowed to do this."""

    def __init__(self, message: str, hint: str | None = KEY_HINT, *, status: int = 401) -> None:
        super().__init__(message, hint)
        self.status = status


class ModelNotFound(GatewayError):
    """The gateway does not serve the model asked for."""

    def __init__(self, model: str, served: Sequence[str] | None) -> None:
        self.model = model
        self.served = list(served) if served is not None else None
        if self.served:
            shown = ", ".join(self.served[:20]) + (f", ... ({len(self.served)} in all)" if len(self.served) > 20 else "")
            msg = f"model {model!r} is not served by the gateway; it serves: {shown}"
        elif self.served is not None:
            msg = f"model {model!r} is not served by the gateway; it serves no models for this key"
        else:
            msg = f"model {model!r} is not served by the gateway"
        super().__init__(msg, "pick one of the served models, or add it to the LiteLLM config")


class GatewayRejected(GatewayError):
    """The gateway refused the request as malformed or unacceptable (400, 404, 413, 422...)."""

    def __init__(self, message: str, hint: str | None = None, *, status: int = 400, detail: str = "") -> None:
        super().__init__(message, hint)
        self.status = status
        self.detail = detail


class GatewayUnavailable(GatewayError):
    """The gateway could not be reached or kept failing, and retries are used up."""

    retryable = True  # later, by the caller: the gateway may come back

    def __init__(self, message: str, hint: str | None = BASE_HINT, *, status: int | None = None,
                 attempts: int = 1) -> None:
        super().__init__(message, hint)
        self.status = status
        self.attempts = attempts


class GatewayProtocolError(GatewayError):
    """The gateway answered something that is not the OpenAI API (bad JSON, not SSE)."""


class StreamInterrupted(GatewayError):
    """A stream died after events had been yielded: the caller checkpoints what arrived and decides.

    `partial_text` and `partial_tool_calls` hold everything received before the break
    (tool-call arguments may be cut mid-JSON). Never retried by the client itself.
    """

    retryable = True

    def __init__(self, reason: str, *, partial_text: str = "", partial_tool_calls: Sequence[ToolCall] = (),
                 cause: str = "") -> None:
        self.reason = reason
        self.partial_text = partial_text
        self.partial_tool_calls = list(partial_tool_calls)
        self.cause = cause
        got = f"{len(partial_text)} characters"
        if self.partial_tool_calls:
            n = len(self.partial_tool_calls)
            got += f" and {n} tool call{'s' if n != 1 else ''}"
        super().__init__(f"the model stream broke after {got}: {reason}",
                         "what arrived is kept; retry the turn to continue")
