#!/usr/bin/env python3
"""Renders chat-template fixtures with transformers' apply_chat_template.

Writes fixtures/templates/expected.json: for each case the template name, messages, tools,
add_generation_prompt, extra kwargs, bos/eos tokens and the expected prompt (or "error": true
with the error message when transformers raises). TemplateTests.swift checks that
ChatTemplate renders every case byte-identically.

Usage: python3 scripts/gen_template_fixtures.py
"""
import json
import os
import sys

from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast
import transformers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TDIR = os.path.join(ROOT, "fixtures", "templates")

SPECIAL = {
    "qwen2.5": ("<|endoftext|>", "<|im_end|>"),  # Qwen2.5 has no BOS in its template; bos kept for parity
    "deepseek-r1": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "deepseek-v3": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "deepseek-v3.1": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "llama3.1": ("<|begin_of_text|>", "<|eot_id|>"),
    "mixtral": ("<s>", "</s>"),
    "qwen3": ("<|endoftext|>", "<|im_end|>"),
}


def make_tokenizer(bos, eos):
    vocab = {"[UNK]": 0, bos: 1, eos: 2}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos)


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Zürich"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a time zone (IANA name)",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
    },
}

SYS = {"role": "system", "content": "You are a helpful assistant."}
U1 = {"role": "user", "content": "Hello! Who are you?"}
A1 = {"role": "assistant", "content": "I am an AI assistant. How can I help?"}
U2 = {"role": "user", "content": "Write a haiku about the sea."}
A2 = {"role": "assistant", "content": "Waves fold into foam,\nsalt wind hums an old refrain,\nthe tide keeps its time."}
UNI = {"role": "user", "content": "Grüße aus Zürich 🇨🇭! 你好，世界。Ünïcödé “quotes” — and \\backslash\\ \"dq\"\ttab"}
UW = {"role": "user", "content": "What's the weather in Zürich?"}


def qwen_cases():
    call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich", "unit": "celsius"}}}
        ],
    }
    resp = {"role": "tool", "name": "get_weather", "content": '{"temperature": 21, "condition": "sunny"}'}
    two_calls = {
        "role": "assistant",
        "content": "Let me check both.",
        "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
            {"type": "function", "function": {"name": "get_time", "arguments": {"tz": "Europe/Paris"}}},
        ],
    }
    return [
        ("system_user", [SYS, U1], None, True, {}),
        ("user_default_system", [U1], None, True, {}),
        ("multi_turn_gen", [SYS, U1, A1, U2], None, True, {}),
        ("multi_turn_no_gen", [SYS, U1, A1, U2, A2], None, False, {}),
        ("unicode", [UNI], None, True, {}),
        ("tools_only", [UW], [WEATHER_TOOL, TIME_TOOL], True, {}),
        ("tool_call_roundtrip", [SYS, UW, call, resp], [WEATHER_TOOL], True, {}),
        ("two_tool_calls",
         [UW, two_calls, {"role": "tool", "content": "18C cloudy"}, {"role": "tool", "content": "14:05"},
          {"role": "assistant", "content": "Paris: 18C, cloudy; it is 14:05."}],
         [WEATHER_TOOL, TIME_TOOL], False, {}),
        ("system_midway", [U1, A1, {"role": "system", "content": "Be terse."}, U2], None, True, {}),
    ]


def r1_cases():
    think = {"role": "assistant", "content": "<think>\nThe user greets me. I should answer.\n</think>\n\nHello! I am DeepSeek-R1."}
    call = {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Zürich"}'}},
            {"type": "function", "function": {"name": "get_time", "arguments": '{"tz": "Europe/Zurich"}'}},
        ],
    }
    return [
        ("system_user", [SYS, U1], None, True, {}),
        ("user_only", [U1], None, True, {}),
        ("user_no_gen", [U1], None, False, {}),
        ("think_history_gen", [SYS, U1, think, U2], None, True, {}),
        ("think_last_no_gen", [U1, think], None, False, {}),
        ("two_system", [SYS, {"role": "system", "content": "Answer in French."}, U1], None, True, {}),
        ("unicode", [UNI], None, True, {}),
        ("tool_roundtrip",
         [UW, call, {"role": "tool", "content": "21C sunny"}, {"role": "tool", "content": "14:05"},
          {"role": "assistant", "content": "<think>done</think>It is 21C and sunny."}, U2],
         None, True, {}),
        ("tool_outputs_end", [UW, call, {"role": "tool", "content": "21C sunny"}], None, True, {}),
        ("reasoning_field", [U1, {"role": "assistant", "content": "Hi!", "reasoning_content": "Greet back."}, U2],
         None, True, {}),
    ]


