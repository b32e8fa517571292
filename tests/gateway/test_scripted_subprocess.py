"""The scripted gateway as a subprocess: the benchmark's word stream and a JSON script."""

from __future__ import annotations

import re

from lap_tui.gateway import Completion, GatewayClient, TextDelta
from tests.support.scripted_gateway import ScriptedGatewayProcess, error, stream


async def test_words_scenario_streams_numbered_words_with_paragraph_breaks():
    with ScriptedGatewayProcess(args=["--scenario", "words", "--words", "250", "--paragraph-every", "100",
                                      "--done-word", "BIG-DONE", "--models", "bench"]) as proc:
        async with GatewayClient(proc.base_url, "sk-bench") as gw:
            assert await gw.list_models() == ["bench"]
            deltas, done = [], None
            async for ev in gw.stream_chat("bench", [{"role": "user", "content": "go"}]):
                if isinstance(ev, TextDelta):
                    deltas.append(ev.text)
                else:
                    done = ev
            # the default response is not used up: a second request streams again
            again = [ev async for ev in gw.stream_chat("bench", [{"role": "user", "content": "go"}])]
        reqs = proc.requests()
    assert isinstance(done, Completion)
    assert len(deltas) == 251
    assert deltas[0] == "word0 " and deltas[1] == "word1 " and deltas[100] == "\n\nword100 "
    assert done.text.endswith("word249 \n\nBIG-DONE")
    assert done.text.count("\n\n") == 3  # before word100, word200 and the done word
    assert [int(n) for n in re.findall(r"word(\d+)", done.text)] == list(range(250))
    assert again[-1].text == done.text
    assert [r["path"] for r in reqs] == ["/v1/models", "/v1/chat/completions", "/v1/chat/completions"]
    assert reqs[1]["headers"]["authorization"] == "Bearer sk-bench"


async def test_script_file_and_pushing_responses_at_run_time():
    script = {"models": ["m1", "m2"], "api_key": "sk-x", "responses": [error(500), stream(["from ", "file"])]}
    with ScriptedGatewayProcess(script) as proc:
        async with GatewayClient(proc.base_url, "sk-x") as gw:
            first = [ev async for ev in gw.stream_chat("m1", [{"role": "user", "content": "a"}])]
            proc.push(stream(["pushed"]))
            second = [ev async for ev in gw.stream_chat("m1", [{"role": "user", "content": "b"}])]
        assert len(proc.requests()) == 3  # the 500, its retry, the pushed one
    assert first[-1].text == "from file"
    assert second[-1].text == "pushed"
