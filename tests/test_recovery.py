"""Tool calls recovered from text (research/providers.md F1), argument repair (F2/F5), name cleaning (F4)."""

from __future__ import annotations

import json
import random
import re
import time

import pytest

from agent.llm.recovery import (
    Recovered,
    Repair,
    clean_tool_name,
    recover_tool_calls,
    repair_arguments,
    text_protocol_instructions,
)

TOOLS: dict[str, dict] = {
    "read_file": {
        "type": "object",
        "properties": {"path": {"type": "string"}, "offset": {"type": "integer"}},
        "required": ["path"],
    },
    "write_file": {
        "type": "object",
        "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
        "required": ["path", "content"],
    },
    "get_weather": {"type": "object", "properties": {"location": {"type": "string"}}},
    "add": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}},
    "square_the_number": {"type": "object", "properties": {"input_num": {"type": "integer"}}},
    "glob": {"type": "object", "properties": {"pattern": {"type": "string"}}},
    "GrepTool": {"type": "object", "properties": {"pattern": {"type": "string"}, "path": {"type": "string"}}},
    "str_replace_editor": {
        "type": "object",
        "properties": {
            "command": {"type": "string", "enum": ["view", "str_replace"]},
            "path": {"type": "string"},
            "old_str": {"type": "string"},
            "new_str": {"type": "string"},
            "view_range": {"type": "array", "items": {"type": "integer"}},
            "dry_run": {"type": "boolean"},
            "options": {"type": "object"},
            "limit": {"type": ["integer", "null"]},
            "ratio": {"type": "number"},
            "tag": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "anything": {},
        },
    },
    "todo_write": {"type": "object", "properties": {"todos": {"type": "array"}}},
}

CALL_ID = re.compile(r"call_[0-9a-f]{8}")


def args(call) -> dict:
    return json.loads(call.arguments)


# ------------------------------------------------------------------------------------------
# Kimi K2 section tokens


K2_LEAK = (
    "<|tool_calls_section_begin|><|tool_call_begin|>functions.read_file:3<|tool_call_argument_begin|>"
    '{"path": "src/main.py"}<|tool_call_end|><|tool_calls_section_end|>'
)


def test_kimi_raw_leak_fixture_from_providers_md():
    # the exact `content` of the raw-leak fixture (§2.1), decoded from its JSON response body
    body = json.loads(
        '{"choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant",'
        '"content":"<|tool_calls_section_begin|><|tool_call_begin|>functions.read_file:3<|tool_call_argument_begin|>'
        '{\\"path\\": \\"src/main.py\\"}<|tool_call_end|><|tool_calls_section_end|>","tool_calls":null}}]}'
    )
    content = body["choices"][0]["message"]["content"]
    assert content == K2_LEAK
    rec = recover_tool_calls(content, TOOLS)
    assert isinstance(rec, Recovered)
    assert rec.format == "kimi"
    assert rec.text == ""
    assert rec.rejected == []
    assert len(rec.calls) == 1
    call = rec.calls[0]
    assert call.id == "functions.read_file:3"  # verbatim: Kimi needs its ids echoed back
    assert call.name == "read_file"
    assert args(call) == {"path": "src/main.py"}


def test_kimi_native_example_from_guide():
    text = (
        "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>"
        '{"city": "Beijing"}<|tool_call_end|><|tool_calls_section_end|>'
    )
    rec = recover_tool_calls(text, TOOLS)
    assert [(c.id, c.name, c.arguments) for c in rec.calls] == [
        ("functions.get_weather:0", "get_weather", '{"city": "Beijing"}')
    ]


def test_kimi_singular_section_tokens_and_bare_ids_and_several_calls():
    text = (
        "I'll add and then read.\n"
        "<|tool_call_section_begin|>"
        '<|tool_call_begin|>add:0<|tool_call_argument_begin|>{"a": 2, "b": 3}<|tool_call_end|>'
        '<|tool_call_begin|> functions.read_file:1 <|tool_call_argument_begin|> {"path": "a.py"} <|tool_call_end|>'
        "<|tool_call_section_end|>"
    )
    rec = recover_tool_calls(text, TOOLS)
    assert rec.format == "kimi"
    assert [c.id for c in rec.calls] == ["add:0", "functions.read_file:1"]
    assert [c.name for c in rec.calls] == ["add", "read_file"]
    assert args(rec.calls[0]) == {"a": 2, "b": 3}
    assert rec.calls[1].arguments == '{"path": "a.py"}'
    assert rec.text == "I'll add and then read."


def test_kimi_missing_section_end_and_call_end():
    text = 'Reading.<|tool_calls_section_begin|><|tool_call_begin|>functions.read_file:7<|tool_call_argument_begin|>{"path": "x"}'
    rec = recover_tool_calls(text, TOOLS)
    assert [(c.id, c.name) for c in rec.calls] == [("functions.read_file:7", "read_file")]
    assert args(rec.calls[0]) == {"path": "x"}
    assert rec.text == "Reading."


def test_kimi_missing_section_end_keeps_text_after_last_call():
    text = (
        '<|tool_calls_section_begin|><|tool_call_begin|>functions.read_file:0<|tool_call_argument_begin|>{"path": "a"}'
        "<|tool_call_end|>\nI will wait for the result."
    )
    rec = recover_tool_calls(text, TOOLS)
    assert [c.id for c in rec.calls] == ["functions.read_file:0"]
    assert rec.text == "I will wait for the result."


