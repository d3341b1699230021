"""The `hub` CLI as a shell user and a script meet it, against a live `hub serve`: errors as
JSON with --json, `hub login` refusing a token the hub would not accept (the saved login
stays as it was), and a closed pipe (`hub ... | head -1`) ending quietly."""

from __future__ import annotations

import json
import os
import shlex
import subprocess

import pytest

from hub.client import Client
from hub.serve import free_port
from tests.e2e.conftest import HUB, ROOT

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def shell_user(live_hub):
    return live_hub.make_user("shelly")


def _env(live_hub, tmp_path, token: str | None = None) -> dict:
    env = dict(live_hub.env, HUB_CONFIG_DIR=str(tmp_path / "config"))
    env.pop("HUB_TOKEN", None)
    if token:
        env["HUB_TOKEN"] = token
    return env


def _hub(env, *args, input=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*HUB, *args], env=env, cwd=ROOT, capture_output=True, text=True, input=input,
        timeout=timeout,
    )  # fmt: skip


def _json_error(r: subprocess.CompletedProcess) -> dict:
    """The one JSON object a failed `--json` command leaves on stderr (and nothing on stdout)."""
    assert r.stdout == "", r.stdout
    doc = json.loads(r.stderr)
    assert set(doc) == {"error"} and {"code", "message"} <= set(doc["error"]), doc
    return doc["error"]


def test_errors_are_json_with_json(live_hub, shell_user, tmp_path):
    env = _env(live_hub, tmp_path, shell_user)
    r = _hub(env, "repo", "info", "shelly/no-such-repo", "--json")
    assert r.returncode == 3
    assert _json_error(r)["code"] == "repo_not_found"

    r = _hub(_env(live_hub, tmp_path, "hub_not-a-real-token"), "whoami", "--json")
    assert r.returncode == 5
    assert _json_error(r)["code"] in {"authentication_failed", "not_authenticated"}

    r = _hub(env, "repo", "create", "shelly/Bad Name!", "--json")
    assert r.returncode == 2
    err = _json_error(r)
    assert err["code"] not in {"internal_error", "usage"} and err["message"]

    r = _hub(env, "repo", "create", "--json")  # argparse's own error
    assert r.returncode == 2
    err = _json_error(r)
    assert err["code"] == "usage" and "repo" in err["message"]

    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    r = _hub(env, "whoami", "--json", "--url", closed)
    assert r.returncode == 6
    err = _json_error(r)
    assert err["code"] == "unreachable" and "127.0.0.1" in err["message"]

    # without --json the same errors stay one readable line
    r = _hub(env, "repo", "info", "shelly/no-such-repo")
    assert r.returncode == 3 and r.stderr.startswith("error: ") and "[repo_not_found]" in r.stderr


def test_login_refuses_empty_malformed_and_unknown_tokens(live_hub, shell_user, tmp_path):
    env = _env(live_hub, tmp_path)
    r = _hub(env, "login", input=shell_user + "\n")
    assert r.returncode == 0 and "as shelly" in r.stdout, r.stderr
    saved = tmp_path / "config" / "config.json"
    before = saved.read_bytes()
    assert json.loads(before) == {"url": live_hub.url, "token": shell_user}

    refused = {
        "empty argument": (["login", ""], None, 2),
        "blank stdin": (["login"], "\n", 2),
        "nothing on stdin": (["login"], "", 2),
        "spaces": (["login", "hub_abc def"], None, 2),
        "unknown token": (["login", "hub_" + "x" * 40], None, 5),
        "unknown token, --json": (["login", "--json", "hub_" + "y" * 40], None, 5),
    }
    for what, (args, stdin, code) in refused.items():
        r = _hub(env, *args, input=stdin)
        assert r.returncode == code, (what, r.stdout, r.stderr)
        assert "saved login is unchanged" in r.stderr, (what, r.stderr)
        assert r.stdout == "", (what, r.stdout)
        assert saved.read_bytes() == before, what
    assert _json_error(_hub(env, "login", "--json", "hub_" + "y" * 40))["code"]

    # a revoked token is refused too
    c = Client(url=live_hub.url, token=shell_user)
    spare = c.create_token("spare")
    [row] = [t for t in c.list_tokens() if t["name"] == "spare"]
    c.revoke_token(row["id"])
    r = _hub(env, "login", spare["token"])
    assert r.returncode == 5 and saved.read_bytes() == before
    # and the saved login still works
    r = _hub(env, "whoami")
    assert r.returncode == 0 and r.stdout.startswith("shelly")