def v3_cases():
    call_none = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Zürich"}'}}],
    }
    return [
        ("system_user", [SYS, U1], None, True, {}),
        ("user_only", [U1], None, True, {}),
        ("multi_turn_gen", [SYS, U1, A1, U2], None, True, {}),
        ("multi_turn_no_gen", [SYS, U1, A1, U2, A2], None, False, {}),
        ("two_system", [SYS, {"role": "system", "content": "Answer in French."}, U1], None, True, {}),
        ("unicode", [UNI], None, True, {}),
        ("tool_outputs", [UW, {"role": "tool", "content": "21C"}, {"role": "tool", "content": "sunny"},
                          {"role": "assistant", "content": "21C and sunny."}], None, True, {}),
        # content None is dropped by transformers, so `content is none` is false and `+ undefined` fails
        ("tool_call_content_none", [UW, call_none], None, True, {}),
    ]


def v31_cases():
    """DeepSeek-V3.1 (tokenizer_config.json chat_template): the `thinking` switch, its tool-call
    format (arguments as the OpenAI JSON text) and prefix (continued) assistant turns."""
    call = {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Zürich"}'}},
            {"type": "function", "function": {"name": "get_time", "arguments": '{"tz": "Europe/Zurich"}'}},
        ],
    }
    call_text = dict(call, content="Checking both.")
    thought = {"role": "assistant", "content": "<think>The user greets me.</think>Hello! I am DeepSeek."}
    prefix = {"role": "assistant", "content": "Let me think", "prefix": True}
    cases = []
    for think in (False, True):
        kw = {"thinking": think}
        t = "_think" if think else ""
        cases += [
            ("system_user" + t, [SYS, U1], None, True, kw),
            ("multi_turn" + t, [SYS, U1, A1, U2], None, True, kw),
            ("multi_turn_no_gen" + t, [SYS, U1, A1, U2, A2], None, False, kw),
            ("think_in_history" + t, [U1, thought, U2], None, True, kw),
            ("tool_roundtrip" + t, [SYS, UW, call, {"role": "tool", "content": "21C"}, {"role": "tool", "content": "14:05"},
                                    {"role": "assistant", "content": "It is 21C at 14:05."}, U2], None, True, kw),
            ("tool_pending_output" + t, [UW, call_text, {"role": "tool", "content": "21C"}], None, True, kw),
            ("prefix" + t, [U1, prefix], None, False, kw),
            ("two_system" + t, [SYS, {"role": "system", "content": "Answer in French."}, U1], None, True, kw),
        ]
    cases += [
        ("default_is_chat", [U1], None, True, {}),
        ("unicode_think", [UNI], None, True, {"thinking": True}),
        ("enable_thinking_ignored", [U1], None, True, {"enable_thinking": True}),
    ]
    return cases


def llama_cases():
    call = {
        "role": "assistant",
        "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich"}}}],
    }
    resp = {"role": "tool", "content": '{"temperature": 21}'}
    resp_obj = {"role": "ipython", "content": {"temperature": 21, "sky": "clear ☀"}}
    return [
        ("system_user", [SYS, U1], None, True, {}),
        ("user_only", [U1], None, True, {}),
        ("multi_turn_no_gen", [{"role": "system", "content": "  padded system  "}, U1, A1, U2, A2], None, False, {}),
        ("unicode", [UNI], None, True, {}),
        ("tools_in_user", [SYS, UW], [WEATHER_TOOL, TIME_TOOL], True, {}),
        ("tool_call_roundtrip", [SYS, UW, call, resp], [WEATHER_TOOL], True, {}),
        ("tools_in_system", [SYS, UW, call, resp_obj], [WEATHER_TOOL], True,
         {"tools_in_user_message": False, "date_string": "05 Mar 2025"}),
        ("builtin_tools", [UW, {"role": "assistant", "tool_calls": [
            {"type": "function", "function": {"name": "brave_search", "arguments": {"query": "weather Zürich"}}}]}],
         None, False, {"builtin_tools": ["brave_search", "code_interpreter"]}),
        ("two_calls_error", [UW, {"role": "assistant", "tool_calls": [
            {"type": "function", "function": {"name": "a", "arguments": {}}},
            {"type": "function", "function": {"name": "b", "arguments": {}}}]}], None, False, {}),
    ]