def test_kimi_missing_section_end_with_two_calls():
    text = (
        '<|tool_calls_section_begin|><|tool_call_begin|>functions.add:0<|tool_call_argument_begin|>{"a": 1, "b": 2}'
        '<|tool_call_end|><|tool_call_begin|>functions.add:1<|tool_call_argument_begin|>{"a": 3, "b": 4}'
    )
    rec = recover_tool_calls(text, TOOLS)
    assert [c.id for c in rec.calls] == ["functions.add:0", "functions.add:1"]
    assert [args(c) for c in rec.calls] == [{"a": 1, "b": 2}, {"a": 3, "b": 4}]


def test_kimi_call_without_section_tokens():
    text = 'ok <|tool_call_begin|>functions.read_file:2<|tool_call_argument_begin|>{"path": "b"}<|tool_call_end|> done'
    rec = recover_tool_calls(text, TOOLS)
    assert [(c.id, c.name) for c in rec.calls] == [("functions.read_file:2", "read_file")]
    assert rec.text == "ok done"


def test_kimi_foreign_id_without_argument_token_is_rejected():
    # SGLang #8613: K2 imitated rewritten ids, and the leak has no <|tool_call_argument_begin|>
    text = (
        "<|tool_calls_section_begin|><|tool_call_begin|>call_426ce0000001"
        '{"path": "a"}<|tool_call_end|><|tool_calls_section_end|>'
    )
    rec = recover_tool_calls(text, TOOLS)
    assert rec.calls == []
    assert len(rec.rejected) == 1
    assert "call_426ce0000001" in rec.rejected[0]
    assert "<|tool_call_argument_begin|>" in rec.rejected[0]
    assert rec.text == ""


def test_kimi_unknown_tool_rejected_with_offered_list():
    text = (
        "<|tool_calls_section_begin|><|tool_call_begin|>functions.delete_repo:0<|tool_call_argument_begin|>{}"
        "<|tool_call_end|><|tool_calls_section_end|>"
    )
    rec = recover_tool_calls(text, {"read_file": {}, "glob": {}})
    assert rec.calls == []
    assert rec.format == "kimi"
    (msg,) = rec.rejected
    assert "delete_repo" in msg
    assert "glob, read_file" in msg


def test_kimi_leak_inside_reasoning_text():
    # K2-Thinking puts calls inside its reasoning (sglang PR #18199); the agent scans the reasoning too
    reasoning = (
        "The user wants the main module. Let me look at it first.\n"
        "<|tool_calls_section_begin|><|tool_call_begin|>functions.read_file:0<|tool_call_argument_begin|>"
        '{"path": "src/main.py", "offset": 10}<|tool_call_end|><|tool_calls_section_end|>'
    )
    rec = recover_tool_calls(reasoning, TOOLS)
    assert [(c.id, c.name) for c in rec.calls] == [("functions.read_file:0", "read_file")]
    assert args(rec.calls[0]) == {"path": "src/main.py", "offset": 10}
    assert rec.text == "The user wants the main module. Let me look at it first."


def test_kimi_truncated_arguments_kept_raw_for_repair():
    text = '<|tool_calls_section_begin|><|tool_call_begin|>functions.write_file:4<|tool_call_argument_begin|>{"path": "a.py", "content": "impo'
    rec = recover_tool_calls(text, TOOLS)
    (call,) = rec.calls
    assert call.arguments == '{"path": "a.py", "content": "impo'
    repair = repair_arguments(call.arguments)
    assert repair.arguments is None
    assert "cut off" in repair.error and "character 28" in repair.error


# ------------------------------------------------------------------------------------------
# Qwen3-Coder XML


def test_qwen_hermes_misconfig_content_from_vllm_21571():
    content = "<tool_call>\n<function=square_the_number>\n<parameter=input_num>\n1024\n\n\n</tool_call>"
    rec = recover_tool_calls(content, TOOLS)
    assert rec.format == "qwen_xml"
    (call,) = rec.calls
    assert call.name == "square_the_number"
    assert args(call) == {"input_num": 1024}
    assert isinstance(args(call)["input_num"], int)
    assert CALL_ID.fullmatch(call.id)
    assert rec.text == ""


def test_qwen_native_example_with_text_before():
    content = (
        "I need to find the base service class.\n\n"
        "<tool_call>\n<function=GrepTool>\n<parameter=pattern>\nclass BaseService\\(\n</parameter>\n"
        "<parameter=path>\n.\n</parameter>\n</function>\n</tool_call>"
    )
    rec = recover_tool_calls(content, TOOLS)
    (call,) = rec.calls
    assert call.name == "GrepTool"
    assert args(call) == {"pattern": "class BaseService\\(", "path": "."}
    assert rec.text == "I need to find the base service class."


def test_qwen_code_indentation_preserved_in_string_parameter():
    code = "def add(a, b):\n    if a:\n        return a + b\n\n    return b\n"
    content = (
        "<tool_call>\n<function=write_file>\n<parameter=path>\ncalc/ops.py\n</parameter>\n"
        f"<parameter=content>\n{code}\n</parameter>\n</function>\n</tool_call>"
    )
    (call,) = recover_tool_calls(content, TOOLS).calls
    assert args(call) == {"path": "calc/ops.py", "content": code}


