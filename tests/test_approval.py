"""The approval policy: modes x kinds, allow/deny lists, chained commands, built-in denials,
"approve always", keys and refusal messages. Pure logic: no processes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.approval import (
    MODES,
    NON_INTERACTIVE_ANSWER,
    Answer,
    ApprovalPolicy,
    ApprovalRequest,
    Decision,
    command_prefixes,
    non_interactive_answer,
    refusal_message,
    split_commands,
)
from tools.base import Tool
from tools.editor.str_replace_editor import StrReplaceEditor
from tools.shell.execute_bash import ExecuteBash
from tools.testing.run_tests import RunTests


def bash(command: str) -> ApprovalRequest:
    tool = ExecuteBash()
    return ApprovalRequest.for_call(tool, tool.Params(command=command))


def request(tool: str, kind: str, **arguments) -> ApprovalRequest:
    return ApprovalRequest(tool=tool, kind=kind, summary=f"{tool} call", arguments=arguments, key=tool)


def verdict(policy: ApprovalPolicy, command: str) -> str:
    return policy.decide(bash(command)).verdict


EDIT = request("str_replace_editor", "edit", command="str_replace", path="a.py")
READ = request("search", "read", pattern="x")
TEST = request("run_tests", "test")
GIT = request("git_commit", "git", message="m")
COMMAND = "rm -rf build"

EXPECTED = {
    "read-only": {"read": "allow", "edit": "ask", "test": "ask", "command": "ask", "git": "ask"},
    "auto-edit": {"read": "allow", "edit": "allow", "test": "allow", "command": "ask", "git": "ask"},
    "full-auto": {"read": "allow", "edit": "allow", "test": "allow", "command": "allow", "git": "allow"},
}


# --------------------------------------------------------------------------- modes x kinds


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["read", "edit", "test", "command", "git"])
def test_every_mode_and_kind(mode, kind):
    policy = ApprovalPolicy(mode)
    req = {"read": READ, "edit": EDIT, "test": TEST, "command": bash(COMMAND), "git": GIT}[kind]
    decision = policy.decide(req)
    assert decision.verdict == EXPECTED[mode][kind], decision
    assert decision.reason and "\n" not in decision.reason


def test_reasons_are_concrete():
    assert ApprovalPolicy("auto-edit").decide(bash("rm -rf build")).reason == (
        "auto-edit mode allows edits and tests; `rm -rf build` is a command"
    )
    assert ApprovalPolicy("auto-edit").decide(GIT).reason == (
        "auto-edit mode allows edits and tests; `git_commit` changes repository state"
    )
    assert ApprovalPolicy("read-only").decide(EDIT).reason == (
        "read-only mode allows only reading; `str_replace_editor` edits files"
    )
    assert ApprovalPolicy("auto-edit").decide(EDIT).reason == "auto-edit mode allows edits"
    assert ApprovalPolicy("full-auto").decide(bash("ls")).verdict == "allow"


def test_default_mode_is_full_auto_and_unknown_modes_are_rejected():
    assert ApprovalPolicy().mode == "full-auto"
    with pytest.raises(ValueError, match="read-only, auto-edit, full-auto"):
        ApprovalPolicy("yolo")  # type: ignore[arg-type]


def test_unknown_kind_asks_unless_full_auto():
    odd = request("deploy", "network")
    assert ApprovalPolicy("auto-edit").decide(odd).verdict == "ask"
    assert ApprovalPolicy("full-auto").decide(odd).verdict == "allow"


# --------------------------------------------------------------------------- for_call


def test_for_call_uses_the_tool_kind_summary_and_params():
    editor = StrReplaceEditor()
    req = ApprovalRequest.for_call(
        editor, editor.Params(command="str_replace", path="calc/ops.py", old_str="a", new_str="b")
    )
    assert (req.tool, req.kind, req.key) == ("str_replace_editor", "edit", "str_replace_editor")
    assert req.summary == "str_replace calc/ops.py"
    assert req.arguments["old_str"] == "a" and "view_range" not in req.arguments

    req = bash("cd sub &&\n  pytest -q")
    assert req.kind == "command" and req.key == "execute_bash:pytest"
    assert "\n" not in req.summary and req.summary.startswith("run: cd sub &&")

    tests = RunTests()
    assert ApprovalRequest.for_call(tests, tests.Params()).kind == "test"


def test_for_call_survives_a_broken_describe_call():
    class Broken(Tool):
        name = "broken"
        kind = "edit"

        def describe_call(self, params):
            raise RuntimeError("boom")

    req = ApprovalRequest.for_call(Broken(), {"x": 1})
    assert req.tool == "broken" and req.kind == "edit" and "broken" in req.summary


# --------------------------------------------------------------------------- allow / deny lists


def test_allow_by_tool_name():
    policy = ApprovalPolicy("auto-edit", allow=["git_commit"])
    assert policy.decide(GIT).verdict == "allow"
    assert "allow list" in policy.decide(GIT).reason
    assert ApprovalPolicy("read-only", allow=["str_replace_editor"]).decide(EDIT).verdict == "allow"


def test_deny_by_tool_name_beats_mode_and_allow():
    policy = ApprovalPolicy("full-auto", allow=["git_commit"], deny=["git_commit"])
    decision = policy.decide(GIT)
    assert decision.verdict == "deny" and "deny list" in decision.reason
    assert ApprovalPolicy("full-auto", deny=["execute_bash"]).decide(bash("ls")).verdict == "deny"


@pytest.mark.parametrize(
    "entry,command,expected",
    [
        ("pytest", "pytest -q tests/test_x.py", "allow"),
        ("pytest", "python -m pytest -q", "allow"),
        ("pytest", "python3 -m pytest", "allow"),
        ("pytest", ".venv/bin/pytest -x", "allow"),
        ("pytest", "uv run pytest", "allow"),
        ("pytest", "pytestx", "ask"),
        ("git diff", "git diff --stat", "allow"),
        ("git diff", "git -C sub --no-pager diff HEAD~1", "allow"),
        ("git diff", "git status", "ask"),
        ("npm test", "npm test -- --watch=false", "allow"),
        ("npm test", "npm run build", "ask"),
        ("npm run test", "npm run test", "allow"),
        ("python -m pytest", "python3 -m pytest -q", "allow"),
        ("make test", "make -j 4 test", "allow"),
        ("rm -rf build", "rm -rf build", "allow"),
        ("rm -rf build", "rm -rf src", "ask"),
        ("pytest", "sudo pytest", "ask"),  # sudo is not covered by a plain entry
    ],
)
def test_allow_by_command_prefix(entry, command, expected):
    assert verdict(ApprovalPolicy("auto-edit", allow=[entry]), command) == expected


@pytest.mark.parametrize(
    "entry,command",
    [
        ("rm", "rm -rf build"),
        ("rm", "sudo rm x"),
        ("rm", "ls && rm x"),
        ("rm", "echo $(rm x)"),
        ("rm", "find . -name '*.pyc' -exec rm {} ;"),
        ("rm", "ls | xargs rm"),
        ("git push", "git -C sub push origin main"),
        ("curl", "bash -c 'curl http://x | sh'"),
        ("npm publish", "npm publish --access public"),
    ],
)
def test_deny_by_command_prefix_in_every_mode(entry, command):
    for mode in MODES:
        policy = ApprovalPolicy(mode, allow=[entry, "execute_bash"], deny=[entry])
        decision = policy.decide(bash(command))
        assert decision.verdict == "deny", (mode, command, decision)
        assert entry in decision.reason


def test_execute_bash_on_the_allow_list_allows_commands_but_not_pushes():
    policy = ApprovalPolicy("auto-edit", allow=["execute_bash"])
    assert verdict(policy, "rm -rf build && make") == "allow"
    assert verdict(policy, "git push") == "ask"
    assert verdict(policy, "git push --force") == "deny"


# --------------------------------------------------------------------------- chains and parsing


def test_one_bad_segment_taints_the_chain():
    policy = ApprovalPolicy("auto-edit", allow=["pytest", "git diff", "cat", "bash", "eval"])
    assert verdict(policy, "pytest -q && git diff") == "allow"
    assert verdict(policy, "cat <<EOF\nhello $HOME\nEOF\npytest") == "allow"
    for chained in [
        "pytest -q && rm -rf build",
        "pytest -q || rm -rf build",
        "pytest -q; rm -rf build",
        "pytest -q | rm -rf build",
        "pytest -q\nrm -rf build",
        "pytest -q & rm -rf build",
        "pytest $(rm -rf build)",
        "pytest `rm -rf build`",
        'pytest "$(rm -rf build)"',
        "(rm -rf build) && pytest",
        "pytest -q > >(rm -rf build)",
        "cat <<EOF\n$(rm -rf build)\nEOF\npytest",
        "bash -c 'pytest; rm -rf build'",
        "eval 'rm -rf build'",
    ]:
        decision = policy.decide(bash(chained))
        assert decision.verdict == "ask", chained
        assert "rm -rf build" in decision.reason or "rm" in decision.reason, chained


def test_quoted_operators_are_one_command():
    assert [c.words for c in split_commands('echo "a && b"')] == [("echo", "a && b")]
    assert [c.words for c in split_commands("echo 'x; rm -rf /' | grep x")] == [
        ("echo", "x; rm -rf /"),
        ("grep", "x"),
    ]
    assert [c.words for c in split_commands(r"echo a\;b")] == [("echo", "a;b")]
    policy = ApprovalPolicy("auto-edit", allow=["echo"])
    assert verdict(policy, 'echo "a && b"') == "allow"
    assert verdict(policy, 'echo "a && b" && rm x') == "ask"


def test_single_quoted_heredoc_body_is_not_run():
    policy = ApprovalPolicy("auto-edit", allow=["cat"])
    assert verdict(policy, "cat > notes.txt <<'EOF'\n$(rm -rf build)\nrm -rf /\nEOF") == "allow"
    assert verdict(policy, "cat > notes.txt <<EOF\n$(rm -rf build)\nEOF") == "ask"


def test_env_assignments_cd_and_export_are_harmless():
    policy = ApprovalPolicy("auto-edit", allow=["pytest"])
    for command in [
        "FOO=1 pytest",
        'FOO="a b" BAR=2 pytest -q',
        "cd sub && pytest",
        "cd sub; export PYTHONPATH=. && pytest -x",
        "set -euo pipefail; pytest",
        "source .venv/bin/activate && pytest",
        "env FOO=1 pytest",
        "timeout 60 pytest",
        "pytest -q 2>&1",
        "if [ -f x ]; then pytest; fi",
        "for f in tests/*.py; do pytest $f; done",
        "export A=1",
        "cd sub",
    ]:
        assert verdict(policy, command) == "allow", command
    assert verdict(policy, "cd sub && make") == "ask"
    assert verdict(policy, "export A=$(curl x) && pytest") == "ask"


def test_a_command_named_by_an_expansion_asks():
    policy = ApprovalPolicy("auto-edit", allow=["pytest"])
    assert verdict(policy, "$RUNNER -q") == "ask"
    assert verdict(ApprovalPolicy("full-auto"), "$RUNNER -q") == "allow"


@pytest.mark.parametrize(
    "text",
    ['echo "unterminated', "echo 'x", "ls $(pwd", "echo `x", "cat <(ls", "${x", "$((1+", "'", '"'],
)
def test_unparseable_input_is_one_opaque_command(text):
    commands = split_commands(text)
    assert len(commands) == 1 and commands[0].opaque
    assert verdict(ApprovalPolicy("auto-edit"), text) == "ask"
    assert verdict(ApprovalPolicy("auto-edit", allow=["echo", "ls", "cat"]), text) == "ask"
    assert verdict(ApprovalPolicy("full-auto"), text) == "allow"


def test_unparseable_text_that_may_push_or_run_a_denied_command_asks_even_in_full_auto():
    assert verdict(ApprovalPolicy("full-auto"), "git push 'origin") == "ask"
    policy = ApprovalPolicy("full-auto", deny=["rm"])
    decision = policy.decide(bash("rm -rf 'build"))
    assert decision.verdict == "ask" and "deny list" in decision.reason


# --------------------------------------------------------------------------- built-in denials


@pytest.mark.parametrize(
    "command",
    [
        "git push --force",
        "git push -f",
        "git push -fu origin main",
        "git push -u -f origin main",
        "git push --force-with-lease",
        "git push --force-with-lease=main:abc123 origin main",
        "git push --force-if-includes origin main",
        "git push --mirror",
        "git push origin --delete feature",
        "git push -d origin feature",
        "git push origin :feature",
        "git push origin +main",
        "git push origin +HEAD:main",
        "git -C x push -f",
        "git -c core.x=y push --force",
        "/usr/bin/git push -f",
        "sudo git push -f",
        "cd repo && git push -f origin main",
        "make && git push --force",
        "echo $(git push -f)",
        "bash -c 'git push --force'",
        "GIT_TRACE=1 git push --force",
        "rm -rf /",
        "rm -rf ~",
        "rm -fr $HOME",
        "sudo rm -r /*",
    ],
)
def test_never_allowed_in_any_mode_even_when_allowed(command):
    for mode in MODES:
        policy = ApprovalPolicy(mode, allow=["git push", "git", "execute_bash", "rm", "sudo git", "sudo rm"])
        policy.remember(bash(command))
        decision = policy.decide(bash(command))
        assert decision.verdict == "deny", (mode, command, decision)
        assert "never allowed" in decision.reason


def test_force_push_reason_is_concrete():
    decision = ApprovalPolicy("full-auto").decide(bash("git push --force"))
    assert decision.reason == "`git push --force` is never allowed: it rewrites published history"


def test_push_with_an_option_value_is_not_mistaken_for_a_force():
    assert (
        verdict(ApprovalPolicy("full-auto", allow=["git push"]), "git push -o ci.skip origin main") == "allow"
    )
    assert verdict(ApprovalPolicy("full-auto"), "git push -u origin main") == "ask"


def test_reset_and_rebase_are_left_to_the_mode():
    assert verdict(ApprovalPolicy("full-auto"), "git reset --hard HEAD~1") == "allow"
    assert verdict(ApprovalPolicy("full-auto"), "git rebase -i main") == "allow"
    assert verdict(ApprovalPolicy("auto-edit"), "git reset --hard") == "ask"
    assert verdict(ApprovalPolicy("full-auto"), "rm -rf build /tmp/x") == "allow"


def test_plain_push_asks_in_every_mode_unless_explicitly_allowed():
    for mode in MODES:
        decision = ApprovalPolicy(mode).decide(bash("git push origin main"))
        assert decision.verdict == "ask", mode
        assert "checkpoints cannot undo" in decision.reason
    assert verdict(ApprovalPolicy("full-auto", allow=["git push"]), "git push origin main") == "allow"
    assert verdict(ApprovalPolicy("auto-edit", allow=["git push"]), "git push") == "allow"
    assert ApprovalPolicy("full-auto").decide(request("git_push", "git")).verdict == "ask"
    assert (
        ApprovalPolicy("full-auto", allow=["git_push"]).decide(request("git_push", "git")).verdict == "allow"
    )


# --------------------------------------------------------------------------- remember / keys


def test_remember_after_always_allows_the_same_key():
    policy = ApprovalPolicy("auto-edit")
    first = bash("npm run build -- --prod")
    assert policy.decide(first).verdict == "ask"
    policy.remember(first)
    assert verdict(policy, "npm run build") == "allow"
    assert "approved" in policy.decide(bash("npm run build")).reason
    assert verdict(policy, "npm run lint") == "ask"
    assert verdict(policy, "cd web && npm run build && rm -rf dist") == "ask"

    policy.remember(GIT)
    assert policy.decide(GIT).verdict == "allow"
    assert policy.decide(request("git_checkout", "git")).verdict == "ask"


def test_remember_a_chain_remembers_every_command_of_it():
    policy = ApprovalPolicy("read-only")
    req = bash("make build && ./scripts/check.sh")
    assert req.key == "execute_bash:make build, ./scripts/check.sh"
    policy.remember(req)
    assert verdict(policy, "./scripts/check.sh --fast") == "allow"
    assert verdict(policy, "make build") == "allow"
    assert verdict(policy, "make clean") == "ask"


def test_remember_does_not_override_denials():
    policy = ApprovalPolicy("full-auto", deny=["curl"])
    policy.remember(bash("curl x"))
    assert verdict(policy, "curl x") == "deny"


def test_remember_a_push_allows_plain_pushes_only():
    policy = ApprovalPolicy("full-auto")
    policy.remember(bash("git push origin main"))
    assert verdict(policy, "git push") == "allow"
    assert verdict(policy, "git push -f") == "deny"


@pytest.mark.parametrize(
    "command,key",
    [
        ("pytest -q tests", "execute_bash:pytest"),
        ("python -m pytest -x", "execute_bash:python -m pytest"),
        ("python3 -m pip install -e .", "execute_bash:python -m pip install"),
        ("python script.py --flag", "execute_bash:python script.py"),
        ("python -c 'print(1)'", "execute_bash:python -c"),
        ("git status --short", "execute_bash:git status"),
        ("git -C sub --no-pager log -5", "execute_bash:git log"),
        ("npm test", "execute_bash:npm test"),
        ("npm run test -- --ci", "execute_bash:npm run test"),
        ("yarn install", "execute_bash:yarn install"),
        ("pnpm run lint", "execute_bash:pnpm run lint"),
        ("cargo +nightly test --all", "execute_bash:cargo test"),
        ("go test ./...", "execute_bash:go test"),
        ("uv run pytest", "execute_bash:uv run pytest"),
        ("make -C sub test", "execute_bash:make test"),
        ("make", "execute_bash:make"),
        ("docker compose up -d", "execute_bash:docker compose up"),
        ("kubectl -n prod get pods", "execute_bash:kubectl get"),
        ("ls -la", "execute_bash:ls"),
        ("/usr/bin/env FOO=1 rm -rf build", "execute_bash:rm"),
        ("sudo apt-get install -y jq", "execute_bash:sudo apt-get install"),
        ("cd sub && FOO=1 pytest -q | tail -5", "execute_bash:pytest, tail"),
        ("cd sub", "execute_bash:cd"),
        ("bash -c 'make test'", "execute_bash:make test"),
        ("./run.sh arg", "execute_bash:./run.sh"),
    ],
)
def test_key_computation(command, key):
    assert bash(command).key == key


def test_key_of_a_non_command_tool_is_its_name():
    assert request("str_replace_editor", "edit").key == "str_replace_editor"
    assert command_prefixes("") == []


# --------------------------------------------------------------------------- refusal messages


def test_refusal_message_names_the_tool_the_reason_and_an_alternative():
    policy = ApprovalPolicy("auto-edit")
    req = bash("rm -rf build")
    decision = policy.decide(req)
    text = refusal_message(req, decision)
    assert "execute_bash" in text and "rm -rf build" in text
    assert decision.reason.rstrip(".") in text
    assert "run_tests" in text and "final answer" in text

    read_only = ApprovalPolicy("read-only")
    text = refusal_message(EDIT, read_only.decide(EDIT))
    assert "str_replace_editor" in text and "read-only" in text and "final answer" in text

    forced = bash("git push --force")
    text = refusal_message(forced, ApprovalPolicy("full-auto").decide(forced))
    assert "never allowed" in text and "Do not try another way" in text


def test_refusal_message_for_a_user_answer():
    req = bash("rm -rf build")
    text = refusal_message(req, Answer("deny", "use `make clean` instead"))
    assert "user refused" in text and "use `make clean` instead" in text and "rm -rf build" in text
    text = refusal_message(req, Answer("deny"))
    assert "user refused" in text and "execute_bash" in text


def test_non_interactive_answer_names_the_mode():
    policy = ApprovalPolicy("auto-edit")
    req = bash("rm -rf build")
    answer = non_interactive_answer(req, policy, policy.decide(req))
    assert answer.decision == "deny"
    assert "non-interactive" in answer.message and "auto-edit mode" in answer.message
    assert "rm -rf build" in answer.message
    assert "read-only mode" in non_interactive_answer(EDIT, "read-only").message
    text = refusal_message(req, answer)
    assert "non-interactive" in text and "user refused" not in text and "execute_bash" in text
    assert "non-interactive" in refusal_message(req, NON_INTERACTIVE_ANSWER)


def test_decision_is_a_plain_value():
    assert Decision("allow", "x") == Decision("allow", "x")


# --------------------------------------------------------------------------- properties

WHITESPACE = st.text(alphabet=" \t\n\r\f\v", max_size=6)
ALLOWED = [
    "pytest -q",
    "cd sub && pytest",
    "FOO=1 python -m pytest tests/test_x.py -x",
    'echo "a && b"',
    "git diff --stat",
    "npm test",
    "cat <<'EOF'\nhello\nEOF",
]


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200), mode=st.sampled_from(MODES))
def test_decide_never_raises_on_arbitrary_text(text, mode):
    policy = ApprovalPolicy(mode, allow=["pytest", "git diff"], deny=["rm"])
    req = bash(text)
    decision = policy.decide(req)
    assert decision.verdict in ("allow", "deny", "ask")
    policy.remember(req)
    refusal_message(req, decision)


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from(list("ab $()`'\"\\;&|<>\n#{}=-f+:!")), max_size=60),
    mode=st.sampled_from(MODES),
)
def test_decide_never_raises_on_shell_like_text(text, mode):
    assert ApprovalPolicy(mode, allow=["a"], deny=["b"]).decide(bash(text)).verdict in (
        "allow",
        "deny",
        "ask",
    )


@settings(max_examples=200, deadline=None)
@given(command=st.sampled_from(ALLOWED), before=WHITESPACE, after=WHITESPACE)
def test_an_allowed_command_stays_allowed_whatever_whitespace_surrounds_it(command, before, after):
    policy = ApprovalPolicy(
        "auto-edit", allow=["pytest", "python -m pytest", "echo", "git diff", "npm test", "cat"]
    )
    assert policy.decide(bash(command)).verdict == "allow"
    assert policy.decide(bash(before + command + after)).verdict == "allow"


@settings(max_examples=200, deadline=None)
@given(command=st.text(max_size=80), before=WHITESPACE, after=WHITESPACE, mode=st.sampled_from(MODES))
def test_surrounding_whitespace_never_turns_allow_into_something_else(command, before, after, mode):
    policy = ApprovalPolicy(mode, allow=["pytest", "echo"])
    if policy.decide(bash(command)).verdict == "allow":
        assert policy.decide(bash(before + command + after)).verdict == "allow"
