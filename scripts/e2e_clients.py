#!/usr/bin/env python3
"""End-to-end check of CCGate with the official OpenAI and Anthropic Python SDKs, as a new user would use them.

Not part of CI (it needs the SDKs from PyPI). Normally run through scripts/e2e_clients.sh, which builds the
binaries, starts the mock upstream and ccgate, installs the SDKs into target/e2e-venv and runs this script:

    python3 scripts/e2e_clients.py --gateway http://127.0.0.1:PORT --key TENANT_KEY [--mock http://127.0.0.1:MOCKPORT]

The gateway must sit in front of ccgate-mock (the checks rely on its answers; per-request behaviour is set with
`x-mock-*` headers, which ccgate forwards upstream) and the tenant key must allow claude-sonnet-4-6 plus an
OpenAI alias `gpt-4o` (see e2e_clients.sh). With --mock, the requests the mock received are checked as well.

Checks:
  openai SDK    (base_url = gateway + "/openai/v1"): models.list; non-streaming chat; streaming chat with
                stream_options.include_usage; a full tool round trip (non-streaming and streaming); an image
                (data URL PNG) message; a bad key (AuthenticationError); a 400 (BadRequestError); an upstream
                failure mid-stream (APIError raised by the SDK).
  openai SDK, Responses API (same base_url, /responses): responses.create and responses.stream with text; a
                function-call round trip with two parallel calls; an image; JSON-schema output; reasoning (summary
                and encrypted_content); usage; errors: bad key, disallowed model (--restricted-key), an upstream 400
                and 529, and a budget refusal (--budget-key).
  anthropic SDK (base_url = gateway + "/anthropic"): messages.create and messages.stream.
Exit status 0 only if every check passes.
"""

import argparse
import base64
import json
import struct
import sys
import traceback
import urllib.request
import zlib

import anthropic
import openai

MOCK_TEXT = "Hello from the mock upstream."
CLAUDE_MODEL = "claude-sonnet-4-6"
ALIAS = "gpt-4o"

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
# Make the mock call get_weather({"city": "Paris"}) for a fresh user turn, and acknowledge a tool result.
TOOL_HEADERS = {"x-mock-tool-mode": "auto", "x-mock-tool-input": json.dumps({"city": "Paris"})}


def check(cond, message):
    if not cond:
        raise AssertionError(message)