def test_qwen_leading_indentation_of_first_line_is_kept():
    content = (
        "<tool_call>\n<function=str_replace_editor>\n<parameter=command>\nstr_replace\n</parameter>\n"
        "<parameter=old_str>\n    return a - b\n</parameter>\n<parameter=new_str>\n    return a + b\n"
        "</parameter>\n</function>\n</tool_call>"
    )
    (call,) = recover_tool_calls(content, TOOLS).calls
    assert args(call) == {
        "command": "str_replace",
        "old_str": "    return a - b",
        "new_str": "    return a + b",
    }


def test_qwen_only_one_newline_stripped_each_side():
    content = (
        "<tool_call>\n<function=write_file>\n<parameter=path>\na.txt\n</parameter>\n"
        "<parameter=content>\n\nline\n\n</parameter>\n</function>\n</tool_call>"
    )
    (call,) = recover_tool_calls(content, TOOLS).calls
    assert args(call)["content"] == "\nline\n"


def test_qwen_missing_parameter_close_tags():
    content = (
        "<tool_call>\n<function=str_replace_editor>\n<parameter=command>\nview\n"
        "<parameter=path>\n/repo/a.py\n<parameter=view_range>\n[1, 20]\n</function>\n</tool_call>"
    )
    (call,) = recover_tool_calls(content, TOOLS).calls
    assert args(call) == {"command": "view", "path": "/repo/a.py", "view_range": [1, 20]}


def test_qwen_missing_function_and_tool_call_close_at_end_of_text():
    content = (
        "Let me read it.\n<tool_call>\n<function=read_file>\n<parameter=path>\nsrc/app.py\n</parameter>\n"
    )
    rec = recover_tool_calls(content, TOOLS)
    (call,) = rec.calls
    assert args(call) == {"path": "src/app.py"}
    assert rec.text == "Let me read it."


def test_qwen_missing_tool_call_close_keeps_text_after_function():
    content = "<tool_call>\n<function=read_file>\n<parameter=path>\na.py\n</parameter>\n</function>\n\nWaiting for it."
    rec = recover_tool_calls(content, TOOLS)
    assert args(rec.calls[0]) == {"path": "a.py"}
    assert rec.text == "Waiting for it."


def test_qwen_degenerate_inline_form():
    content = "<tool_call> <function=glob>\n<parameter=pattern> **/package.json   </tool_call>"
    rec = recover_tool_calls(content, TOOLS)
    (call,) = rec.calls
    assert call.name == "glob"
    assert args(call) == {"pattern": "**/package.json"}
    assert rec.text == ""


def test_qwen_several_blocks_unique_ids_and_text_between():
    content = (
        "First the readme.\n<tool_call>\n<function=read_file>\n<parameter=path>\nREADME.md\n</parameter>\n"
        "</function>\n</tool_call>\nThen the setup.\n<tool_call>\n<function=read_file>\n<parameter=path>\n"
        "setup.py\n</parameter>\n</function>\n</tool_call>\n<tool_call>\n<function=add>\n<parameter=a>\n2\n"
        "</parameter>\n<parameter=b>\n3.5\n</parameter>\n</function>\n</tool_call>"
    )
    rec = recover_tool_calls(content, TOOLS)
    assert [c.name for c in rec.calls] == ["read_file", "read_file", "add"]
    assert [args(c) for c in rec.calls] == [{"path": "README.md"}, {"path": "setup.py"}, {"a": 2, "b": 3.5}]
    ids = [c.id for c in rec.calls]
    assert len(set(ids)) == 3 and all(CALL_ID.fullmatch(i) for i in ids)
    assert rec.text == "First the readme.\nThen the setup."


def test_qwen_parameters_converted_by_schema():
    content = (
        "<tool_call>\n<function=str_replace_editor>\n"
        "<parameter=command>\nview\n</parameter>\n"
        "<parameter=view_range>\n[1, 40]\n</parameter>\n"
        "<parameter=dry_run>\nTrue\n</parameter>\n"
        '<parameter=options>\n{"encoding": "utf-8", "strict": false}\n</parameter>\n'
        "<parameter=limit>\nnull\n</parameter>\n"
        "<parameter=ratio>\n0.75\n</parameter>\n"
        "<parameter=tag>\n42\n</parameter>\n"
        "<parameter=anything>\n7\n</parameter>\n"
        "<parameter=unknown_param>\n[1]\n</parameter>\n"
        "</function>\n</tool_call>"
    )
    (call,) = recover_tool_calls(content, TOOLS).calls
    assert args(call) == {
        "command": "view",
        "view_range": [1, 40],
        "dry_run": True,
        "options": {"encoding": "utf-8", "strict": False},
        "limit": None,
        "ratio": 0.75,
        "tag": "42",  # string allowed by the schema: stays a string
        "anything": "7",  # no type: string
        "unknown_param": "[1]",  # not in the schema: string (validation reports it)
    }


def test_qwen_unconvertible_values_stay_strings_for_validation():
    content = (
        "<tool_call>\n<function=str_replace_editor>\n<parameter=view_range>\n[1, 2\n</parameter>\n"
        "<parameter=limit>\nten\n</parameter>\n<parameter=dry_run>\nmaybe\n</parameter>\n</function>\n</tool_call>"
    )
    (call,) = recover_tool_calls(content, TOOLS).calls
    assert args(call) == {"view_range": "[1, 2", "limit": "ten", "dry_run": "maybe"}


def test_qwen_excessive_precision_integer():
    # llama.cpp PR #15019: the 30B model writes 72.0000
    content = "<tool_call>\n<function=square_the_number>\n<parameter=input_num>\n72.0000\n</parameter>\n</function>\n</tool_call>"
    (call,) = recover_tool_calls(content, TOOLS).calls
    assert args(call) == {"input_num": 72}