def mixtral_cases():
    return [
        ("user_only", [U1], None, True, {}),
        ("system_user", [SYS, U1], None, True, {}),
        ("multi_turn_user_last", [SYS, U1, A1, U2], None, True, {}),
        ("multi_turn_assistant_last", [U1, A1, U2, A2], None, False, {}),
        ("unicode", [UNI], None, False, {}),
        ("not_alternating", [U1, U2], None, True, {}),
        ("tool_role", [U1, A1, {"role": "tool", "content": "x"}], None, True, {}),
    ]


def qwen3_cases():
    think = {"role": "assistant", "content": "<think>\nLet me think.\n</think>\n\nHello there!"}
    call = {
        "role": "assistant",
        "content": "<think>I need the weather.</think>Checking.",
        "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich"}}},
                       {"type": "function", "function": {"name": "get_time", "arguments": '{"tz": "Europe/Zurich"}'}}],
    }
    return [
        ("system_user", [SYS, U1], None, True, {}),
        ("no_thinking", [U1], None, True, {"enable_thinking": False}),
        ("thinking_true", [U1], None, True, {"enable_thinking": True}),
        ("think_history", [SYS, U1, think, U2], None, True, {}),
        ("think_last_no_gen", [U1, think], None, False, {}),
        ("reasoning_content_field", [U1, {"role": "assistant", "content": "Hi!", "reasoning_content": "Greet back."}], None, False, {}),
        ("tool_roundtrip", [SYS, UW, call, {"role": "tool", "content": "21C"}, {"role": "tool", "content": "14:05"}],
         [WEATHER_TOOL, TIME_TOOL], True, {}),
        ("multi_step_tool_final",
         [UW, call, {"role": "tool", "content": "21C"}, {"role": "assistant", "content": "<think>ok</think>It is 21C."}],
         [WEATHER_TOOL], False, {}),
        ("unicode", [UNI], None, True, {}),
        ("list_content", [{"role": "user", "content": [{"type": "text", "text": "ignored"}]}], None, True, {}),
    ]


CASES = {
    "qwen2.5": qwen_cases,
    "deepseek-r1": r1_cases,
    "deepseek-v3": v3_cases,
    "deepseek-v3.1": v31_cases,
    "llama3.1": llama_cases,
    "mixtral": mixtral_cases,
    "qwen3": qwen3_cases,
}


