"""`luban bench grade` and `luban bench run --env venv` end to end on synthetic SWE-bench instances:
a real package in a real git mirror, real venvs built by pip, the real CLI in a subprocess, the
`swebench` package's grading. One environment cache is shared by the module (the first build pays)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.bench import grade as g
from agent.bench.instances import Instance
from agent.bench.specs import load_specs, spec_for
from tests.bench import synth
from tests.support import run_luban

pytestmark = pytest.mark.timeout(600)
OFFICIAL_KEYS = {
    "total_instances", "submitted_instances", "completed_instances", "resolved_instances",
    "unresolved_instances", "empty_patch_instances", "error_instances", "completed_ids", "incomplete_ids",
    "empty_patch_ids", "submitted_ids", "resolved_ids", "unresolved_ids", "error_ids", "schema_version",
}  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("bench")
    cache, base, patches = synth.make_mirror(root)
    return {"cache": cache, "base": base, "patches": patches, "envs": root / "envs"}


def instances_file(tmp_path: Path, world, ids: list[str], **extra) -> Path:
    rows = [synth.instance(i, world["base"], world["patches"], **extra) for i in ids]
    return synth.write_jsonl(tmp_path / "instances.jsonl", rows)


def grade(tmp_path: Path, world, instances: Path, *args: str, run_id: str = "r1"):
    argv = [
        "bench", "grade", "--instances", str(instances), "--repo-cache", str(world["cache"]),
        "--env-cache", str(world["envs"]), "--out", str(tmp_path / "graded"), "--run-id", run_id, *args,
    ]  # fmt: skip
    return run_luban(argv, tmp_path / "home", timeout=500)


def summary(tmp_path: Path, model: str, run_id: str = "r1") -> dict[str, Any]:
    return json.loads((tmp_path / "graded" / f"{model}.{run_id}.json").read_text())


def test_gold_resolves_and_the_report_has_the_official_shape(tmp_path, world):
    inst = instances_file(tmp_path, world, ["acme__shapes-1"])
    run = grade(tmp_path, world, inst, "--gold")
    assert run.code == 0, run.stderr + run.stdout
    report = summary(tmp_path, "gold")
    assert OFFICIAL_KEYS <= set(report) and report["schema_version"] == 2
    assert report["resolved_ids"] == ["acme__shapes-1"] and report["error_instances"] == 0
    logs = tmp_path / "graded" / "logs" / "r1" / "gold" / "acme__shapes-1"
    assert {"patch.diff", "eval.sh", "test_output.txt", "run_instance.log", "report.json"} <= {
        p.name for p in logs.iterdir()
    }
    per = json.loads((logs / "report.json").read_text())["acme__shapes-1"]
    assert per["resolved"] and per["patch_successfully_applied"]
    assert sorted(per["tests_status"]["FAIL_TO_PASS"]["success"]) == sorted(synth.F2P)
    assert sorted(per["tests_status"]["PASS_TO_PASS"]["success"]) == sorted(synth.P2P)
    output = (logs / "test_output.txt").read_text()
    assert ">>>>> Start Test Output" in output and ">>>>> Test Exit Code: 0" in output
    assert "PASSED tests/test_shapes.py::test_perimeter_square" in output
    assert "resolved" in run.stdout and "1 resolved" in run.stdout

    # resume: the same run id grades nothing again; --force does
    again = grade(tmp_path, world, inst, "--gold")
    assert again.code == 0 and "already graded" in again.stderr and "[1/" not in again.stderr
    forced = grade(tmp_path, world, inst, "--gold", "--force")
    assert forced.code == 0 and "[1/1] acme__shapes-1 resolved" in forced.stderr


def test_every_outcome_of_a_predictions_file(tmp_path, world):
    p = world["patches"]
    ids = ["acme__shapes-gold", "acme__shapes-partial", "acme__shapes-p2p", "acme__shapes-empty",
           "acme__shapes-none", "acme__shapes-fuzzy", "acme__shapes-malformed", "acme__shapes-nopred"]  # fmt: skip
    inst = instances_file(tmp_path, world, ids)
    preds = synth.predictions(
        tmp_path / "preds.jsonl",
        {
            "acme__shapes-gold": p["gold"],
            "acme__shapes-partial": p["partial"],
            "acme__shapes-p2p": p["breaks_p2p"],
            "acme__shapes-empty": "",
            "acme__shapes-none": None,
            "acme__shapes-fuzzy": synth.fuzzy(p["gold"]),
            "acme__shapes-malformed": synth.MALFORMED,
        },
    )
    run = grade(tmp_path, world, inst, "--predictions", str(preds), "--workers", "2", "--executor", "process")
    assert run.code == 1, run.stderr  # the malformed patch is an error
    report = summary(tmp_path, "m")
    assert report["resolved_ids"] == ["acme__shapes-fuzzy", "acme__shapes-gold"]
    assert report["partial_ids"] == ["acme__shapes-partial"]
    assert report["unresolved_ids"] == ["acme__shapes-p2p", "acme__shapes-partial"]
    assert report["empty_patch_ids"] == ["acme__shapes-empty", "acme__shapes-none"]
    assert report["error_ids"] == ["acme__shapes-malformed"]
    assert report["incomplete_ids"] == ["acme__shapes-nopred"]
    assert report["total_instances"] == 8 and report["submitted_instances"] == 7
    assert "Patch Apply Failed" in report["instances"]["acme__shapes-malformed"]["error"]
    fuzzy_log = (tmp_path / "graded/logs/r1/m/acme__shapes-fuzzy/run_instance.log").read_text()
    assert "Failed to apply patch: git apply --verbose\n" in fuzzy_log and "patch --batch" in fuzzy_log
    p2p = json.loads((tmp_path / "graded/logs/r1/m/acme__shapes-p2p/report.json").read_text())
    assert p2p["acme__shapes-p2p"]["tests_status"]["PASS_TO_PASS"]["failure"] == [
        "tests/test_shapes.py::test_area"
    ]


def test_empty_mode_runs_the_unchanged_base_and_it_is_unresolved(tmp_path, world):
    inst = instances_file(tmp_path, world, ["acme__shapes-1"])
    run = grade(tmp_path, world, inst, "--empty")
    assert run.code == 0, run.stderr
    per = json.loads((tmp_path / "graded/logs/r1/empty/acme__shapes-1/report.json").read_text())[
        "acme__shapes-1"
    ]
    assert not per["resolved"]
    assert sorted(per["tests_status"]["FAIL_TO_PASS"]["failure"]) == sorted(synth.F2P)
    assert sorted(per["tests_status"]["PASS_TO_PASS"]["success"]) == sorted(synth.P2P)


def test_a_scripted_run_through_the_agent_grades_resolved(tmp_path, world, scripted_server):
    server = scripted_server([synth.agent_turn] * 3)
    inst = instances_file(tmp_path, world, ["acme__shapes-1"])
    out = tmp_path / "run"
    run = run_luban(
        ["bench", "run", "--instances", str(inst), "--out", str(out), "--repo-cache", str(world["cache"]),
         "--env-cache", str(world["envs"]), "--model", "scripted", "--base-url", server.base_url],
        tmp_path / "home", timeout=500,
    )  # fmt: skip
    assert run.code == 0, run.stderr
    # the agent's command ran in the instance's environment: shapes imported from the workspace
    traj = (out / "trajectories" / "acme__shapes-1.jsonl").read_text()
    assert str(out / "workspaces" / "acme__shapes-1" / "shapes" / "__init__.py") in traj
    result = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    assert set(result["timings"]) == {"workspace", "environment", "agent"}
    sent = "\n".join(json.dumps(r["body"]) for r in server.requests)
    assert "SECRET HINT" not in sent and "test_perimeter_square" not in sent

    graded = grade(tmp_path, world, inst, "--predictions", str(out / "predictions.jsonl"))
    assert graded.code == 0, graded.stderr
    assert summary(tmp_path, "scripted")["resolved_ids"] == ["acme__shapes-1"]


def test_user_specs_file_drives_install_and_test_command(tmp_path, world):
    specs = tmp_path / "specs.toml"
    specs.write_text(
        '[repos."acme/shapes"."0.1"]\npython = "3.11"\ninstall = "python -m pip install ."\n'
        'pip_packages = ["pytest"]\ntest_cmd = "pytest -rA -p no:cacheprovider"\n'
    )
    inst = instances_file(tmp_path, world, ["acme__shapes-1"])
    run = grade(tmp_path, world, inst, "--gold", "--specs", str(specs))
    assert run.code == 0, run.stderr
    script = (tmp_path / "graded/logs/r1/gold/acme__shapes-1/eval.sh").read_text()
    assert "python -m pip install ." in script
    assert "pytest -rA -p no:cacheprovider tests/test_shapes.py" in script
    assert summary(tmp_path, "gold")["resolved_instances"] == 1


def test_bad_inputs_are_clear(tmp_path, world):
    inst = instances_file(tmp_path, world, ["acme__shapes-1"])
    none = grade(tmp_path, world, inst)
    assert none.code == 2 and "--predictions FILE, --gold or --empty" in none.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instance_id": "acme__shapes-1", "model_patch": "x"}\n{oops\n')
    run = grade(tmp_path, world, inst, "--predictions", str(bad))
    assert run.code == 2 and f"{bad}:2: malformed JSON" in run.stderr
    other = synth.predictions(tmp_path / "other.jsonl", {"someone__else-1": "x"})
    run = grade(tmp_path, world, inst, "--predictions", str(other))
    assert run.code == 2 and "no prediction matches" in run.stderr
    specs = tmp_path / "broken.json"
    specs.write_text("{not json")
    run = grade(tmp_path, world, inst, "--gold", "--specs", str(specs))
    assert run.code == 2 and "malformed JSON" in run.stderr
    run = grade(tmp_path, world, inst, "--gold", "--address", "x:1")
    assert run.code == 2 and "--address is for --executor ray" in run.stderr
    # no mirror: an error for that instance, with what to do
    nomirror = synth.write_jsonl(
        tmp_path / "nm.jsonl", [synth.instance("x__y-1", world["base"], world["patches"], repo="x/y")]
    )
    run = grade(tmp_path, world, nomirror, "--gold", run_id="r2")
    assert (
        run.code == 1
        and "no local mirror of x/y" in summary(tmp_path, "gold", "r2")["instances"]["x__y-1"]["error"]
    )


def test_eval_script_follows_swebench():
    patch = (
        "diff --git a/tests/test_a.py b/tests/test_a.py\n--- a/tests/test_a.py\n+++ b/tests/test_a.py\n@@ -1 +1 @@\n-x\n+y\n"
        "diff --git a/tests/data.json b/tests/data.json\nnew file mode 100644\n--- /dev/null\n+++ b/tests/data.json\n@@ -0,0 +1 @@\n+{}\n"
    )
    inst = Instance("o__r-1", "o/r", "abc1234", "p", test_patch=patch, version="1.0")
    assert g.test_files(inst) == ["tests/test_a.py"]
    assert g.test_directives(inst) == ["tests/test_a.py"]
    spec = spec_for(inst, load_specs())
    assert g.test_command(inst, spec) == "pytest -rA tests/test_a.py"
    django = Instance("django__django-1", "django/django", "abc1234", "p", test_patch=patch.replace("tests/test_a.py", "tests/auth_tests/test_x.py"), version="4.0")  # fmt: skip
    assert g.test_directives(django) == ["auth_tests.test_x"]
    # a v5 dataset row's own command (between the markers) wins over the spec's
    row = Instance("o__r-1", "o/r", "abc1234", "p", test_patch=patch,
                   raw={"eval_script": "x\n: '>>>>> Start Test Output'\ntox -e py -- a.py\n: '>>>>> End Test Output'\n"})  # fmt: skip
    assert g.test_command(row, spec) == "tox -e py -- a.py"
    script = g.eval_script(inst, spec, Path("/w s"), "export A=1", install=True)
    order = [script.index(s) for s in ("export A=1", "cd '/w s'", "pip install -e .", "git checkout abc1234 tests/test_a.py",
                                       "git apply -v -", ": '>>>>> Start Test Output'", "pytest -rA tests/test_a.py",
                                       "SWEBENCH_TEST_EXIT_CODE=$?", ": '>>>>> End Test Output'", ">>>>> Test Exit Code")]  # fmt: skip
    assert order == sorted(order)


def test_tests_that_outlive_the_timeout_are_killed_and_reported(tmp_path, world):
    specs = tmp_path / "specs.json"
    specs.write_text(json.dumps({"repos": {"acme/shapes": {"0.1": {"test_cmd": "sleep 300; pytest -rA"}}}}))
    inst = instances_file(tmp_path, world, ["acme__shapes-1"])
    run = grade(tmp_path, world, inst, "--gold", "--specs", str(specs), "--timeout", "5")
    assert run.code == 0, run.stderr
    entry = summary(tmp_path, "gold")["instances"]["acme__shapes-1"]
    assert entry["status"] == "unresolved" and "timed out after 5 s" in entry["error"]
    assert entry["timings"]["tests"] < 60
    output = (tmp_path / "graded/logs/r1/gold/acme__shapes-1/test_output.txt").read_text()
    assert ">>>>> Tests Timed Out" in output


def test_predictions_in_every_shape_the_harness_takes(tmp_path):
    one = {"model_name_or_path": "m", "instance_id": "a__b-1", "model_patch": "x"}
    for name, text in {
        "one.jsonl": json.dumps(one) + "\n",
        "many.jsonl": json.dumps(one) + "\n" + json.dumps({**one, "instance_id": "a__b-2"}) + "\n",
        "list.json": json.dumps([one]),
        "dict.json": json.dumps({"a__b-1": one}),
    }.items():
        path = tmp_path / name
        path.write_text(text)
        preds = g.load_predictions(path)
        assert preds["a__b-1"] == {"instance_id": "a__b-1", "model_name_or_path": "m", "model_patch": "x"}, (
            name
        )