def test_qwen_in_code_fence():
    content = (
        "Here is the call:\n```xml\n<tool_call>\n<function=read_file>\n<parameter=path>\na.py\n</parameter>\n"
        "</function>\n</tool_call>\n```\nThanks."
    )
    rec = recover_tool_calls(content, TOOLS)
    assert args(rec.calls[0]) == {"path": "a.py"}
    assert rec.text == "Here is the call:\nThanks."


def test_qwen_function_without_tool_call_wrapper():
    content = "<function=read_file>\n<parameter=path>\nmain.go\n</parameter>\n</function>"
    rec = recover_tool_calls(content, TOOLS)
    assert rec.format == "qwen_xml"
    assert args(rec.calls[0]) == {"path": "main.go"}


def test_qwen_unknown_function_rejected():
    content = "<tool_call>\n<function=execute_bash>\n<parameter=command>\nls\n</parameter>\n</function>\n</tool_call>"
    rec = recover_tool_calls(content, TOOLS)
    assert rec.calls == []
    (msg,) = rec.rejected
    assert "'execute_bash'" in msg and "read_file" in msg and "write_file" in msg
    assert rec.text == ""


@pytest.mark.parametrize(
    "raw_name",
    [
        "str_replace_editor</parameter",
        "str_replace_editor</function>",
        "str_replace_editor>",
        " str_replace_editor ",
    ],
)
def test_qwen_function_name_with_residue_is_cleaned(raw_name):
    content = (
        f"<tool_call>\n<function={raw_name}\n<parameter=command>\nview\n</parameter>\n"
        "<parameter=path>\n/a\n</parameter>\n</function>\n</tool_call>"
    )
    rec = recover_tool_calls(content, TOOLS)
    assert rec.rejected == []
    (call,) = rec.calls
    assert call.name == "str_replace_editor"
    assert args(call) == {"command": "view", "path": "/a"}


def test_qwen_json_body_inside_function():
    content = '<tool_call>\n<function=read_file>\n{"path": "x.py"}\n</function>\n</tool_call>'
    (call,) = recover_tool_calls(content, TOOLS).calls
    assert args(call) == {"path": "x.py"}


# ------------------------------------------------------------------------------------------
# Hermes JSON


def test_hermes_basic_and_whitespace():
    content = 'Sure.\n<tool_call>\n  {"name": "read_file", "arguments": {"path": "a.py"}}  \n</tool_call>\n'
    rec = recover_tool_calls(content, TOOLS)
    assert rec.format == "hermes"
    (call,) = rec.calls
    assert (call.name, args(call)) == ("read_file", {"path": "a.py"})
    assert CALL_ID.fullmatch(call.id)
    assert rec.text == "Sure."


def test_hermes_arguments_as_string_and_parameters_key_and_several_blocks():
    content = (
        '<tool_call>{"name": "read_file", "arguments": "{\\"path\\": \\"a.py\\"}"}</tool_call>\n'
        '<tool_call>{"name": "add", "parameters": {"a": 1, "b": 2}}</tool_call>\n'
        '<tool_call>{"name": "glob"}</tool_call>'
    )
    rec = recover_tool_calls(content, TOOLS)
    assert [c.name for c in rec.calls] == ["read_file", "add", "glob"]
    assert rec.calls[0].arguments == '{"path": "a.py"}'
    assert args(rec.calls[1]) == {"a": 1, "b": 2}
    assert rec.calls[2].arguments == "{}"
    assert len({c.id for c in rec.calls}) == 3
    assert rec.text == ""


def test_hermes_name_with_prefix_and_quotes_residue():
    content = '<tool_call>{"name": "functions.read_file", "arguments": {"path": "x"}}</tool_call>'
    assert recover_tool_calls(content, TOOLS).calls[0].name == "read_file"


def test_hermes_in_code_fences_inside_and_outside():
    outside = '```json\n<tool_call>\n{"name": "read_file", "arguments": {"path": "a"}}\n</tool_call>\n```'
    inside = '<tool_call>\n```json\n{"name": "read_file", "arguments": {"path": "a"}}\n```\n</tool_call>\nok'
    for content in (outside, inside):
        rec = recover_tool_calls(content, TOOLS)
        assert [(c.name, args(c)) for c in rec.calls] == [("read_file", {"path": "a"})]
    assert recover_tool_calls(outside, TOOLS).text == ""
    assert recover_tool_calls(inside, TOOLS).text == "ok"


def test_hermes_string_holding_closing_tag_is_not_cut():
    payload = {"name": "write_file", "arguments": {"path": "doc.md", "content": "Use </tool_call> to end."}}
    content = f"<tool_call>{json.dumps(payload)}</tool_call>"
    (call,) = recover_tool_calls(content, TOOLS).calls
    assert args(call)["content"] == "Use </tool_call> to end."


def test_hermes_missing_close_tag_keeps_following_text():
    content = '<tool_call>{"name": "read_file", "arguments": {"path": "a"}}\nI will wait.'
    rec = recover_tool_calls(content, TOOLS)
    assert args(rec.calls[0]) == {"path": "a"}
    assert rec.text == "I will wait."


