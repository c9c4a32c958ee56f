#!/usr/bin/env python3
"""Renders DeepSeek-V3.2 / V4 prompt fixtures with DeepSeek's own Python encoders.

DeepSeek-V3.2 and V4 ship no Jinja chat template; their model repositories hold
`encoding/encoding_dsv32.py` and `encoding/encoding_dsv4.py` instead. Those files are not part
of this repository: put copies in a folder and pass it with --reference (default
/tmp/dsref). Sources used for the committed fixtures:
  - encoding_dsv32.py: DeepSeek-V3.2 (MIT), as vendored by vLLM in
    vllm/tokenizers/deepseek_v32_encoding.py (first version), with the blank lines of its
    tools prompt restored (DeepSeek's own test outputs have them; the vLLM and SGLang copies
    lost them) and vLLM's `reasoning` alias of `reasoning_content` removed (SGLang's copy
    reads `reasoning_content` only);
  - encoding_dsv4.py: DeepSeek-V4-Flash's encoding/encoding_dsv4.py.
When the folder also holds DeepSeek's test data (v32tests/test_input*.json + test_output*.txt,
v4tests/test_input_N.json + test_output_N.txt), the copies are first checked against it.

Writes fixtures/templates/deepseek_encodings.json: per case the encoder, messages, tools,
options and the expected prompt (or "error": true when the encoder raises).
DeepSeekEncodingTests.swift checks that the Swift encoders render each byte-identically.

The request glue (shared with DeepSeekEncoding.render in Swift): tools go on the first system
message, or on a new empty system message put in front when the first is not one; thinking,
drop_thinking and (V4) reasoning_effort are passed to encode_messages.

Usage: python3 scripts/gen_deepseek_encoding_fixtures.py [--reference DIR]
"""
import argparse
import copy
import json
import os
import random
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fixtures", "templates", "deepseek_encodings.json")

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name, e.g. Zürich"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}}
SEARCH = {"type": "function", "function": {
    "name": "search", "description": "Search the web",
    "parameters": {"type": "object", "properties": {
        "query": {"type": "string"}, "num_results": {"type": "integer"},
        "filters": {"type": "object"}}, "required": ["query"]}}}


def call(cid, name, args):
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": json.dumps(args, ensure_ascii=False)}}


SYS = {"role": "system", "content": "You are a helpful assistant."}
U1 = {"role": "user", "content": "Hello! Who are you?"}
A1 = {"role": "assistant", "content": "I am DeepSeek.", "reasoning_content": "The user greets me; introduce myself."}
U2 = {"role": "user", "content": "What's the weather in Zürich and in Paris?"}
CALLS2 = {"role": "assistant", "content": "", "reasoning_content": "Two cities: call the tool twice.",
          "tool_calls": [call("c1", "get_weather", {"city": "Zürich", "unit": "celsius"}),
                         call("c2", "get_weather", {"city": "Paris"})]}
R1 = {"role": "tool", "tool_call_id": "c1", "content": '{"temperature": 21, "condition": "sunny"}'}
R2 = {"role": "tool", "tool_call_id": "c2", "content": "18C, cloudy"}
FINAL = {"role": "assistant", "content": "Zürich: 21°C and sunny; Paris: 18°C, cloudy.",
         "reasoning_content": "Both results are in; summarise."}
U3 = {"role": "user", "content": "Thanks. And tomorrow?"}
UNI = {"role": "user", "content": "Grüße 🇨🇭 你好，世界 “quotes” \\backslash\\ \"dq\"\ttab\nnew line"}
ODD_ARGS = {"role": "assistant", "content": None, "reasoning_content": "Search with odd arguments.",
            "tool_calls": [call("s1", "search", {"query": "Ünïcödé <b>&amp;</b> \"q\"", "num_results": 3,
                                                 "filters": {"lang": ["de", "fr"], "safe": True, "since": None, "score": 0.5}})]}
ODD_RESULT = {"role": "tool", "tool_call_id": "s1", "content": "result: 你好\n\nsecond paragraph"}