# Interpreter snippets rendered by the very environment transformers builds (trim_blocks,
# lstrip_blocks, sandbox, loopcontrols, its tojson/raise_exception/namespace).
SNIPPETS = [
    ("{% if true %}\n  yes\n{% endif %}\nafter", {}),
    ("a\n    {% if true %}\nb\n    {% endif %}\nc", {}),
    ("a  {{- 'x' -}}  \n b", {}),
    ("x {% if true %}y{% endif %}\n  {{ 'z' }}  {# c #}\n w", {}),
    ("  {%+ if true %}x{% endif %}|{% if true +%}\nx{% endif %}", {}),
    ("{% for x in xs %}{{ loop.index }}/{{ loop.revindex0 }}/{{ loop.length }}:{{ x }}{{ '^' if loop.first }}{{ '$' if loop.last }};{% endfor %}",
     {"xs": ["a", "b", "c"]}),
    ("{% for x in [1,2,3,4,5,6] if x is even %}{{ x }}{{ loop.length }} {% else %}none{% endfor %}", {}),
    ("{% for k, v in d.items() %}{{ k }}={{ v }},{% endfor %}{% for k in d %}{{ k }}{% endfor %}", {"d": {"b": 1, "a": 2}}),
    ("{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x > 4 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}),
    ("{% set y = 5 %}{% for x in [1,2] %}[{{ y }}]{% set y = x %}({{ y }}){% endfor %}{{ y }}", {}),
    ("{% set ns = namespace(n=0, s='') %}{% for x in [1,2,3] %}{% set ns.n = ns.n + x %}{% set ns.s = ns.s ~ x %}{% endfor %}{{ ns.n }} {{ ns.s }}", {}),
    ("{% macro m(a, b='B') %}<{{ a }}{{ b }}{{ varargs }}{{ kwargs }}>{% endmacro %}{{ m(1) }}{{ m(1, 2) }}{{ m('x', b=3) }}", {}),
    ("{% macro w() %}[{{ caller() }}]{% endmacro %}{% call w() %}in{% endcall %}{% filter upper %}up{% endfilter %}", {}),
    ("{{ 1/2 }} {{ 7//2 }} {{ -7//2 }} {{ -7%3 }} {{ 2**10 }} {{ 2**-1 }} {{ 1e20 }} {{ 1e-7 }} {{ 0.1+0.2 }} {{ 3.0 }} {{ 10/5 }} {{ 7.5//2 }}", {}),
    ("{{ 'abc'[::-1] }} {{ 'abc'[1:] }} {{ xs[-1] }} {{ xs[1:3] }} {{ xs[::2] }} {{ xs[5:1:-2] }} {{ 'héllo'[1] }}", {"xs": [1, 2, 3, 4, 5, 6]}),
    ("{{ [1,'a',none,true,1.5,{'k':\"v'\"}, ('t',), 'it\\'s'] }} {{ {'a': [1, {'b': none}]} }}", {}),
    ("{{ 'a' ~ 1 ~ none ~ nope ~ true }} {{ nope }}|{{ none }}|{{ true }}|{{ 12 }}", {}),
    ("{{ x is defined }} {{ x is none }} {{ none is none }} {{ 1 is number }} {{ true is number }} {{ 1 is integer }} {{ 1.0 is float }} {{ 'a' is string }} "
     "{{ {} is mapping }} {{ 'a' is iterable }} {{ 1 is iterable }} {{ [] is sequence }} {{ 2 is not none }} {{ true is true }} {{ 1 is true }} "
     "{{ 3 is odd }} {{ 4 is divisibleby 2 }} {{ 'ab' is lower }} {{ 1 is eq 1 }} {{ 'a' is in 'abc' }} {{ x is undefined }} {{ none is defined }}", {}),
    ("{{ true and 'x' }} {{ false or 0 or 'z' }} {{ not none }} {{ 0 and 1 }} {{ [] or {} }} {{ 1 < 2 < 3 }} {{ 1 < 3 < 2 }} {{ 'b' > 'a' }} {{ [1,2] < [1,3] }}", {}),
    ("{{ d.a }} {{ d['b'] }} [{{ d.missing }}] {{ d.get('b') }} {{ d.get('q', 7) }} {{ d.get('q') }} {{ d.keys() | list }} {{ d.values() | list }} {{ 'a' in d }}",
     {"d": {"a": 1, "b": "two"}}),
    ("{{ '\\n'|length }}|{{ '\\u00e9\\x41\\t\\\\' }}|{{ 'a' 'b' }}|{{ \"q'\" }}", {}),
    ("{{ ('a', 'b') }} {{ (1,) }} {{ 'x' * 3 }} {{ [0] * 2 }} {{ 3 * 'ab' }} {{ [1] + [2] }} {{ -(3) }} {{ +4 }}", {}),
    ("{{ 'a-b-c'.split('-') }} {{ ' a  b '.split() }} {{ 'a b c'.rsplit(' ', 1) }} {{ 'a,b,,c'.split(',', 2) }} {{ ' x y z '.split(none, 1) }} {{ '<b>'.startswith(('<', 'x')) }} {{ 'abc'.endswith('bc') }}", {}),
    ("{{ '  x '.strip() }}|{{ 'xxhixx'.strip('x') }}|{{ '  l'.lstrip() }}|{{ 'r  '.rstrip() }}|{{ 'Hello'.replace('l', 'L') }}|{{ 'Hello'.replace('l', 'L', 1) }}|"
     "{{ 'ab'.upper() }}|{{ 'AB'.lower() }}|{{ \"hello world-foo's\".title() }}|{{ 'abc'.find('c') }}|{{ 'abc'.find('z') }}|{{ 'aXbXc'.count('X') }}|{{ '-'.join(['a','b']) }}|{{ 'hELLo'.capitalize() }}", {}),
    ("{{ '{} and {name} {{x}}'.format(1, name='n') }} {{ '%s=%d (%r)' % ('a', 3, 'q') }} {{ '%.2f' % 3.14159 }} {{ 'a\\nb\\r\\nc'.splitlines() }}", {}),
    ("{{ '  x  ' | trim }}|{{ 'xyx' | trim('x') }}|{{ 3.7 | int }}|{{ '4.5' | int }}|{{ 'z' | int }}|{{ 2.5 | round }}|{{ 3.5 | round }}|{{ 3.14159 | round(2) }}|"
     "{{ 3.1 | round(0, 'ceil') }}|{{ -3 | abs }}|{{ '1.5' | float }}|{{ 'q' | float }}|{{ true | int }}", {}),
    ("{{ [3,1,2] | sort | list }} {{ ['b','A','a'] | sort }} {{ ['b','A','a'] | sort(case_sensitive=true) }} {{ [1,3,2] | sort(reverse=true) }} "
     "{{ {'b':1,'a':2} | dictsort }} {{ {'b':1,'a':2} | dictsort(by='value') }} {{ {'b':1} | items | list }} {{ [1,2] | reverse | list }} {{ 'abc' | reverse }}", {}),
    ("{{ ['a','b'] | join(', ') }} {{ [1, none, 'x'] | join }} {{ 'hello world-foo(bar' | title }} {{ 'hELLO wORLD' | capitalize }} {{ 'Ab' | upper }}{{ 'Ab' | lower }} "
     "{{ 'abc' | list }} {{ {'k': 1} | list }} {{ 'x' | replace('x', 'y') }}", {}),
    ("{{ x | default('dflt') }} {{ '' | default('e', true) }} {{ '' | default('e') }} {{ none | default('n') }} {{ x | d('d') }} {{ [1,2,3] | first }}{{ [1,2,3] | last }} "
     "{{ 'abc' | length }} {{ [1,2] | count }} {{ {'a':1} | length }} {{ x | length }} {{ 'abc' | first }}", {}),
    ("{{ users | map(attribute='name') | join }} {{ users | selectattr('on') | map(attribute='name') | list }} {{ users | rejectattr('on') | list | length }} "
     "{{ users | sort(attribute='name') | map(attribute='name') | join }} {{ users | selectattr('name', 'equalto', 'a') | list }} {{ users | map(attribute='age', default=0) | list }} "
     "{{ users | map(attribute='meta.k') | list }} {{ users | unique(attribute='on') | list | length }} {{ users | sum(attribute='n') }} {{ users | max(attribute='n') }}",
     {"users": [{"name": "b", "on": True, "n": 2, "meta": {"k": "x"}}, {"name": "a", "on": False, "n": 5, "meta": {"k": "y"}}, {"name": "c", "on": True, "n": 1, "meta": {}}]}),
    ("{{ [1,2,3,4] | select('odd') | list }} {{ [1,2,3,4] | reject('odd') | list }} {{ [1,0,'',2] | select | list }} {{ ['a','A','b'] | unique | list }} "
     "{{ ['x','y'] | map('upper') | list }} {{ ['1','2'] | map('int') | sum }} {{ [3, 1] | min }} {{ ['b', 'C'] | max }}", {}),
    ("{{ 'a\\nb\\n\\nc' | indent(2) }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'a\\n\\nb' | indent(width='>', blank=true) }}|{{ 'a\\n' | indent }}", {}),
    ("{{ 5 | string }}{{ 'x' | safe }} {{ 'one two, three' | wordcount }} {{ [1,2,3] | batch(2) | list }} {{ [1,2,3] | batch(2, 0) | list }} {{ [1,2,3] | sum }} {{ '<&>' | e }}", {}),
    ("{{ v | tojson }}|{{ v | tojson(indent=2) }}|{{ v | tojson(separators=(',', ':'), sort_keys=true) }}|{{ 'é😀' | tojson(ensure_ascii=true) }}|{{ 'x<y>&' | tojson }}|{{ 1.0 | tojson }}|{{ (1, 2) | tojson }}",
     {"v": {"name": "Zürich \"q\"\n", "n": [1, 2.5, None, True], "e": {}, "z": []}}),
    ("{{ v | tojson(indent=4) }}", {"v": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]}),
    ("{% set x %}  block {{ 1 + 1 }}{% endset %}[{{ x }}]{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set t = 1, 2 %}{{ t }}", {}),
    ("{% with a = 3 %}{{ a }}{% endwith %}{{ a is defined }}{% generation %}gen{% endgeneration %}{% raw %}{{ raw }}{% endraw %}", {}),
    ("{% for m in messages %}{% if m.role == 'user' %}U:{{ m.content }}{% elif m.role == 'assistant' %}A:{{ m.content | trim }}{% else %}?{% endif %}\n{% endfor %}",
     {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  yo  "}, {"role": "x", "content": ""}]}),
    ("{{ messages[0].content.split('</think>')[-1].lstrip('\\n') }}|{{ (messages | last).role }}|{{ messages | selectattr('role', 'eq', 'user') | list | length }}",
     {"messages": [{"role": "user", "content": "<think>a</think>\n\nb"}]}),
    ("{{ strftime_now('%Y-%m-%d') | length }} {{ range(3) | list }} {{ range(1, 10, 3) | list }} {{ range(5, 0, -2) | list }} {{ dict(a=1) }} {{ namespace(a=1).a }}", {}),
    ("{{ 'yes' if x else 'no' }}|{{ 'a' if true }}|{{ 'a' if false }}|{{ 1 if 0 else 2 if 0 else 3 }}|{{ [] if false else 'ok' }}", {}),
    ("\t{% if true %}\n\tx\n\t{%- endif %}\n\t{{ 'y' }}\n  {# note %} #}\nz{#- a -#}  \n\n  {%- set q = 1 -%}  w", {}),
    ("a {%- if true %} b {% endif -%} c\n{% for i in [1, 2] -%}\n  {{ i }}\n{%- endfor %}\nend\n\n", {}),
    ("{{ '\\'' }}{{ \"\\\"\" }}{{ 'tab\\there' }}{{ 'back\\\\slash' }}{{ 'unknown\\qesc' }}{{ '\\u263a\\U0001F600' }}", {}),
    ("{% for a, b in [(1, 2), [3, 4]] %}{{ a }}{{ b }}{% endfor %}{% for (a, b) in {'x': 1}.items() %}{{ a }}{{ b }}{% endfor %}", {}),
    ("{% if x is not defined %}nd{% endif %}{% if not x %}nx{% endif %}{% if x is none or x is string %}no{% else %}el{% endif %}", {}),
    ("{% set t = {'a': {'b': [10, 20]}} %}{{ t.a.b[1] }} {{ t['a']['b'][0] }} {{ t.a.b | length }} {{ t.a.c is defined }} {{ t.a.items() | list }}", {}),
    ("{{ msgs | selectattr('role', 'in', ['user', 'tool']) | map(attribute='content') | join('|') }} {{ msgs[1:] | map(attribute='role') | list }} {{ (msgs | first).content }}",
     {"msgs": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}, {"role": "tool", "content": "t"}]}),
    ("{{ 1 == 1.0 }} {{ true == 1 }} {{ 'a' == 'a' }} {{ [1] == [1] }} {{ none == false }} {{ {'a':1} == {'a':1} }} {{ x == y }} {{ 1 != 2 }}", {}),
]
SNIPPET_ERRORS = [
    "{{ 'a' + 1 }}", "{{ foo.bar }}", "{{ x + 1 }}", "{% if %}", "{{ 1 + }}", "{% for x in y %}", "{% endfor %}",
    "{{ raise_exception('boom') }}", "{{ none + 1 }}", "{{ [1] | nosuch }}", "{{ 1 / 0 }}", "{% set a, b = [1] %}",
    "{{ 'a' < 1 }}", "{{ 'unterminated }}", "{{ x is nosuchtest }}", "{% break %}", "{{ undefined_thing() }}",
    "{{ ''.join([1]) }}", "{{ range(1000000) }}", "{{ namespace(_x=1) }}", "{{ {}.update({}) }}",
]
# Deliberate divergence: list.append is allowed here (the sandbox blocks it in transformers).