def test_hermes_trailing_comma_repaired_and_invalid_block_rejected_precisely():
    ok = '<tool_call>{"name": "read_file", "arguments": {"path": "a",},}</tool_call>'
    assert args(recover_tool_calls(ok, TOOLS).calls[0]) == {"path": "a"}
    cut = '<tool_call>{"name": "write_file", "arguments": {"path": "a.py", "content": "x = '
    rec = recover_tool_calls(cut, TOOLS)
    assert rec.calls == []
    (msg,) = rec.rejected
    assert "'write_file'" in msg and "cut off" in msg and "unclosed string" in msg


def test_hermes_unknown_name_rejected():
    rec = recover_tool_calls('<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>', {"read_file": {}})
    assert rec.calls == []
    assert rec.rejected == ["unknown tool 'rm_rf' in a <tool_call> block; the offered tools are: read_file"]


def test_hermes_list_of_calls_in_one_block():
    content = '<tool_call>[{"name": "add", "arguments": {"a": 1, "b": 1}}, {"name": "glob", "arguments": {"pattern": "*"}}]</tool_call>'
    rec = recover_tool_calls(content, TOOLS)
    assert [c.name for c in rec.calls] == ["add", "glob"]


# ------------------------------------------------------------------------------------------
# gpt-oss harmony


def test_harmony_full_form_from_providers_md():
    content = (
        "<|channel|>analysis<|message|>The user asks about the weather; call functions.get_weather.<|end|>"
        '<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"location":"SF"}<|call|>'
    )
    rec = recover_tool_calls(content, TOOLS)
    assert rec.format == "harmony"
    (call,) = rec.calls
    assert (call.name, args(call)) == ("get_weather", {"location": "SF"})
    assert CALL_ID.fullmatch(call.id)
    assert rec.text == ""
    assert "<|" not in rec.text
    assert rec.reasoning == "The user asks about the weather; call functions.get_weather."


@pytest.mark.parametrize(
    "content",
    [
        '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"location":"SF"}<|call|>',
        '<|start|>assistant<|channel|>commentary to=functions.get_weather<|message|>{"location":"SF"}<|call|>',
        '<|start|>assistant<|channel|>commentary to=get_weather json<|message|>{"location":"SF"}<|call|>',
        '<|start|>assistant to=functions.get_weather<|channel|>commentary <|constrain|>json<|message|>{"location":"SF"}',
    ],
)
def test_harmony_variants(content):
    rec = recover_tool_calls(content, TOOLS)
    assert [(c.name, args(c)) for c in rec.calls] == [("get_weather", {"location": "SF"})]
    assert rec.text == ""


def test_harmony_final_channel_text_kept_and_analysis_dropped():
    content = (
        "<|channel|>analysis<|message|>Simple greeting.<|end|>"
        "<|start|>assistant<|channel|>final<|message|>Hello! How can I help?<|return|>"
    )
    rec = recover_tool_calls(content, TOOLS)
    assert rec.calls == []
    assert rec.text == "Hello! How can I help?"
    assert rec.format == "harmony"
    assert rec.reasoning == "Simple greeting."


def test_harmony_unknown_builtin_tool_rejected():
    content = '<|channel|>analysis<|message|>search<|end|><|start|>assistant<|channel|>commentary to=browser.search <|constrain|>json<|message|>{"query":"x"}<|call|>'
    rec = recover_tool_calls(content, TOOLS)
    assert rec.calls == []
    assert "browser.search" in rec.rejected[0]


# ------------------------------------------------------------------------------------------
# mixed, prose, robustness of the text


def test_prose_mentioning_tool_call_produces_nothing():
    for text in (
        "Models like Qwen3-Coder emit <tool_call> tags; vLLM's hermes parser expects JSON inside them.",
        "Wrap it as `<tool_call>{...}</tool_call>` in the text protocol.",
        "The <function=...> syntax is Qwen's.",
        "Use <tool_call> and </tool_call> around the call.",
    ):
        rec = recover_tool_calls(text, TOOLS)
        assert rec.calls == [] and rec.rejected == []
        assert rec.text == text
        assert rec.format is None


def test_text_without_calls_is_returned_verbatim():
    text = "  Some answer.\n\n```python\nprint('hi')\n```\n\n"
    rec = recover_tool_calls(text, TOOLS)
    assert rec == Recovered(calls=[], text=text, format=None, rejected=[])


def test_text_around_blocks_kept_verbatim_inside():
    before = "Step 1:  keep   these  spaces.\n    indented line\n"
    after = "\nAfter the call:\n  * item"
    content = before + '<tool_call>{"name": "glob", "arguments": {"pattern": "*.py"}}</tool_call>' + after
    rec = recover_tool_calls(content, TOOLS)
    assert rec.text == "Step 1:  keep   these  spaces.\n    indented line\nAfter the call:\n  * item"
    rec = recover_tool_calls("\n    x = 1\n<tool_call>" + content.split("<tool_call>")[1], TOOLS)
    assert rec.text == "    x = 1\nAfter the call:\n  * item"


def test_mixed_formats_calls_in_text_order():
    content = (
        '<tool_call>{"name": "glob", "arguments": {"pattern": "*"}}</tool_call>\n'
        "<|tool_calls_section_begin|><|tool_call_begin|>functions.add:5<|tool_call_argument_begin|>"
        '{"a": 1, "b": 2}<|tool_call_end|><|tool_calls_section_end|>'
    )
    rec = recover_tool_calls(content, TOOLS)
    assert [c.name for c in rec.calls] == ["glob", "add"]
    assert rec.calls[1].id == "functions.add:5"
    assert rec.format == "hermes"  # the format of the first call


