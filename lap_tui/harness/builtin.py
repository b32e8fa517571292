"""The built-in harness's tools. Each acts only inside the session's sandbox, through the
sandbox interface; outputs over the cap are truncated with a note for the model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from lap_tui.domain.errors import LapError
from lap_tui.domain.sandbox import WORKSPACE
from lap_tui.sandbox.base import SandboxBackend, SandboxGone

OUTPUT_CAP = 30_000  # bytes of tool output the model sees (per call)
BASH_TIMEOUT = 120.0
MAX_BASH_TIMEOUT = 1800.0


@dataclass(frozen=True)
class ToolOutcome:
    output: str
    exit_code: int | None = None
    truncated: bool = False
    error: str | None = None  # the tool could not do what was asked (bad path, no match, ...)

    def to_data(self) -> dict[str, Any]:
        return {"output": self.output, "exit_code": self.exit_code, "truncated": self.truncated,
                "error": self.error}


def _fn(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "properties": properties, "required": required,
                       "additionalProperties": False}}}


_S = {"type": "string"}
TOOL_SPECS: list[dict[str, Any]] = [
    _fn("bash", f"Run a shell command in the sandbox (working directory {WORKSPACE}). Returns exit code and "
                "output (stdout then stderr), truncated when long.",
        {"command": _S, "timeout": {"type": "number", "description": "seconds, default 120"}}, ["command"]),
    _fn("read_file", "Read a text file in the sandbox.", {"path": _S}, ["path"]),
    _fn("write_file", "Create or overwrite a file in the sandbox with the given content.",
        {"path": _S, "content": _S}, ["path", "content"]),
    _fn("edit_file", "Replace one exact occurrence of old_string with new_string in a file.",
        {"path": _S, "old_string": _S, "new_string": _S}, ["path", "old_string", "new_string"]),
    _fn("list_dir", "List a directory in the sandbox.", {"path": _S}, []),
]
TOOL_NAMES = frozenset(t["function"]["name"] for t in TOOL_SPECS)
# Safe to run again after an interruption: they change nothing, or set the same end state.
IDEMPOTENT = frozenset({"read_file", "list_dir", "write_file"})


def cap(text: str, limit: int = OUTPUT_CAP) -> tuple[str, bool]:
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text, False
    head = data[: limit].decode("utf-8", "ignore")
    return head + f"\n[output truncated: {len(data)} bytes, showing the first {limit}]", True


class BuiltinTools:
    """Runs the built-in tools against one sandbox. `redact` masks secrets in outputs."""

    def __init__(self, backend: SandboxBackend, sandbox_id: str, redact: Callable[[str], str] = lambda s: s) -> None:
        self.backend = backend
        self.sandbox_id = sandbox_id
        self.redact = redact

    async def run(self, name: str, arguments: str,
                  on_output: Callable[[str, bytes], Awaitable[None] | None] | None = None) -> ToolOutcome:
        try:
            args = json.loads(arguments or "{}")
            if not isinstance(args, dict):
                raise ValueError("arguments are not a JSON object")
        except ValueError as exc:
            return ToolOutcome(output=f"error: the arguments are not valid JSON: {exc}", error="bad arguments")
        handler = getattr(self, f"_{name}", None)
        if name not in TOOL_NAMES or handler is None:
            return ToolOutcome(output=f"error: there is no tool {name!r}; tools: {', '.join(sorted(TOOL_NAMES))}",
                               error="unknown tool")
        try:
            outcome = await handler(args, on_output) if name == "bash" else await handler(args)
        except KeyError as exc:
            outcome = ToolOutcome(output=f"error: missing argument {exc.args[0]!r}", error="bad arguments")
        except SandboxGone:
            raise  # not the tool's error: the engine journals the call interrupted and waits for the sandbox
        except LapError as exc:
            outcome = ToolOutcome(output=f"error: {exc}", error=exc.message)
        text, truncated = cap(self.redact(outcome.output))
        return ToolOutcome(output=text, exit_code=outcome.exit_code, truncated=truncated or outcome.truncated,
                           error=outcome.error)

    async def _bash(self, args: dict[str, Any], on_output) -> ToolOutcome:
        command = str(args["command"])
        timeout = min(float(args.get("timeout") or BASH_TIMEOUT), MAX_BASH_TIMEOUT)
        res = await self.backend.exec(self.sandbox_id, ["bash", "-c", command], cwd=WORKSPACE, timeout=timeout,
                                      on_output=on_output, max_output=OUTPUT_CAP)
        out = res.stdout.decode("utf-8", "replace")
        err = res.stderr.decode("utf-8", "replace")
        text = out + (("\n" if out and not out.endswith("\n") else "") + err if err else "")
        if res.killed == "timeout" or res.timed_out:
            text += f"\n[killed: the command ran longer than {timeout:g} s]"
        elif res.killed:
            text += f"\n[killed: {res.killed}]"
        if res.truncated:
            text += "\n[output truncated]"
        return ToolOutcome(output=text, exit_code=res.exit_code, truncated=res.truncated)

    async def _read_file(self, args: dict[str, Any]) -> ToolOutcome:
        data = await self.backend.read_file(self.sandbox_id, str(args["path"]), max_bytes=OUTPUT_CAP + 1)
        return ToolOutcome(output=data.decode("utf-8", "replace"), exit_code=0)

    async def _write_file(self, args: dict[str, Any]) -> ToolOutcome:
        content = str(args["content"]).encode()
        await self.backend.write_file(self.sandbox_id, str(args["path"]), content)
        return ToolOutcome(output=f"wrote {len(content)} bytes to {args['path']}", exit_code=0)

    async def _edit_file(self, args: dict[str, Any]) -> ToolOutcome:
        path, old, new = str(args["path"]), str(args["old_string"]), str(args["new_string"])
        text = (await self.backend.read_file(self.sandbox_id, path)).decode("utf-8")
        count = text.count(old) if old else 0
        if count != 1:
            why = "old_string is empty" if not old else (f"old_string was not found in {path}" if count == 0 else
                                                        f"old_string occurs {count} times in {path}; give more context")
            return ToolOutcome(output=f"error: {why}", error=why)
        await self.backend.write_file(self.sandbox_id, path, text.replace(old, new, 1).encode())
        return ToolOutcome(output=f"edited {path}", exit_code=0)

    async def _list_dir(self, args: dict[str, Any]) -> ToolOutcome:
        entries = await self.backend.list_dir(self.sandbox_id, str(args.get("path") or "."))
        lines = [f"{e.name}{'/' if e.kind == 'dir' else ''}\t{e.size}" for e in entries]
        return ToolOutcome(output="\n".join(lines) or "(empty)", exit_code=0)

