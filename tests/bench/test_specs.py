import json
import subprocess
import sys
import textwrap

import pytest

from agent.bench.extract_specs import extract
from agent.bench.instances import Instance
from agent.bench.specs import BUNDLED, Spec, SpecError, load_specs, spec_for, version_key


def inst(repo: str, version: str) -> Instance:
    return Instance(
        instance_id="x__y-1", repo=repo, base_commit="abc", problem_statement="p", version=version
    )


@pytest.fixture(scope="module")
def specs():
    return load_specs()


def test_bundled_table_has_real_swebench_values(specs):
    data = json.loads(BUNDLED.read_text())
    assert data["source"] == "SWE-bench v4.1.0"
    flask = specs["repos"]["pallets/flask"]["2.3"]
    assert flask["python"] == "3.11"
    assert flask["install"] == "python -m pip install -e ."
    assert "Werkzeug==2.3.7" in flask["pip_packages"]
    assert flask["test_cmd"] == "pytest -rA"  # the second TEST_PYTEST definition wins
    assert specs["repos"]["django/django"]["4.0"]["test_cmd"] == (
        "./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1"
    )
    assert specs["repos"]["django/django"]["1.9"]["test_cmd"] == "./tests/runtests.py --verbosity 2"
    assert specs["repos"]["pytest-dev/pytest"]["5.4"]["pip_packages"][0] == "py==1.11.0"
    # loop + if/elif bodies ran completely
    assert any("htmlhelp<=2.0.4" in c for c in specs["repos"]["sphinx-doc/sphinx"]["4.1"]["pre_install"])
    assert specs["repos"]["sphinx-doc/sphinx"]["8.0"]["python"] == "3.10"
    assert specs["log_parsers"]["pallets/flask"] == {
        "name": "parse_log_flask",
        "function": "parse_log_pytest",
    }


def test_exact_match(specs):
    s = spec_for(inst("pallets/flask", "2.3"), specs)
    assert isinstance(s, Spec)
    assert (s.python, s.source, s.spec_version, s.log_parser) == (
        "3.11",
        "swebench",
        "2.3",
        "parse_log_flask",
    )
    assert "Werkzeug==2.3.7" in s.pip_packages and isinstance(s.pip_packages, tuple)
    d = spec_for(inst("django/django", "3.0"), specs)
    assert d.test_cmd.startswith("./tests/runtests.py") and d.eval_commands


def test_nearest_version(specs):
    s = spec_for(inst("pallets/flask", "9.9"), specs)
    assert s.source == "swebench-nearest" and s.version == "9.9"
    assert s.spec_version == max(specs["repos"]["pallets/flask"], key=version_key)
    below = spec_for(inst("pallets/flask", "0.1"), specs)  # nothing <= 0.1: lowest above
    assert below.spec_version == min(specs["repos"]["pallets/flask"], key=version_key)
    mid = spec_for(inst("pytest-dev/pytest", "5.3.7"), specs)
    assert mid.spec_version == "5.3"


def test_version_key_is_numeric():
    assert version_key("0.12") > version_key("0.9")
    assert version_key("v5.3") > version_key("5.2")
    assert version_key("dev") > version_key("100.0")


def test_unknown_repo_gets_default(specs):
    s = spec_for(inst("someone/unknown", "1.0"), specs)
    assert s.source == "default"
    assert s.python == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert s.install == "python -m pip install -e ." and s.test_cmd == "pytest -rA"


