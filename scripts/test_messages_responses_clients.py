#!/usr/bin/env python3
"""Drives `tiefsee serve`'s /v1/messages with the official `anthropic` package and its
/v1/responses with the official `openai` package, both unmodified.

Run by Tests/TiefseeTests/MessagesResponsesTests.swift against in-process servers on loopback:
the default model, and a tiny R1-style model that always thinks REASONING then answers ANSWER.
Exits non-zero if any check fails. Only loopback addresses are used.
"""
import argparse
import json
import sys
import urllib.parse

import anthropic
import openai

failures = []


def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"))
    if not cond:
        failures.append(name)


WEATHER = {"name": "get_weather", "description": "Current weather for a city",
           "schema": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30},
                                                        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                      "required": ["city", "unit"], "additionalProperties": False}}


def messages_checks(c, model, rc, rmodel, reasoning, answer):
    msgs = [{"role": "user", "content": "Name three colors."}]
    # The 2026 SDK has no temperature parameter: greedy decoding is asked for in extra_body.
    r = c.messages.create(model=model, max_tokens=12, extra_body={"temperature": 0}, system="You are terse.", messages=msgs)
    text = "".join(b.text for b in r.content if b.type == "text")
    check("messages: text block", r.type == "message" and r.role == "assistant" and len(text) > 0, r)
    check("messages: usage", r.usage.input_tokens > 0 and 0 < r.usage.output_tokens <= 12, r.usage)
    check("messages: stop_reason", r.stop_reason in ("end_turn", "max_tokens"), r.stop_reason)

    with c.messages.stream(model=model, max_tokens=12, extra_body={"temperature": 0}, system="You are terse.", messages=msgs) as s:
        streamed = "".join(s.text_stream)
        final = s.get_final_message()
    check("messages stream: same text as whole (greedy)", streamed == text, (streamed, text))
    check("messages stream: final message", final.stop_reason == r.stop_reason and final.usage.output_tokens == r.usage.output_tokens, final)

    # Content blocks, multi-turn, system as blocks.
    r2 = c.messages.create(model=model, max_tokens=8, extra_body={"temperature": 0}, system=[{"type": "text", "text": "Be brief."}],
                           messages=[{"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                                     {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]},
                                     {"role": "user", "content": "One colour?"}])
    check("messages: block content, multi-turn", r2.content and r2.content[0].type == "text", r2)

    # A forced tool: a tool_use block whose input follows the schema.
    tools = [{"name": WEATHER["name"], "description": WEATHER["description"], "input_schema": WEATHER["schema"]}]
    t = c.messages.create(model=model, max_tokens=60, extra_body={"temperature": 0}, tools=tools,
                          tool_choice={"type": "tool", "name": "get_weather"},
                          messages=[{"role": "user", "content": "How warm is it in Oslo?"}])
    uses = [b for b in t.content if b.type == "tool_use"]
    check("messages: tool_use block", len(uses) == 1 and uses[0].name == "get_weather", t.content)
    ok_input = bool(uses) and isinstance(uses[0].input, dict) and set(uses[0].input) == {"city", "unit"} \
        and uses[0].input["unit"] in ("celsius", "fahrenheit")
    check("messages: tool input follows the schema", ok_input, uses)
    check("messages: stop_reason tool_use", t.stop_reason == "tool_use", t.stop_reason)
    with c.messages.stream(model=model, max_tokens=60, extra_body={"temperature": 0}, tools=tools,
                           tool_choice={"type": "tool", "name": "get_weather"},
                           messages=[{"role": "user", "content": "How warm is it in Oslo?"}]) as s:
        fm = s.get_final_message()
    su = [b for b in fm.content if b.type == "tool_use"]
    check("messages stream: tool_use with the same input", bool(su) and bool(uses) and su[0].input == uses[0].input, fm.content)

    if uses:
        follow = c.messages.create(model=model, max_tokens=20, extra_body={"temperature": 0}, tools=tools, messages=[
            {"role": "user", "content": "How warm is it in Oslo?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": uses[0].id, "name": "get_weather", "input": uses[0].input}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "21 degrees, sunny"}]}])
        ftext = "".join(b.text for b in follow.content if b.type == "text")
        check("messages: tool_result round trip answers", len(ftext) > 0, follow.content)

    try:
        c.messages.create(model=model, max_tokens=8, messages=[{"role": "robot", "content": "x"}])
        check("messages: bad role is a 400", False, "no error")
    except anthropic.BadRequestError as e:
        check("messages: bad role is a 400", e.status_code == 400 and "role" in str(e), e)

    if rc:
        th = rc.messages.create(model=rmodel, max_tokens=40, extra_body={"temperature": 0}, thinking={"type": "enabled", "budget_tokens": 32},
                                messages=[{"role": "user", "content": "What is 2+2?"}])
        kinds = [b.type for b in th.content]
        thought = "".join(b.thinking for b in th.content if b.type == "thinking")
        said = "".join(b.text for b in th.content if b.type == "text")
        check("messages: thinking block then text", kinds == ["thinking", "text"], kinds)
        check("messages: thinking content", thought.strip() == reasoning and said.strip() == answer, (thought, said))
        with rc.messages.stream(model=rmodel, max_tokens=40, extra_body={"temperature": 0},
                                messages=[{"role": "user", "content": "What is 2+2?"}]) as s:
            fm = s.get_final_message()
        check("messages stream: thinking + text blocks",
              [b.type for b in fm.content] == ["thinking", "text"] and fm.content[0].thinking.strip() == reasoning, fm.content)


