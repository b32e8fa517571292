"""What a streamed chat call yields: plain frozen dataclasses, no I/O, no httpx."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "Usage | None":
        if not isinstance(data, dict):
            return None
        p = _int(data.get("prompt_tokens"))
        c = _int(data.get("completion_tokens"))
        t = _int(data.get("total_tokens")) or p + c
        return cls(prompt_tokens=p, completion_tokens=c, total_tokens=t)

    def to_dict(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens}


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A whole tool call the model asked for; `arguments` is the raw JSON text as sent."""

    id: str
    name: str
    arguments: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """One fragment of a tool call. `id` and `name` are repeated once known (None before)."""

    index: int
    id: str | None
    name: str | None
    arguments_fragment: str


@dataclass(frozen=True, slots=True)
class Completion:
    """The last event of a successful stream: everything the model said, assembled."""

    text: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage | None = None
    cost_usd: float | None = None  # None: the gateway did not say
    model: str | None = None  # the model name the gateway reported, if any

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "tool_calls": [t.to_dict() for t in self.tool_calls],
                "finish_reason": self.finish_reason,
                "usage": self.usage.to_dict() if self.usage else None,
                "cost_usd": self.cost_usd, "model": self.model}


StreamEvent = Union[TextDelta, ToolCallDelta, Completion]


@dataclass(frozen=True, slots=True)
class RetryNotice:
    """Passed to `on_retry` before the client sleeps and tries again."""

    attempt: int  # the attempt that just failed, 1-based
    max_attempts: int
    delay_s: float
    reason: str  # e.g. "429 Too Many Requests", "connection refused"
    status: int | None = None
    retry_after_s: float | None = None  # what the gateway asked for, if anything

    def __str__(self) -> str:
        return (f"{self.reason}, retrying in {self.delay_s:.1f} s "
                f"(attempt {self.attempt + 1} of {self.max_attempts})")


def _int(v: Any) -> int:
    try:
        return int(v or 0)
    except (TypeError, ValueError):
        return 0
