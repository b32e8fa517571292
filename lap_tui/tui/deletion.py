"""Deleting a session or an agent deletes the sandboxes it leaves unused (as `lap-tui sessions
delete` does): what the confirmation says, and the deleting, for the screens that delete."""

from __future__ import annotations

from typing import Any, Sequence


def sandboxes_going(ids: Sequence[str], backend_ready: bool) -> str:
    """The clause of the confirmation about the sandboxes, for ids that will be left unused."""
    if not ids:
        return ""
    names = ", ".join(ids)
    if not backend_ready:
        return f"; {'its sandbox' if len(ids) == 1 else 'the sandboxes'} {names} stay (no sandbox backend here)"
    return f", and {'its sandbox' if len(ids) == 1 else 'the sandboxes'} {names} with {'its' if len(ids) == 1 else 'their'} files"


async def delete_sandboxes(backend: Any, ids: Sequence[str]) -> None:
    """Before the rows that own them go: should this fail, nothing is left orphaned."""
    if backend is None:
        return
    for sid in ids:
        await backend.delete(sid)