@pytest.fixture(scope="module")
def big_run(live_hub, shell_user, tmp_path_factory):
    """A run whose `hub runs show --json` is about 200 KB: far more than a pipe holds."""
    c = Client(url=live_hub.url, token=shell_user)
    spool = tmp_path_factory.mktemp("shell-spool")
    # the project first: a 200 KB run creation answered 404 (no project yet) leaves its
    # connection unusable, and the SDK would start the run offline
    with c.init_run("shelly/pipes", name="small", spool_dir=spool) as run:
        run.log({"loss": 2.0}, step=0)
    params = {f"p{i:02d}": "v" * 4000 for i in range(50)}
    with c.init_run("shelly/pipes", name="big", params=params, spool_dir=spool) as run:
        run.log({"loss": 1.0}, step=0)
    assert run.pending() == 0 and c.get_run(run.id)["params"]["p00"] == "v" * 4000
    return run.id


def test_a_closed_pipe_ends_quietly_in_a_shell_pipeline(live_hub, shell_user, big_run, tmp_path):
    env = _env(live_hub, tmp_path, shell_user)
    hub = " ".join(shlex.quote(a) for a in HUB)
    script = f'{hub} runs show {big_run} --json | head -1; echo "status=${{PIPESTATUS[0]}}" >&2'
    r = subprocess.run(
        ["bash", "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert r.stdout == "{\n"
    assert r.stderr == "status=141\n"  # no traceback, no "Exception ignored"


def test_a_closed_pipe_ends_quietly_on_the_last_flush(live_hub, shell_user, big_run, tmp_path):
    """The reader is gone before the command writes anything (its short output would fit
    in the buffer: the error comes when the CLI flushes at the end)."""
    env = _env(live_hub, tmp_path, shell_user)
    for args in (["runs", "list", "shelly/pipes"], ["runs", "show", big_run, "--json"]):
        read_end, write_end = os.pipe()
        proc = subprocess.Popen(
            [*HUB, *args], env=env, cwd=ROOT, stdout=write_end, stderr=subprocess.PIPE
        )
        os.close(write_end)
        os.close(read_end)  # nobody will read
        _, err = proc.communicate(timeout=120)
        assert (proc.returncode, err) == (141, b""), (args, err.decode())


def test_a_pipe_read_to_the_end_changes_nothing(live_hub, shell_user, big_run, tmp_path):
    env = _env(live_hub, tmp_path, shell_user)
    r = subprocess.run(
        [*HUB, "runs", "list", "shelly/pipes"], env=env, cwd=ROOT, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout.splitlines()[0].startswith("2 run(s)") and big_run in r.stdout


def test_with_json_every_result_is_json(live_hub, shell_user, tmp_path):
    """A script can parse what each command prints with --json, writes included."""
    env = _env(live_hub, tmp_path, shell_user)
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "notes.txt").write_text("hello\n")
    steps = [
        ["login", shell_user],
        ["whoami"],
        ["repo", "create", "shelly/json-out"],
        ["push", str(tmp_path / "w"), "--repo", "shelly/json-out", "-m", "notes", "-q"],
        ["branch", "create", "shelly/json-out", "exp"],
        ["branch", "protect", "shelly/json-out", "exp"],
        ["branch", "unprotect", "shelly/json-out", "exp"],
        ["tag", "create", "shelly/json-out", "v1", "main"],
        ["tag", "list", "shelly/json-out"],
        ["tag", "delete", "shelly/json-out", "v1"],
        ["branch", "delete", "shelly/json-out", "exp"],
        ["token", "create", "json-spare", "--scope", "read"],
        ["token", "list"],
        ["sync"],
        ["repo", "delete", "shelly/json-out"],
    ]
    out = {}
    for args in steps:
        r = _hub(env, *args, "--json", input="")
        assert r.returncode == 0, (args, r.stderr)
        out[" ".join(args[:2])] = json.loads(r.stdout)
    assert out[f"login {shell_user}"]["username"] == "shelly"
    assert out["repo create"]["id"] == "shelly/json-out"
    assert out["branch create"]["name"] == "exp"
    assert out["branch protect"] == {"branch": "exp", "protected": True}
    assert out["tag create"]["name"] == "v1" and out["tag delete"] == {"deleted": "v1"}
    spare = out["token create"]
    assert spare["token"] and any(t["name"] == "json-spare" for t in out["token list"])
    [row] = [t for t in out["token list"] if t["name"] == "json-spare"]
    r = _hub(env, "token", "revoke", str(row["id"]), "--json")
    assert json.loads(r.stdout) == {"revoked": row["id"]}
    assert out["sync"]["runs_left"] == 0 and out["repo delete"] == {"deleted": "shelly/json-out"}
