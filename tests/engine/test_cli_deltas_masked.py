"""A CLI harness's streamed pieces are masked before they are shown or journaled, a secret
split across pieces included (they used to reach model.delta and the screen as the CLI wrote
them), with the agent's named variables masked too."""

from __future__ import annotations

from lap_tui.domain.journal import EventKind, Turn
from lap_tui.domain.secrets import MASK, Redactor
from lap_tui.engine.cli_turn import _Deltas

SECRET = "sk-live-0123456789abcdef"


class _Engine:
    """The three engine calls _Deltas makes, recorded."""

    def __init__(self) -> None:
        self.shown: list[str] = []
        self.journaled: list[str] = []

    def mask(self, turn: Turn) -> Redactor:
        return Redactor([SECRET])

    def publish(self, session_id: str, item: object) -> None:
        self.shown.append(item.text)  # type: ignore[attr-defined]

    async def journal(self, turn: Turn, kind: EventKind, data: dict) -> None:
        assert kind is EventKind.MODEL_DELTA
        self.journaled.append(data["text"])


async def test_a_secret_split_across_streamed_pieces_is_masked_whole() -> None:
    engine = _Engine()
    turn = Turn(id="t1", session_id="s1")
    deltas = _Deltas(engine, turn)  # type: ignore[arg-type]
    pieces = ["the key is ", SECRET[:7], SECRET[7:15], SECRET[15:], " ok"]
    for i, p in enumerate(pieces[:3]):
        deltas.add(p, {"attempt": 1, "at": 0, "n": i})
    await deltas.flush(end=False)  # a read of the output ended mid-secret
    for i, p in enumerate(pieces[3:], 3):
        deltas.add(p, {"attempt": 1, "at": 0, "n": i})
    await deltas.flush()  # another event follows
    for seen in ("".join(engine.shown), "".join(engine.journaled)):
        assert SECRET not in seen and SECRET[:7] not in seen and SECRET[15:] not in seen
        assert seen == f"the key is {MASK} ok"