def conversations():
    """(name, messages, tools, encoders) — encoders: which of v32/v4 the case applies to."""
    both = ("v32", "v4")
    cases = [
        ("user_only", [U1], None, both),
        ("system_user", [SYS, U1], None, both),
        ("multi_turn", [SYS, U1, A1, U3], None, both),
        ("multi_turn_ends_assistant", [SYS, U1, A1], None, both),
        ("two_systems", [SYS, {"role": "system", "content": "Answer in German."}, U1], None, both),
        ("unicode", [UNI], None, both),
        ("empty_contents", [{"role": "system", "content": ""}, {"role": "user", "content": ""}], None, both),
        ("tools_first_turn", [SYS, U2], [WEATHER, SEARCH], both),
        ("tools_no_system", [U2], [WEATHER], both),
        ("tool_calls_pending_results", [SYS, U2, CALLS2, R1, R2], [WEATHER], both),
        ("tool_results_out_of_order", [SYS, U2, CALLS2, R2 | {"tool_call_id": "c2"}, R1], [WEATHER], both),
        ("tool_roundtrip_final", [SYS, U2, CALLS2, R1, R2, FINAL], [WEATHER], both),
        ("tool_roundtrip_next_user", [SYS, U2, CALLS2, R1, R2, FINAL, U3], [WEATHER], both),
        ("odd_arguments", [U2, ODD_ARGS, ODD_RESULT], [SEARCH], both),
        ("content_and_calls", [U2, {"role": "assistant", "content": "Let me check.", "tool_calls": [call("c9", "get_weather", {"city": "Bern"})]},
                               {"role": "tool", "tool_call_id": "c9", "content": "12C"}], [WEATHER], both),
        ("reasoning_alias_ignored", [U1, {"role": "assistant", "content": "Hi.", "reasoning": "not read: only reasoning_content is"}], None, both),
        ("developer", [SYS, {"role": "developer", "content": "Find the capital of Peru."}], [SEARCH], both),
        ("developer_then_user", [{"role": "developer", "content": "Be brief."}, A1, U3], None, both),
        ("response_format", [{"role": "system", "content": "Reply in JSON.", "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}}, U1], None, both),
        ("tool_first_error", [{"role": "tool", "content": "orphan"}, U1], None, ("v32",)),
        ("no_reasoning_after_user", [U1, {"role": "assistant", "content": "Hi."}], None, both),
        ("latest_reminder", [SYS, {"role": "latest_reminder", "content": "2026-02-21, Zürich, App, Deutsch"}, U1], None, both),
        ("task_query", [SYS, {"role": "user", "content": "best pizza in Rome", "task": "query"}], None, ("v4",)),
        ("task_action", [SYS, {"role": "user", "content": "book a table", "task": "action"}, {"role": "assistant", "content": "search"}], None, ("v4",)),
        ("wo_eos", [U1, {"role": "assistant", "content": "partial answer", "reasoning_content": "r", "wo_eos": True}], None, ("v4",)),
        ("tool_content_parts", [U2, CALLS2, {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "part one"}, {"type": "image"}, {"type": "text", "text": "part two"}]},
                                R2], [WEATHER], ("v4",)),
        ("user_after_tool_result", [U2, CALLS2, R1, R2, {"role": "user", "content": "Also Bern please."}], [WEATHER], both),
        ("unknown_role", [{"role": "narrator", "content": "x"}], None, both),
        ("bad_arguments", [U2, {"role": "assistant", "content": "", "reasoning_content": "r", "tool_calls": [{"id": "b", "type": "function", "function": {"name": "get_weather", "arguments": "{not json"}}]},
                           {"role": "tool", "tool_call_id": "b", "content": "?"}], [WEATHER], both),
    ]
    return cases + fuzz_conversations()


def fuzz_conversations(count=12, seed=4321):
    rng = random.Random(seed)
    words = ["hi", "Zürich", "<think>", "</think>", "\n", "  ", '{"a": 1}', "你好", "x y", "'q'", "\\", "😀", "\t", "<｜User｜>"]

    def text():
        return "".join(rng.choice(words) for _ in range(rng.randint(0, 5)))

    out = []
    for i in range(count):
        msgs = []
        if rng.random() < 0.6:
            msgs.append({"role": "system", "content": text()})
        n = 0
        for _ in range(rng.randint(1, 4)):
            msgs.append({"role": "user", "content": text()})
            if rng.random() < 0.7:
                a = {"role": "assistant", "content": text(), "reasoning_content": text() or "r"}
                if rng.random() < 0.4:
                    k = rng.randint(1, 2)
                    a["tool_calls"] = [call(f"f{n + j}", "get_weather", {"city": text(), "unit": rng.choice(["celsius", 3, None, [1, 2]])}) for j in range(k)]
                    msgs.append(a)
                    for j in reversed(range(k)) if rng.random() < 0.5 else range(k):
                        msgs.append({"role": "tool", "tool_call_id": f"f{n + j}", "content": text()})
                    n += k
                    if rng.random() < 0.5:
                        msgs.append({"role": "assistant", "content": text(), "reasoning_content": text() or "r2"})
                else:
                    msgs.append(a)
        tools = rng.choice([None, [WEATHER], [WEATHER, SEARCH]])
        out.append((f"fuzz{i}", msgs, tools, ("v32", "v4")))
    return out


OPTIONS = [
    {"thinking": False},
    {"thinking": True},
    {"thinking": True, "drop_thinking": False},
]
V4_EXTRA_OPTIONS = [{"thinking": True, "reasoning_effort": "max"}, {"thinking": False, "reasoning_effort": "max"},
                    {"thinking": True, "reasoning_effort": "high"}]


def render(enc, which, messages, tools, opts):
    msgs = copy.deepcopy(messages)
    if tools:
        if msgs and msgs[0].get("role") == "system":
            msgs[0] = dict(msgs[0], tools=tools)
        else:
            msgs.insert(0, {"role": "system", "tools": tools})
    kw = dict(thinking_mode="thinking" if opts.get("thinking") else "chat", drop_thinking=opts.get("drop_thinking", True))
    if which == "v4":
        kw["reasoning_effort"] = opts.get("reasoning_effort")
    return enc.encode_messages(msgs, **kw)


def check_official(ref, e32, e4):
    ok = total = 0
    d = os.path.join(ref, "v32tests")
    if os.path.isdir(d):
        for name in ["", "_search_w_date", "_search_wo_date"]:
            td = json.load(open(os.path.join(d, f"test_input{name}.json"), encoding="utf-8"))
            msgs = td["messages"]
            if "tools" in td:
                msgs[0]["tools"] = td["tools"]
            gold = open(os.path.join(d, f"test_output{name}.txt"), encoding="utf-8").read()
            total += 1
            ok += e32.encode_messages(msgs, thinking_mode="thinking").strip() == gold.strip()
    d = os.path.join(ref, "v4tests")
    if os.path.isdir(d):
        for i in range(1, 5):
            td = json.load(open(os.path.join(d, f"test_input_{i}.json"), encoding="utf-8"))
            if isinstance(td, dict):
                msgs = td["messages"]
                msgs[0]["tools"] = td["tools"]
            else:
                msgs = td
            gold = open(os.path.join(d, f"test_output_{i}.txt"), encoding="utf-8").read()
            total += 1
            ok += e4.encode_messages(msgs, thinking_mode="chat" if i == 4 else "thinking") == gold
    print(f"reference encoders reproduce {ok}/{total} of DeepSeek's own test outputs", file=sys.stderr)
    if ok != total:
        sys.exit("the reference copies do not match DeepSeek's test data")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", default="/tmp/dsref")
    args = ap.parse_args()
    sys.path.insert(0, args.reference)
    import encoding_dsv32 as e32
    import encoding_dsv4 as e4
    check_official(args.reference, e32, e4)
    encoders = {"v32": e32, "v4": e4}
    out = []
    for name, messages, tools, which_list in conversations():
        for which in which_list:
            for opts in OPTIONS + (V4_EXTRA_OPTIONS if which == "v4" and name in ("system_user", "tools_first_turn", "multi_turn") else []):
                entry = {"encoder": which, "case": name, "messages": messages, "tools": tools, "options": opts}
                try:
                    entry["expected"] = render(encoders[which], which, messages, tools, opts)
                except Exception as e:  # the encoder raised: the Swift side must throw too
                    entry["error"] = True
                    entry["error_message"] = f"{type(e).__name__}: {e}"
                out.append(entry)
    n_ok = sum("error" not in e for e in out)
    print(f"{len(out)} cases, {n_ok} rendered, {len(out) - n_ok} raise", file=sys.stderr)
    with open(OUT, "w", encoding="utf-8") as f:
        f.write('{"generator": "DeepSeek encoding_dsv32.py / encoding_dsv4.py",\n "cases": [\n')
        f.write(",\n".join("  " + json.dumps(e, ensure_ascii=False) for e in out))
        f.write("\n ]\n}\n")
    json.load(open(OUT, encoding="utf-8"))


if __name__ == "__main__":
    main()