def tiny_png(width=2, height=2):
    """A valid RGB PNG, built by hand (no Pillow needed)."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


class Run:
    def __init__(self, args):
        self.args = args
        self.oai = openai.OpenAI(base_url=args.gateway.rstrip("/") + "/openai/v1", api_key=args.key, max_retries=0)
        self.ant = anthropic.Anthropic(base_url=args.gateway.rstrip("/") + "/anthropic", api_key=args.key, max_retries=0)
        self.failures = 0

    def mock_requests(self):
        """Messages requests the mock received (only with --mock)."""
        with urllib.request.urlopen(self.args.mock.rstrip("/") + "/_mock/requests", timeout=10) as r:
            reqs = json.load(r)
        return [q for q in reqs if q["path"].endswith("/v1/messages")]

    def step(self, name, fn):
        try:
            detail = fn()
            print(f"PASS {name}: {detail}")
        except Exception as e:  # noqa: BLE001 - report every failure and go on
            self.failures += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}")
            traceback.print_exc(limit=3)

    # ---- OpenAI SDK ----

    def models(self):
        ids = [m.id for m in self.oai.models.list()]
        check(ALIAS in ids and CLAUDE_MODEL in ids, f"models list lacks {ALIAS}/{CLAUDE_MODEL}: {ids}")
        return f"{len(ids)} models, e.g. {ids[:3]}"

    def chat(self):
        r = self.oai.chat.completions.create(
            model=ALIAS, messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi"}]
        )
        check(r.id.startswith("chatcmpl-"), f"id {r.id}")
        check(r.object == "chat.completion", r.object)
        check(r.model == ALIAS, f"model echoed as {r.model}")
        c = r.choices[0]
        check(c.message.role == "assistant" and c.message.content == MOCK_TEXT, f"message {c.message}")
        check(c.finish_reason == "stop", c.finish_reason)
        u = r.usage
        check(u.prompt_tokens > 0 and u.completion_tokens > 0, f"usage {u}")
        check(u.total_tokens == u.prompt_tokens + u.completion_tokens, f"usage {u}")
        if self.args.mock:
            up = self.mock_requests()[-1]
            body = json.loads(up["body"])
            check(body["model"] == CLAUDE_MODEL, f"upstream model {body['model']}")
            check(body["system"][0]["text"] == "Be brief.", f"upstream system {body.get('system')}")
        return f"{c.message.content!r}, usage {u.prompt_tokens}+{u.completion_tokens}"

    def stream_with_usage(self):
        stream = self.oai.chat.completions.create(
            model=ALIAS,
            messages=[{"role": "user", "content": "Say hi, slowly"}],
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"x-mock-chunks": "6"},
        )
        text, finish, usage, n, roles = [], None, None, 0, []
        for chunk in stream:
            n += 1
            if chunk.choices:
                d = chunk.choices[0].delta
                if d.role:
                    roles.append(d.role)
                if d.content:
                    text.append(d.content)
                if chunk.choices[0].finish_reason:
                    finish = chunk.choices[0].finish_reason
            else:
                check(usage is None, "more than one usage chunk")
                usage = chunk.usage
        check("".join(text) == MOCK_TEXT, f"streamed text {''.join(text)!r}")
        check(roles[:1] == ["assistant"], f"roles {roles}")
        check(finish == "stop", f"finish_reason {finish}")
        check(usage is not None, "no final usage chunk")
        check(usage.prompt_tokens > 0 and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens, f"{usage}")
        return f"{n} chunks, {len(text)} content deltas, usage {usage.prompt_tokens}+{usage.completion_tokens}"

    def tool_round_trip(self):
        messages = [{"role": "user", "content": "What's the weather in Paris?"}]
        r = self.oai.chat.completions.create(
            model=ALIAS, messages=messages, tools=[WEATHER_TOOL], extra_headers=TOOL_HEADERS
        )
        c = r.choices[0]
        check(c.finish_reason == "tool_calls", f"finish_reason {c.finish_reason}")
        calls = c.message.tool_calls or []
        check(len(calls) == 1, f"tool_calls {calls}")
        call = calls[0]
        check(call.type == "function" and call.function.name == "get_weather", f"{call}")
        check(json.loads(call.function.arguments) == {"city": "Paris"}, f"arguments {call.function.arguments!r}")
        # Send the assistant turn back as the SDK returned it, plus the tool result.
        messages.append(c.message.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"})
        r2 = self.oai.chat.completions.create(
            model=ALIAS, messages=messages, tools=[WEATHER_TOOL], extra_headers=TOOL_HEADERS
        )
        answer = r2.choices[0].message.content
        check(answer == "Tool result received: 18C and sunny", f"answer {answer!r}")
        check(r2.choices[0].finish_reason == "stop", r2.choices[0].finish_reason)
        if self.args.mock:
            body = json.loads(self.mock_requests()[-1]["body"])
            roles = [m["role"] for m in body["messages"]]
            check(roles == ["user", "assistant", "user"], f"upstream roles {roles}")
            tr = body["messages"][2]["content"][0]
            check(tr["type"] == "tool_result" and tr["tool_use_id"] == call.id, f"upstream tool_result {tr}")
        return f"call {call.id} get_weather({call.function.arguments}) -> {answer!r}"

    def tool_stream(self):
        stream = self.oai.chat.completions.create(
            model=ALIAS,
            messages=[{"role": "user", "content": "What's the weather in Paris?"}],
            tools=[WEATHER_TOOL],
            stream=True,
            extra_headers=TOOL_HEADERS,
        )
        calls, finish = {}, None
        for chunk in stream:
            if not chunk.choices:
                continue
            ch = chunk.choices[0]
            for tc in ch.delta.tool_calls or []:
                slot = calls.setdefault(tc.index, {"id": None, "name": None, "args": "", "ids_seen": 0})
                if tc.id:
                    slot["id"] = tc.id
                    slot["ids_seen"] += 1
                if tc.function and tc.function.name:
                    slot["name"] = tc.function.name
                if tc.function and tc.function.arguments:
                    slot["args"] += tc.function.arguments
            finish = ch.finish_reason or finish
        check(list(calls) == [0], f"tool call indexes {list(calls)}")
        call = calls[0]
        check(call["ids_seen"] == 1 and call["name"] == "get_weather", f"{call}")
        check(json.loads(call["args"]) == {"city": "Paris"}, f"arguments {call['args']!r}")
        check(finish == "tool_calls", f"finish_reason {finish}")
        detail = f"index 0, {call['name']}({call['args']})"
        # The SDK's own stream helper assembles tool calls too; it is strict about the chunk format.
        helper = getattr(self.oai.chat.completions, "stream", None)
        if helper is None and hasattr(self.oai, "beta"):
            helper = getattr(self.oai.beta.chat.completions, "stream", None)
        if helper:
            with helper(
                model=ALIAS,
                messages=[{"role": "user", "content": "What's the weather in Paris?"}],
                tools=[WEATHER_TOOL],
                extra_headers=TOOL_HEADERS,
            ) as s:
                for _ in s:
                    pass
                final = s.get_final_completion()
            tc = final.choices[0].message.tool_calls[0]
            check(json.loads(tc.function.arguments) == {"city": "Paris"}, f"helper arguments {tc.function.arguments!r}")
            detail += "; SDK stream helper agrees"
        return detail

    def image(self):
        png = tiny_png()
        url = "data:image/png;base64," + base64.b64encode(png).decode()
        r = self.oai.chat.completions.create(
            model=ALIAS,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is in this image?"},
                        {"type": "image_url", "image_url": {"url": url, "detail": "low"}},
                    ],
                }
            ],
        )
        check(r.choices[0].message.content == MOCK_TEXT, f"{r.choices[0].message}")
        if self.args.mock:
            body = json.loads(self.mock_requests()[-1]["body"])
            blocks = body["messages"][0]["content"]
            img = next(b for b in blocks if b["type"] == "image")
            check(img["source"] == {"type": "base64", "media_type": "image/png", "data": base64.b64encode(png).decode()}, f"{img}")
            return f"{len(png)}-byte PNG arrived upstream as an image block"
        return f"{len(png)}-byte PNG accepted"

    def errors(self):
        bad = openai.OpenAI(base_url=str(self.oai.base_url), api_key="not-a-key", max_retries=0)
        try:
            bad.chat.completions.create(model=ALIAS, messages=[{"role": "user", "content": "hi"}])
            raise AssertionError("bad key accepted")
        except openai.AuthenticationError as e:
            check(e.status_code == 401 and e.code == "invalid_api_key", f"{e.status_code} {e.code}")
        try:
            self.oai.chat.completions.create(model=ALIAS, messages=[])
            raise AssertionError("empty messages accepted")
        except openai.BadRequestError as e:
            check(e.status_code == 400 and e.param == "messages", f"{e.status_code} param={e.param}")
        return "401 invalid_api_key, 400 param=messages"

    def mid_stream_failure(self):
        stream = self.oai.chat.completions.create(
            model=ALIAS,
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            extra_headers={"x-mock-chunks": "6", "x-mock-fail-after-events": "3"},
            timeout=30,
        )
        got = []
        try:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    got.append(chunk.choices[0].delta.content)
            raise AssertionError(f"stream ended without an error after {''.join(got)!r}")
        except openai.APIError as e:
            check(not isinstance(e, openai.APIConnectionError), f"connection error instead of an error chunk: {e}")
            return f"SDK raised {type(e).__name__} ({e.message!r}) after {len(got)} content delta(s)"

    # ---- OpenAI SDK, Responses API ----

    def responses_create(self):
        r = self.oai.responses.create(model=ALIAS, instructions="Be brief.", input="Say hi", store=False)
        check(r.id.startswith("resp_") and r.object == "response", f"{r.id} {r.object}")
        check(r.status == "completed", r.status)
        check(r.model == ALIAS, f"model echoed as {r.model}")
        check(r.output_text == MOCK_TEXT, f"output_text {r.output_text!r}")
        u = r.usage
        check(u.input_tokens > 0 and u.output_tokens > 0 and u.total_tokens == u.input_tokens + u.output_tokens, f"{u}")
        check(u.input_tokens_details.cached_tokens == 0 and u.output_tokens_details.reasoning_tokens == 0, f"{u}")
        if self.args.mock:
            body = json.loads(self.mock_requests()[-1]["body"])
            check(body["system"][0]["text"] == "Be brief.", f"upstream system {body.get('system')}")
        return f"{r.output_text!r}, usage {u.input_tokens}+{u.output_tokens}={u.total_tokens}"

    def responses_stream(self):
        kinds = []
        with self.oai.responses.stream(model=ALIAS, input="Say hi, slowly", extra_headers={"x-mock-chunks": "6"}) as s:
            for ev in s:
                kinds.append(ev.type)
            final = s.get_final_response()
        check(kinds[:2] == ["response.created", "response.in_progress"], f"first events {kinds[:2]}")
        check(kinds[-1] == "response.completed", f"last event {kinds[-1]}")
        check(kinds.count("response.output_text.delta") == 6, f"{kinds}")
        check(final.output_text == MOCK_TEXT, f"final {final.output_text!r}")
        check(final.usage and final.usage.total_tokens > 0, f"{final.usage}")
        # The raw stream through responses.create(stream=True) too.
        text = "".join(
            ev.delta for ev in self.oai.responses.create(model=ALIAS, input="hi", stream=True)
            if ev.type == "response.output_text.delta"
        )
        check(text == MOCK_TEXT, f"create(stream=True) text {text!r}")
        return f"{len(kinds)} events, {final.output_text!r}"

    def responses_tools(self):
        tool = {"type": "function", "name": "get_weather", "description": "Current weather for a city",
                "parameters": WEATHER_TOOL["function"]["parameters"], "strict": False}
        headers = dict(TOOL_HEADERS, **{"x-mock-tool-calls": "2"})
        inp = [{"role": "user", "content": "Weather in Paris and Lyon?"}]
        r = self.oai.responses.create(model=ALIAS, input=inp, tools=[tool], parallel_tool_calls=True, extra_headers=headers)
        calls = [o for o in r.output if o.type == "function_call"]
        check(len(calls) == 2, f"output {r.output}")
        check(len({c.call_id for c in calls}) == 2, f"call ids {[c.call_id for c in calls]}")
        check(all(c.name == "get_weather" and json.loads(c.arguments) == {"city": "Paris"} for c in calls), f"{calls}")
        # Send the output back as the SDK returned it, plus one output per call (what Codex does).
        inp += [o.model_dump(exclude_none=True) for o in r.output]
        inp += [{"type": "function_call_output", "call_id": c.call_id, "output": f"{18 + i}C"} for i, c in enumerate(calls)]
        r2 = self.oai.responses.create(model=ALIAS, input=inp, tools=[tool], extra_headers=headers)
        check(r2.output_text == "Tool result received: 18C", f"answer {r2.output_text!r}")
        if self.args.mock:
            body = json.loads(self.mock_requests()[-1]["body"])
            uses = [b for b in body["messages"][1]["content"] if b["type"] == "tool_use"]
            results = [b for b in body["messages"][2]["content"] if b["type"] == "tool_result"]
            check([u["id"] for u in uses] == [c.call_id for c in calls], f"upstream tool_use {uses}")
            check([t["tool_use_id"] for t in results] == [c.call_id for c in calls], f"upstream tool_result {results}")
        # Streamed: the SDK's helper assembles the calls from the events.
        with self.oai.responses.stream(model=ALIAS, input="Weather?", tools=[tool], extra_headers=headers) as s:
            args_done = [ev.arguments for ev in s if ev.type == "response.function_call_arguments.done"]
            final = s.get_final_response()
        check(len(args_done) == 2 and len([o for o in final.output if o.type == "function_call"]) == 2, f"{final.output}")
        return f"2 parallel calls {[c.call_id for c in calls]} -> {r2.output_text!r}; streamed too"

    def responses_image(self):
        png = tiny_png()
        url = "data:image/png;base64," + base64.b64encode(png).decode()
        r = self.oai.responses.create(model=ALIAS, input=[{"role": "user", "content": [
            {"type": "input_text", "text": "What is in this image?"},
            {"type": "input_image", "image_url": url, "detail": "low"}]}])
        check(r.output_text == MOCK_TEXT, f"{r.output_text!r}")
        if self.args.mock:
            body = json.loads(self.mock_requests()[-1]["body"])
            img = next(b for b in body["messages"][0]["content"] if b["type"] == "image")
            check(img["source"]["data"] == base64.b64encode(png).decode(), f"{img}")
        return f"{len(png)}-byte PNG arrived upstream as an image block"

    def responses_json_schema(self):
        schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
                  "additionalProperties": False}
        payload = json.dumps({"answer": "42"})
        r = self.oai.responses.create(model=ALIAS, input="Answer in JSON",
                                      text={"format": {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}},
                                      extra_headers={"x-mock-text": payload})
        check(json.loads(r.output_text) == {"answer": "42"}, f"{r.output_text!r}")
        if self.args.mock:
            body = json.loads(self.mock_requests()[-1]["body"])
            fmt = body.get("output_config", {}).get("format", {})
            check(fmt.get("type") == "json_schema" and fmt.get("schema", {}).get("required") == ["answer"], f"upstream {body}")
        return f"{r.output_text} (upstream output_config.format json_schema)"

    def responses_reasoning(self):
        r = self.oai.responses.create(model=ALIAS, input="Think, then answer", reasoning={"effort": "high", "summary": "auto"},
                                      include=["reasoning.encrypted_content"], extra_headers={"x-mock-thinking": "true"})
        rs = [o for o in r.output if o.type == "reasoning"]
        check(len(rs) == 1 and rs[0].summary and rs[0].summary[0].text, f"{r.output}")
        check(rs[0].encrypted_content, "no encrypted_content (the thinking signature)")
        check(r.output_text == MOCK_TEXT, f"{r.output_text!r}")
        if self.args.mock:
            body = json.loads(self.mock_requests()[-1]["body"])
            check("thinking" in body, f"no thinking upstream: {body}")
        # Replayed in the next request, the reasoning item becomes a signed thinking block again.
        inp = [{"role": "user", "content": "Think"}] + [o.model_dump(exclude_none=True) for o in r.output]
        inp.append({"role": "user", "content": "And now?"})
        self.oai.responses.create(model=ALIAS, input=inp, reasoning={"effort": "high"})
        if self.args.mock:
            body = json.loads(self.mock_requests()[-1]["body"])
            block = body["messages"][1]["content"][0]
            check(block["type"] == "thinking" and block["signature"] == rs[0].encrypted_content, f"replayed {block}")
        return f"summary {rs[0].summary[0].text[:40]!r}…, signature round-tripped"

    def responses_errors(self):
        bad = openai.OpenAI(base_url=str(self.oai.base_url), api_key="not-a-key", max_retries=0)
        out = []
        try:
            bad.responses.create(model=ALIAS, input="hi")
            raise AssertionError("bad key accepted")
        except openai.AuthenticationError as e:
            check(e.status_code == 401 and e.code == "invalid_api_key", f"{e.status_code} {e.code}")
            out.append("401 invalid_api_key")
        if self.args.restricted_key:
            restricted = openai.OpenAI(base_url=str(self.oai.base_url), api_key=self.args.restricted_key, max_retries=0)
            try:
                restricted.responses.create(model=ALIAS, input="hi")
                raise AssertionError("disallowed model accepted")
            except openai.PermissionDeniedError as e:
                check(e.status_code == 403 and e.code == "model_not_allowed", f"{e.status_code} {e.code}")
                out.append("403 model_not_allowed")
        try:
            self.oai.responses.create(model=ALIAS, input="hi", extra_headers={"x-mock-status": "400", "x-mock-error-message": "upstream says no"})
            raise AssertionError("upstream 400 not raised")
        except openai.BadRequestError as e:
            check(e.status_code == 400 and "upstream says no" in e.message, f"{e.status_code} {e.message}")
            out.append("upstream 400 -> BadRequestError")
        try:
            self.oai.responses.create(model=ALIAS, input="hi", extra_headers={"x-mock-status": "529"})
            raise AssertionError("upstream 529 not raised")
        except openai.InternalServerError as e:
            check(e.status_code == 503, f"{e.status_code}")
            out.append("upstream 529 -> 503 InternalServerError")
        # Streamed, the SDK does not raise: the stream ends with a response.failed event (final for Codex).
        events = list(self.oai.responses.create(model=ALIAS, input="hi", stream=True, extra_headers={"x-mock-status": "529"}))
        check(events[0].type == "response.created" and events[-1].type == "response.failed", f"{[e.type for e in events]}")
        check(events[-1].response.error.code == "server_is_overloaded", f"{events[-1].response.error}")
        out.append("streamed 529 -> response.failed server_is_overloaded")
        events = list(self.oai.responses.create(model=ALIAS, input="hi", stream=True,
                                                extra_headers={"x-mock-chunks": "6", "x-mock-fail-after-events": "3"}))
        check(events[-1].type == "response.failed" and events[-1].response.error.code == "server_error",
              f"{[e.type for e in events]}")
        out.append("mid-stream break -> response.failed server_error")
        try:
            self.oai.responses.create(model=ALIAS, input="hi", previous_response_id="resp_123")
            raise AssertionError("previous_response_id accepted")
        except openai.BadRequestError as e:
            check(e.param == "previous_response_id", f"param {e.param}")
            out.append("400 previous_response_id")
        if self.args.budget_key:
            budget = openai.OpenAI(base_url=str(self.oai.base_url), api_key=self.args.budget_key, max_retries=0)
            refused = None
            for _ in range(4):
                try:
                    budget.responses.create(model=ALIAS, input="hi")
                except openai.RateLimitError as e:
                    refused = e
                    break
            check(refused is not None, "the budget never ran out")
            check(refused.code == "insufficient_quota", f"code {refused.code}")
            check(refused.response.headers.get("retry-after") is None, "a Retry-After would make Codex retry")
            out.append("budget 429 insufficient_quota")
        return ", ".join(out)

    def agents_sdk(self):
        """The README's OpenAI Agents SDK example, with a function tool the agent calls once."""
        try:
            import asyncio
            from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
        except ImportError:
            return "skipped (pip install openai-agents)"
        set_tracing_disabled(True)
        calls = []

        @function_tool
        def get_weather(city: str) -> str:
            """Current weather for a city."""
            calls.append(city)
            return "18C"

        client = openai.AsyncOpenAI(base_url=str(self.oai.base_url), api_key=self.args.key, max_retries=0,
                                    default_headers=TOOL_HEADERS)
        agent = Agent(name="helper", instructions="Be brief.", tools=[get_weather],
                      model=OpenAIResponsesModel(model=ALIAS, openai_client=client))
        result = asyncio.run(Runner.run(agent, "Weather in Paris?"))
        check(calls == ["Paris"], f"tool calls {calls}")
        check(result.final_output == "Tool result received: 18C", f"final {result.final_output!r}")
        return f"agent called get_weather({calls[0]}) and answered {result.final_output!r}"

    # ---- Anthropic SDK ----

    def anthropic_create(self):
        m = self.ant.messages.create(
            model=CLAUDE_MODEL, max_tokens=128, messages=[{"role": "user", "content": "Say hi"}]
        )
        check(m.type == "message" and m.role == "assistant", f"{m}")
        check(m.content[0].type == "text" and m.content[0].text == MOCK_TEXT, f"{m.content}")
        check(m.stop_reason == "end_turn", m.stop_reason)
        check(m.usage.input_tokens > 0 and m.usage.output_tokens > 0, f"{m.usage}")
        return f"{m.content[0].text!r}, usage in={m.usage.input_tokens} out={m.usage.output_tokens}"

    def anthropic_stream(self):
        with self.ant.messages.stream(
            model=CLAUDE_MODEL,
            max_tokens=128,
            messages=[{"role": "user", "content": "Say hi"}],
            extra_headers={"x-mock-chunks": "5"},
        ) as s:
            text = "".join(s.text_stream)
            final = s.get_final_message()
        check(text == MOCK_TEXT, f"streamed {text!r}")
        check(final.stop_reason == "end_turn" and final.usage.output_tokens > 0, f"{final}")
        return f"{text!r}, usage in={final.usage.input_tokens} out={final.usage.output_tokens}"

    def all(self):
        print(f"openai {openai.__version__}, anthropic {anthropic.__version__}, gateway {self.args.gateway}")
        self.step("openai models.list", self.models)
        self.step("openai chat (non-streaming)", self.chat)
        self.step("openai chat stream + include_usage", self.stream_with_usage)
        self.step("openai tool round trip", self.tool_round_trip)
        self.step("openai streamed tool call", self.tool_stream)
        self.step("openai image data URL", self.image)
        self.step("openai errors", self.errors)
        self.step("openai mid-stream failure", self.mid_stream_failure)
        self.step("openai responses.create", self.responses_create)
        self.step("openai responses.stream", self.responses_stream)
        self.step("openai responses parallel function calls", self.responses_tools)
        self.step("openai responses image", self.responses_image)
        self.step("openai responses json_schema", self.responses_json_schema)
        self.step("openai responses reasoning", self.responses_reasoning)
        self.step("openai responses errors", self.responses_errors)
        self.step("openai-agents Runner with a function tool", self.agents_sdk)
        self.step("anthropic messages.create", self.anthropic_create)
        self.step("anthropic messages.stream", self.anthropic_stream)
        print("ALL PASSED" if self.failures == 0 else f"{self.failures} FAILED")
        return 0 if self.failures == 0 else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gateway", required=True, help="ccgate base URL, e.g. http://127.0.0.1:8080")
    p.add_argument("--key", required=True, help="tenant key (allowed: claude-sonnet-4-6 and the gpt-4o alias)")
    p.add_argument("--mock", help="ccgate-mock base URL, to check what reached the upstream")
    p.add_argument("--restricted-key", help="a tenant key that may not use claude-sonnet-4-6 (403 check)")
    p.add_argument("--budget-key", help="a tenant key whose budget runs out after a request (429 check)")
    sys.exit(Run(p.parse_args()).all())


if __name__ == "__main__":
    main()