def responses_checks(o, model, ro, rmodel, reasoning, answer):
    r = o.responses.create(model=model, input="Name three colors.", instructions="You are terse.",
                           max_output_tokens=12, temperature=0)
    check("responses: output_text", r.status in ("completed", "incomplete") and len(r.output_text) > 0, r)
    check("responses: usage", r.usage.input_tokens > 0 and 0 < r.usage.output_tokens <= 12, r.usage)

    deltas, final = [], None
    for ev in o.responses.create(model=model, input="Name three colors.", instructions="You are terse.",
                                 max_output_tokens=12, temperature=0, stream=True):
        if ev.type == "response.output_text.delta":
            deltas.append(ev.delta)
        if ev.type in ("response.completed", "response.incomplete"):
            final = ev.response
    check("responses stream: same text as whole (greedy)", "".join(deltas) == r.output_text, ("".join(deltas), r.output_text))
    check("responses stream: final response", final is not None and final.output_text == r.output_text, final)

    items = [{"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
             {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello!"}]},
             {"role": "user", "content": "One colour?"}]
    r2 = o.responses.create(model=model, input=items, max_output_tokens=8, temperature=0)
    check("responses: input items", len(r2.output_text) > 0, r2)

    tools = [{"type": "function", "name": WEATHER["name"], "description": WEATHER["description"],
              "parameters": WEATHER["schema"], "strict": True}]
    t = o.responses.create(model=model, input="How warm is it in Oslo?", tools=tools, max_output_tokens=60, temperature=0,
                           tool_choice={"type": "function", "name": "get_weather"})
    calls = [i for i in t.output if i.type == "function_call"]
    check("responses: function_call item", len(calls) == 1 and calls[0].name == "get_weather", t.output)
    args = json.loads(calls[0].arguments) if calls else {}
    check("responses: arguments follow the schema", set(args) == {"city", "unit"} and args.get("unit") in ("celsius", "fahrenheit"), args)
    if calls:
        f = o.responses.create(model=model, tools=tools, max_output_tokens=20, temperature=0, input=[
            {"role": "user", "content": "How warm is it in Oslo?"},
            {"type": "function_call", "call_id": calls[0].call_id, "name": "get_weather", "arguments": calls[0].arguments},
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": "21 degrees, sunny"}])
        check("responses: function_call_output round trip", len(f.output_text) > 0, f.output)

    js = o.responses.create(model=model, input="Describe Paris.", max_output_tokens=80, temperature=0,
                            text={"format": {"type": "json_schema", "name": "city", "strict": True, "schema": {
                                "type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                                                 "country": {"type": "string", "maxLength": 20}},
                                "required": ["name", "country"], "additionalProperties": False}}})
    try:
        obj = json.loads(js.output_text)
        check("responses: json_schema output", set(obj) == {"name", "country"}, obj)
    except ValueError as e:
        check("responses: json_schema output", False, (js.output_text, e))

    try:
        o.responses.create(model=model, input="x", previous_response_id="resp_123")
        check("responses: previous_response_id is a 400", False, "no error")
    except openai.BadRequestError as e:
        check("responses: previous_response_id is a 400", e.status_code == 400, e)

    if ro:
        rr = ro.responses.create(model=rmodel, input="What is 2+2?", max_output_tokens=40, temperature=0)
        kinds = [i.type for i in rr.output]
        thought = "".join(c.text for i in rr.output if i.type == "reasoning" for c in (i.content or []))
        check("responses: reasoning item then message", kinds == ["reasoning", "message"], kinds)
        check("responses: reasoning text and answer", thought.strip() == reasoning and rr.output_text.strip() == answer, (thought, rr.output_text))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--reasoning-base-url")
    ap.add_argument("--reasoning-model")
    ap.add_argument("--reasoning")
    ap.add_argument("--answer")
    a = ap.parse_args()
    for url in [a.base_url, a.reasoning_base_url]:
        if url:
            host = urllib.parse.urlparse(url).hostname
            assert host in ("127.0.0.1", "localhost", "::1") or host.startswith("127."), "loopback only"
    root = a.base_url.rstrip("/").removesuffix("/v1")
    rroot = a.reasoning_base_url.rstrip("/").removesuffix("/v1") if a.reasoning_base_url else None
    c = anthropic.Anthropic(base_url=root, api_key="not-needed", max_retries=0, timeout=300)
    rc = anthropic.Anthropic(base_url=rroot, api_key="not-needed", max_retries=0, timeout=300) if rroot else None
    messages_checks(c, a.model, rc, a.reasoning_model, a.reasoning, a.answer)
    o = openai.OpenAI(base_url=a.base_url, api_key="not-needed", max_retries=0, timeout=300)
    ro = openai.OpenAI(base_url=a.reasoning_base_url, api_key="not-needed", max_retries=0, timeout=300) if rroot else None
    responses_checks(o, a.model, ro, a.reasoning_model, a.reasoning, a.answer)
    print(f"{len(failures)} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