def test_user_specs_override_toml_and_json(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text(
        textwrap.dedent(
            """
            [repos."pallets/flask"."2.3"]
            python = "3.12"
            install = "pip install ."
            pip_packages = ["werkzeug"]

            [repos."me/mine"."1.0"]
            python = "3.10"
            install = "pip install -e .[test]"
            test_cmd = "pytest -q"

            [log_parsers."me/mine"]
            name = "parse_log_pytest"
            """
        )
    )
    specs = load_specs(toml)
    s = spec_for(inst("pallets/flask", "2.3"), specs)
    assert (s.python, s.install, s.pip_packages, s.source) == ("3.12", "pip install .", ("werkzeug",), "user")
    assert spec_for(inst("pallets/flask", "2.2"), specs).source == "swebench"  # other versions kept
    m = spec_for(inst("me/mine", "1.5"), specs)
    assert (m.test_cmd, m.source, m.log_parser) == ("pytest -q", "user-nearest", "parse_log_pytest")

    js = tmp_path / "s.json"
    js.write_text(
        json.dumps({"repos": {"django/django": {"4.0": {"python": "3.11", "install": "x", "test_cmd": "t"}}}})
    )
    d = spec_for(inst("django/django", "4.0"), load_specs(js))
    assert (d.install, d.test_cmd, d.source) == ("x", "t", "user")


@pytest.mark.parametrize(
    "name,text,needle",
    [
        ("bad.json", "{not json", "malformed JSON"),
        ("bad.toml", "[repos\nx=", "malformed TOML"),
        ("shape.json", '{"repos": {"a/b": ["1.0"]}}', "must map versions"),
        ("type.json", '{"repos": {"a/b": {"1.0": {"pip_packages": "x"}}}}', "list of strings"),
        ("norepos.json", "{}", '"repos"'),
    ],
)
def test_bad_user_file_names_the_path(tmp_path, name, text, needle):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(SpecError) as e:
        load_specs(p)
    assert str(p) in str(e.value) and needle in str(e.value)


def test_missing_user_file(tmp_path):
    with pytest.raises(SpecError, match="cannot read"):
        load_specs(tmp_path / "nope.toml")


FAKE_CONSTANTS = """
TEST_PYTEST = "pytest --old"
TEST_PYTEST = "pytest -rA"
import os
SPECS_A = {k: {"python": "3.9", "install": "pip install -e .", "test_cmd": TEST_PYTEST} for k in ["1.0", "1.1"]}
SPECS_A.update({k: {**SPECS_A["1.0"], "python": "3.11"} for k in ["2.0"]})
SPECS_A["1.1"]["pip_packages"] = ["x==1"]
for k in ["1.0", "2.0"]:
    SPECS_A[k]["pre_install"] = ["echo a"]
    if k == "2.0":
        SPECS_A[k]["pre_install"] += ["echo b"]
    else:
        SPECS_A[k]["pre_install"].extend(["echo c"])
for k in ["1.0"]:
    SPECS_A[k]["python"] = "3.0"
    SPECS_A[k]["weird"] = open("/etc/passwd")
SPECS_B = {"0.5": {"python": "3.8", "install": "python setup.py install", "nano_cpus": int(2e9)}}
MAP_REPO_VERSION_TO_SPECS_PY = {"o/a": SPECS_A, "o/b": SPECS_B}
"""

FAKE_PARSERS = """
def parse_log_pytest(log, spec):
    return {}
parse_log_a = parse_log_pytest
MAP_REPO_TO_PARSER_PY = {"o/a": parse_log_a, "o/b": parse_log_pytest}
"""


def test_extract_specs_on_fake_repo(tmp_path, capsys):
    repo = tmp_path / "repo"
    (repo / "swebench/harness/constants").mkdir(parents=True)
    (repo / "swebench/harness/log_parsers").mkdir(parents=True)
    (repo / "swebench/harness/constants/python.py").write_text(FAKE_CONSTANTS)
    (repo / "swebench/harness/log_parsers/python.py").write_text(FAKE_PARSERS)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    subprocess.run([*git, "tag", "v9"], check=True)

    data = extract(repo / ".git", "v9")
    assert data["source"] == "SWE-bench v9"
    assert data["repos"] == {
        "o/a": {
            # the failing loop (open(...)) was rolled back entirely: python stays 3.9
            "1.0": {
                "python": "3.9",
                "install": "pip install -e .",
                "test_cmd": "pytest -rA",
                "pre_install": ["echo a", "echo c"],
            },
            "1.1": {
                "python": "3.9",
                "install": "pip install -e .",
                "test_cmd": "pytest -rA",
                "pip_packages": ["x==1"],
            },
            "2.0": {
                "python": "3.11",
                "install": "pip install -e .",
                "test_cmd": "pytest -rA",
                "pre_install": ["echo a", "echo b"],
            },
        },
        "o/b": {"0.5": {"python": "3.8", "install": "python setup.py install", "nano_cpus": 2000000000}},
    }
    assert data["log_parsers"] == {
        "o/a": {"name": "parse_log_a", "function": "parse_log_pytest"},
        "o/b": {"name": "parse_log_pytest", "function": "parse_log_pytest"},
    }
    err = capsys.readouterr().err
    assert "skipped Import" in err and "skipped For" in err
    json.dumps(data)  # serialisable