def test_empty_inputs():
    assert recover_tool_calls("", TOOLS) == Recovered(text="")
    rec = recover_tool_calls(K2_LEAK, {})
    assert rec.calls == [] and "(none)" in rec.rejected[0]


# ------------------------------------------------------------------------------------------
# clean_tool_name


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("read_file", "read_file"),
        ("str_replace_editor</parameter", "str_replace_editor"),
        ("read_file</function>", "read_file"),
        ('"read_file"', "read_file"),
        ("`read_file`", "read_file"),
        ("functions.read_file", "read_file"),
        ("functions.read_file:3", "read_file"),
        ("read_file:0", "read_file"),
        ("read_file>", "read_file"),
        ("  read_file\n", "read_file"),
        ("<function=read_file>", "read_file"),
        ("function=read_file", "read_file"),
        ("str_replace </parameter", "str_replace"),  # OpenHands software-agent-sdk #2818
        ("command=str_replace</parameter", "str_replace"),  # OpenHands #10039
        ("READ_FILE", "read_file"),
        ("read_files", None),
        ("delete_repo", None),
        ("", None),
        ("</parameter>", None),
    ],
)
def test_clean_tool_name(raw, expected):
    offered = ["read_file", "str_replace_editor", "str_replace", "glob"]
    assert clean_tool_name(raw, offered) == expected


def test_clean_tool_name_keeps_other_namespaces_apart():
    # gpt-oss's built-in browser tool is not our `search`
    assert clean_tool_name("browser.search", ["search"]) is None
    assert clean_tool_name("default_api.search", ["search"]) == "search"


def test_clean_tool_name_case_insensitive_only_when_unique():
    assert clean_tool_name("glob", iter(["Glob", "GLOB"])) is None
    assert clean_tool_name("Glob", ["Glob", "GLOB"]) == "Glob"


# ------------------------------------------------------------------------------------------
# repair_arguments: safe repairs


def assert_repaired(rep: Repair, expected: dict, note_part: str) -> None:
    assert rep.error is None, rep.error
    assert rep.repaired is True
    assert json.loads(rep.arguments) == expected
    assert note_part in rep.note, rep.note


def test_valid_arguments_unchanged_verbatim():
    raw = '{"path":  "a.py",\n "offset": 3}'
    assert repair_arguments(raw) == Repair(arguments=raw, repaired=False, note=None, error=None)
    assert repair_arguments(raw, TOOLS["read_file"]) == Repair(arguments=raw)


@pytest.mark.parametrize("raw", ["", "   ", "\n\t"])
def test_empty_arguments(raw):
    assert_repaired(repair_arguments(raw), {}, "empty")


def test_code_fences():
    assert_repaired(repair_arguments('```json\n{"path": "a.py"}\n```'), {"path": "a.py"}, "code fence")
    assert_repaired(repair_arguments('```\n{"a": 1,}\n```'), {"a": 1}, "trailing comma")


def test_trailing_commas():
    assert_repaired(repair_arguments('{"a": 1,}'), {"a": 1}, "removed a trailing comma")
    assert_repaired(
        repair_arguments('{"a": [1, 2, ], "b": {"c": 1,},}'), {"a": [1, 2], "b": {"c": 1}}, "commas"
    )


def test_commas_inside_strings_untouched():
    assert_repaired(repair_arguments('{"a": "x,}", "b": [1,],}'), {"a": "x,}", "b": [1]}, "trailing commas")


def test_extra_data_after_one_object():
    rep = repair_arguments('{"path": "a.py"}{"path": "b.py"}')
    assert_repaired(rep, {"path": "a.py"}, "extra data")
    assert "character 16" in rep.note
    assert_repaired(repair_arguments('{"a": 1}}'), {"a": 1}, "extra data")
    assert_repaired(repair_arguments('{"a": 1,}\n<|tool_call_end|>'), {"a": 1}, "extra data")


def test_double_encoded_object():
    raw = json.dumps(json.dumps({"path": "a.py", "n": 1}))
    assert_repaired(repair_arguments(raw), {"path": "a.py", "n": 1}, "double-encoded")


def test_invalid_backslash_escapes_from_k26():
    # physics-intern PR #14: K2.6 writes \_ and \( inside strings
    raw = '{"pattern": "foo\\_bar\\(x\\)", "ok": "a\\nb \\u00e9 \\\\ \\/"}'
    rep = repair_arguments(raw)
    assert_repaired(rep, {"pattern": "foo\\_bar\\(x\\)", "ok": "a\nb é \\ /"}, "invalid escape")
    assert "\\_" in rep.note and "\\(" in rep.note


def test_raw_control_characters_inside_strings():
    raw = '{"content": "def f():\n\treturn 1\n", "path": "a.py"}'
    assert_repaired(
        repair_arguments(raw), {"content": "def f():\n\treturn 1\n", "path": "a.py"}, "control characters"
    )


def test_python_literals_outside_strings_only():
    raw = '{"a": True, "b": False, "c": None, "d": "True None"}'
    assert_repaired(
        repair_arguments(raw), {"a": True, "b": False, "c": None, "d": "True None"}, "Python literals"
    )


def test_several_repairs_at_once_all_noted():
    raw = '```json\n{"a": True, "p": "x\\_y", "s": "l1\nl2",}\n```'
    rep = repair_arguments(raw)
    assert_repaired(rep, {"a": True, "p": "x\\_y", "s": "l1\nl2"}, "code fence")
    for part in ("trailing comma", "escape", "control", "Python"):
        assert part in rep.note