def fuzz_cases(name, count=15, seed=1234):
    """Random conversations (fixed seed) mixing roles, tool calls, None content, reasoning and odd text."""
    import random
    rng = random.Random(f"{seed}-{name}")
    words = ["hi", "Zürich", "<think>", "</think>", "\n", "  ", '{"a": 1}', "你好", "x y", "'q'", "\\", "tool", "😀", "\t"]

    def content():
        return "".join(rng.choice(words) for _ in range(rng.randint(0, 6)))

    def msg():
        r = rng.random()
        if r < 0.35:
            return {"role": "user", "content": content()}
        if r < 0.65:
            m = {"role": "assistant", "content": content()}
            if rng.random() < 0.25:
                m["tool_calls"] = [{"type": "function", "function": {"name": rng.choice(["get_weather", "get_time"]),
                                    "arguments": rng.choice([{"city": content()}, '{"tz": "x"}'])}}
                                   for _ in range(rng.randint(1, 2))]
                if rng.random() < 0.5:
                    m["content"] = None
            if rng.random() < 0.2:
                m["reasoning_content"] = content()
            return m
        if r < 0.8:
            return {"role": "tool", "content": content()}
        return {"role": "system", "content": content()}

    out = []
    for i in range(count):
        msgs = [msg() for _ in range(rng.randint(1, 6))]
        if rng.random() < 0.5 and msgs[0]["role"] != "system":
            msgs.insert(0, {"role": "system", "content": content()})
        tools = rng.choice([None, [WEATHER_TOOL], [WEATHER_TOOL, TIME_TOOL]])
        extra = rng.choice([{}, {"enable_thinking": False}, {"date_string": "1 Jan 2025"}])
        out.append((f"fuzz{i}", msgs, tools, rng.random() < 0.5, extra))
    return out


