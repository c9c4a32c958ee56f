#!/usr/bin/env python3
"""Checks DeepSeek tool calls and the thinking switch with the official `openai` package.

Run by Tests/TiefseeTests/DeepSeekServerTests.swift against in-process servers on the
deterministic DeepSeek fixtures (V3.1 template, V4 encoder), which answer every request with
one call of get_weather({"q": 7}), after the reasoning when thinking is on. Loopback only.
  python3 scripts/test_openai_deepseek_tools.py --base-url http://127.0.0.1:PORT/v1 --model NAME \
      --reasoning TEXT
"""
import argparse
import json
import sys
import urllib.parse

from openai import OpenAI

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
          "parameters": {"type": "object", "properties": {"q": {"type": "integer"}}, "required": ["q"]}}}]
failures = []


def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"))
    if not cond:
        failures.append(name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--reasoning", required=True)
    a = ap.parse_args()
    host = urllib.parse.urlparse(a.base_url).hostname
    assert host in ("127.0.0.1", "localhost", "::1") or host.startswith("127."), "loopback only"
    client = OpenAI(base_url=a.base_url, api_key="not-needed", max_retries=0, timeout=120)
    msgs = [{"role": "user", "content": "Weather in 7 days?"}]
    for thinking in (False, True):
        tag = "thinking" if thinking else "chat"
        extra = {"chat_template_kwargs": {"thinking": thinking}}
        r = client.chat.completions.create(model=a.model, messages=msgs, tools=TOOLS, max_tokens=60, temperature=0, extra_body=extra)
        m = r.choices[0].message
        calls = m.tool_calls or []
        check(f"{tag}: finish_reason tool_calls", r.choices[0].finish_reason == "tool_calls", r)
        check(f"{tag}: one call", len(calls) == 1 and calls[0].function.name == "get_weather", m)
        check(f"{tag}: arguments", calls and json.loads(calls[0].function.arguments) == {"q": 7}, m)
        check(f"{tag}: no content", not m.content, m.content)
        reasoning = getattr(m, "reasoning_content", None) or (m.model_extra or {}).get("reasoning_content") or ""
        check(f"{tag}: reasoning_content", reasoning == (a.reasoning if thinking else ""), reasoning)

        # Streaming: accumulate tool-call deltas the way client code does.
        acc, content, finish = {}, "", None
        for chunk in client.chat.completions.create(model=a.model, messages=msgs, tools=TOOLS, max_tokens=60, temperature=0,
                                                     stream=True, extra_body=extra):
            if not chunk.choices:
                continue
            ch = chunk.choices[0]
            content += ch.delta.content or ""
            for tc in ch.delta.tool_calls or []:
                e = acc.setdefault(tc.index, {"name": "", "arguments": ""})
                e["name"] += (tc.function.name or "") if tc.function else ""
                e["arguments"] += (tc.function.arguments or "") if tc.function else ""
            finish = ch.finish_reason or finish
        check(f"{tag}: stream finish_reason", finish == "tool_calls", finish)
        check(f"{tag}: stream call", list(acc.values()) == [{"name": "get_weather", "arguments": calls[0].function.arguments if calls else ""}], acc)
        check(f"{tag}: stream content clean", content == "", content)

    # A round trip: the call and its result sent back, as clients do.
    back = msgs + [{"role": "assistant", "content": None, "reasoning_content": a.reasoning,
                    "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"q\": 7}"}}]},
                   {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]
    r = client.chat.completions.create(model=a.model, messages=back, tools=TOOLS, max_tokens=2, temperature=0)
    check("round trip renders", r.choices[0].finish_reason in ("length", "stop", "tool_calls"), r)
    print(f"{len(failures)} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