def test_null_arguments_read_as_empty_object():
    assert_repaired(repair_arguments("null"), {}, "null")


def test_dict_input_from_native_ollama():
    rep = repair_arguments({"path": "a"})  # type: ignore[arg-type]
    assert json.loads(rep.arguments) == {"path": "a"}


# ------------------------------------------------------------------------------------------
# repair_arguments: refusals with precise messages


def refused(raw: str) -> str:
    rep = repair_arguments(raw)
    assert rep.arguments is None
    assert rep.repaired is False
    assert rep.error
    return rep.error


def test_refuses_unclosed_string():
    raw = '{"path": "src/app.py", "content": "import os'
    err = refused(raw)
    assert raw.index('"import') == 34
    assert err.startswith("the JSON is cut off: an unclosed string starts at character 34")
    assert "send the complete arguments" in err


def test_refuses_unclosed_braces_and_brackets():
    err = refused('{"a": [1, 2')
    assert "cut off at character 11" in err
    assert "']}'" in err
    assert "array opened at character 6" in err and "object opened at character 0" in err
    err = refused('{"a": {"b": 1}')
    assert "cut off" in err and "'}'" in err and "object opened at character 0" in err


def test_refuses_truncated_literal():
    err = refused('{"recursive": tru')
    assert "cut off" in err and "'tru'" in err


def test_refuses_non_object_top_level():
    assert "an array" in refused("[1, 2]")
    assert "a number" in refused("42")
    assert "a boolean" in refused("true")
    assert "JSON string" in refused('"just text"')


def test_refuses_unquoted_keys_and_single_quotes():
    err = refused('{path: "a.py"}')
    assert "unquoted text 'path' at character 1" in err and "double quotes" in err
    err = refused("{'path': 'a.py'}")
    assert "single-quoted" in err and "character 1" in err


def test_refuses_unescaped_quote_with_hint():
    err = refused('{"cmd": "echo "hi""}')
    assert "'hi' at character 15" in err and "unescaped double quote" in err


def test_refuses_missing_comma_with_position_in_original_text():
    # the escape repair before the error shifts the repaired text; the position must still be the model's
    raw = '{"p": "a\\_b" "q": 1}'
    err = refused(raw)
    assert "Expecting ',' delimiter" in err
    pos = raw.index('"q"')
    assert f"character {pos}" in err


def test_refuses_mismatched_closer_and_stray_closer():
    err = refused('{"a": [1}')
    assert "'}' at character 8 does not match the '[' opened at character 6" in err
    assert "unexpected '}' at character 0" in refused("}")


def test_refuses_nan():
    assert "NaN at character 6" in refused('{"a": NaN}')


def test_refuses_text_before_object():
    err = refused('Here you go: {"a": 1}')
    assert "character 0" in err


# ------------------------------------------------------------------------------------------
# repair_arguments: schema coercion

SCHEMA = {
    "type": "object",
    "properties": {
        "todos": {"type": "array", "items": {"type": "object"}},
        "options": {"type": "object"},
        "count": {"type": "integer"},
        "ratio": {"type": "number"},
        "force": {"type": "boolean"},
        "name": {"type": "string"},
        "maybe": {"type": ["string", "integer"]},
    },
}


def test_schema_stringified_array_from_opencode_1809():
    raw = '{"todos": "[{\\"content\\": \\"fix\\", \\"status\\": \\"pending\\"}]"}'
    rep = repair_arguments(raw, SCHEMA)
    assert_repaired(rep, {"todos": [{"content": "fix", "status": "pending"}]}, "'todos'")
    assert "array" in rep.note


def test_schema_scalar_coercions_each_noted():
    raw = '{"count": "5", "ratio": "0.5", "force": "TRUE", "name": 12, "options": "{\\"a\\": 1}"}'
    rep = repair_arguments(raw, SCHEMA)
    assert_repaired(
        rep, {"count": 5, "ratio": 0.5, "force": True, "name": "12", "options": {"a": 1}}, "'count'"
    )
    for key in ("'ratio'", "'force'", "'name'", "'options'"):
        assert key in rep.note


def test_schema_float_integer():
    assert_repaired(repair_arguments('{"count": 3.0}', SCHEMA), {"count": 3}, "'count'")


def test_schema_ambiguous_or_impossible_left_alone():
    raw = '{"maybe": "5", "count": "five", "force": "yes", "todos": "not json", "extra": "1"}'
    rep = repair_arguments(raw, SCHEMA)
    assert rep == Repair(arguments=raw)  # nothing coerced, nothing dropped: validation will report


def test_schema_coercion_never_drops_or_invents_keys():
    raw = '{"count": "7", "unknown": "x"}'
    out = json.loads(repair_arguments(raw, SCHEMA).arguments)
    assert out == {"count": 7, "unknown": "x"}


def test_schema_coercion_combined_with_repair():
    rep = repair_arguments('{"count": "2",}', SCHEMA)
    assert_repaired(rep, {"count": 2}, "trailing comma")
    assert "'count'" in rep.note


# ------------------------------------------------------------------------------------------
# text protocol

OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a file of the repository.",
            "parameters": TOOLS["read_file"],
        },
    },
    {
        "type": "function",
        "function": {"name": "glob", "description": "Find files by pattern.", "parameters": TOOLS["glob"]},
    },
]