def snippet_entries():
    from transformers.utils.chat_template_utils import _compile_jinja_template
    out = []
    for src, ctx in SNIPPETS:
        e = {"source": src, "context": ctx}
        try:
            e["expected"] = _compile_jinja_template(src).render(**ctx)
        except Exception as ex:
            e["error"] = True
            e["error_message"] = f"{type(ex).__name__}: {ex}"
            print("SNIPPET ERROR", repr(src), e["error_message"], file=sys.stderr)
        out.append(e)
    for src in SNIPPET_ERRORS:
        e = {"source": src, "context": {}}
        try:
            e["expected"] = _compile_jinja_template(src).render()
            print("SNIPPET DID NOT FAIL", repr(src), file=sys.stderr)
        except Exception as ex:
            e["error"] = True
            e["error_message"] = f"{type(ex).__name__}: {ex}"
        out.append(e)
    return out


def main():
    out = []
    for name, fn in CASES.items():
        template = open(os.path.join(TDIR, name + ".jinja"), encoding="utf-8").read()
        bos, eos = SPECIAL[name]
        tok = make_tokenizer(bos, eos)
        for case, messages, tools, gen, extra in fn() + fuzz_cases(name):
            entry = {
                "template": name,
                "case": case,
                "messages": messages,
                "tools": tools,
                "add_generation_prompt": gen,
                "bos_token": bos,
                "eos_token": eos,
                "extra": extra,
            }
            try:
                entry["expected"] = tok.apply_chat_template(
                    messages, tools=tools, chat_template=template, add_generation_prompt=gen, tokenize=False, **extra
                )
            except Exception as e:  # the template raised: the Swift side must throw too
                entry["error"] = True
                entry["error_message"] = f"{type(e).__name__}: {e}"
            out.append(entry)
            print(name, case, "ERROR " + entry["error_message"] if "error" in entry else "ok", file=sys.stderr)
    doc = {"generator": f"transformers {transformers.__version__}", "cases": out, "snippets": snippet_entries()}
    # One case per line keeps the file compact and diffs readable.
    with open(os.path.join(TDIR, "expected.json"), "w", encoding="utf-8") as f:
        f.write('{"generator": %s,\n' % json.dumps(doc["generator"]))
        for key in ("cases", "snippets"):
            f.write(' "%s": [\n' % key)
            f.write(",\n".join("  " + json.dumps(e, ensure_ascii=False) for e in doc[key]))
            f.write("\n ]" + ("," if key == "cases" else "") + "\n")
        f.write("}\n")
    json.load(open(os.path.join(TDIR, "expected.json"), encoding="utf-8"))


if __name__ == "__main__":
    main()
