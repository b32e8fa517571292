"""LiteLLM gateway client (OpenAI-compatible API). See docs/GATEWAY.md.

Importing this package is cheap: httpx is imported only when a GatewayClient is built.
"""

from lap_tui.gateway.client import GatewayClient, OnRetry
from lap_tui.gateway.errors import (
    GatewayAuthError,
    GatewayError,
    GatewayProtocolError,
    GatewayRejected,
    GatewayUnavailable,
    ModelNotFound,
    StreamInterrupted,
)
from lap_tui.gateway.retry import NO_RETRY, RetryPolicy, Timeouts, parse_retry_after
from lap_tui.gateway.types import Completion, RetryNotice, StreamEvent, TextDelta, ToolCall, ToolCallDelta, Usage

__all__ = [
    "GatewayClient", "OnRetry",
    "GatewayError", "GatewayAuthError", "ModelNotFound", "GatewayRejected", "GatewayUnavailable",
    "GatewayProtocolError", "StreamInterrupted",
    "RetryPolicy", "Timeouts", "NO_RETRY", "parse_retry_after",
    "StreamEvent", "TextDelta", "ToolCallDelta", "Completion", "ToolCall", "Usage", "RetryNotice",
]