def test_text_protocol_instructions_lists_tools_compactly():
    text = text_protocol_instructions(OPENAI_TOOLS)
    assert "<tool_call>" in text and "</tool_call>" in text
    assert "### read_file" in text and "Read a file of the repository." in text
    assert "### glob" in text
    assert json.dumps(TOOLS["read_file"], separators=(",", ":")) in text
    assert "nothing after the last block" in text


def test_text_protocol_example_and_sample_call_round_trip():
    instructions = text_protocol_instructions(OPENAI_TOOLS)
    example = re.search(r"<tool_call>.*?</tool_call>", instructions).group(0)
    rec = recover_tool_calls(example, TOOLS)
    assert [c.name for c in rec.calls] == ["read_file"]
    assert rec.rejected == []
    reply = (
        "I'll look at the entry point and the tests.\n"
        '<tool_call>{"name": "read_file", "arguments": {"path": "src/main.py"}}</tool_call>\n'
        '<tool_call>{"name": "glob", "arguments": {"pattern": "tests/**/*.py"}}</tool_call>'
    )
    rec = recover_tool_calls(
        reply, {t["function"]["name"]: t["function"]["parameters"] for t in OPENAI_TOOLS}
    )
    assert rec.format == "hermes"
    assert [(c.name, args(c)) for c in rec.calls] == [
        ("read_file", {"path": "src/main.py"}),
        ("glob", {"pattern": "tests/**/*.py"}),
    ]
    assert rec.text == "I'll look at the entry point and the tests."


def test_text_protocol_no_tools():
    assert "<tool_call>" in text_protocol_instructions([])


# ------------------------------------------------------------------------------------------
# robustness and speed

FRAGMENTS = [
    "<|tool_calls_section_begin|>",
    "<|tool_call_section_begin|>",
    "<|tool_call_begin|>",
    "<|tool_call_argument_begin|>",
    "<|tool_call_end|>",
    "<|tool_calls_section_end|>",
    "functions.read_file:3",
    "read_file:0",
    "<|start|>assistant",
    "<|channel|>",
    "analysis",
    "final",
    "commentary to=functions.get_weather ",
    "to=",
    "<|constrain|>json",
    "<|message|>",
    "<|call|>",
    "<|end|>",
    "<|return|>",
    "<tool_call>",
    "</tool_call>",
    "<function=",
    "read_file>",
    "</function>",
    "<parameter=",
    "path>",
    "input_num>",
    "</parameter>",
    "```",
    "```json\n",
    "{",
    "}",
    "[",
    "]",
    '"',
    "'",
    ":",
    ",",
    "\\",
    "\\_",
    "\\u12",
    '"name": "read_file"',
    '"arguments": ',
    '{"path": "a"}',
    "True",
    "None",
    "nul",
    "NaN",
    "-",
    "1e",
    "3.5",
    "\n",
    "\t",
    " ",
    "\x00",
    "é",
    "`",
    "<",
    ">",
    "=",
]


def random_junk(rng: random.Random) -> str:
    return "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(0, 25)))


def test_never_raises_on_junk():
    rng = random.Random(20250711)
    offered = set(TOOLS)
    for _ in range(3000):
        junk = random_junk(rng)
        rec = recover_tool_calls(junk, TOOLS)
        assert isinstance(rec, Recovered)
        assert not any("internal error" in r for r in rec.rejected), (junk, rec.rejected)
        assert all(c.name in offered for c in rec.calls)
        if rec.format is None:
            assert rec.text == junk
        rep = repair_arguments(junk, SCHEMA)
        assert (rep.arguments is None) != (rep.error is None), junk
        if rep.arguments is not None:
            assert isinstance(json.loads(rep.arguments), dict)


def test_never_raises_on_json_mutations():
    rng = random.Random(7)
    base = json.dumps({"path": "src/a.py", "todos": [{"x": 1, "y": [True, None]}], "n": 5, "s": 'a "q" \\ b'})
    for _ in range(3000):
        chars = list(base)
        for _ in range(rng.randint(1, 4)):
            op = rng.random()
            pos = rng.randrange(len(chars) + 1)
            if op < 0.4 and chars:
                del chars[min(pos, len(chars) - 1)]
            elif op < 0.8:
                chars.insert(pos, rng.choice(['"', "{", "}", "[", "]", ",", ":", "\\", "\n", "'", "x", "T"]))
            else:
                chars = chars[:pos]
        raw = "".join(chars)
        rep = repair_arguments(raw, SCHEMA)
        assert (rep.arguments is None) != (rep.error is None)
        if rep.arguments is not None:
            assert isinstance(json.loads(rep.arguments), dict)
        recover_tool_calls(f"<tool_call>{raw}</tool_call>", TOOLS)


def test_speed_on_large_text_without_calls():
    rng = random.Random(1)
    words = ["def", "class", "return", "<", ">", "{", "}", "tool", "call", "function", "=", "|", "\n", "    "]
    text = " ".join(rng.choice(words) for _ in range(60_000))[:200_000]
    assert len(text) == 200_000
    start = time.perf_counter()
    rec = recover_tool_calls(text, TOOLS)
    elapsed = time.perf_counter() - start
    assert rec.calls == [] and rec.text == text
    assert elapsed < 0.5


def test_speed_on_large_text_with_many_near_misses():
    text = ("<tool_call> mentioned <function= again <|channel|> <|tool_call_begin|> " * 3000)[:200_000]
    start = time.perf_counter()
    recover_tool_calls(text, TOOLS)
    repair_arguments('{"content": "' + "x\\_" * 60_000 + '"}')
    assert time.perf_counter() - start < 1.0
