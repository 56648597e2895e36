"""The contract as a client sees it, against the default secure `agora up` (real processes).

Every ```python and ```js block of README.md and docs/*.md is taken from the markdown as it
is and run against the platform, with only what `agora env` prints: a goal submitted,
followed live to goal_completed, its trajectory queried. The AsyncAPI document validates with
the AsyncAPI project's parser (scripts/node, installed by `make node`).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_cli import AGORA, _agora, _env

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "scripts" / "node"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
RUNNERS = {"python": [sys.executable, "-"], "js": ["node", "-"]}


def _snippets() -> list[tuple[str, str, str]]:
    found = []
    for doc in DOCS:
        for n, match in enumerate(FENCE.finditer(doc.read_text()), start=1):
            if match.group(1) in RUNNERS:
                found.append((f"{doc.relative_to(ROOT)}#{n}", match.group(1), match.group(2)))
    return found


SNIPPETS = _snippets()


def _node_ready() -> None:
    if not (NODE_DIR / "node_modules" / ".installed").exists():
        pytest.fail("the Node.js checks are not installed: run `make node` (make test does)")


@pytest.fixture(scope="module")
def secure_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    data_dir = tmp_path_factory.mktemp("contract")
    env = _env(data_dir)
    up = subprocess.Popen(
        [*AGORA, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert up.stdout is not None
    deadline = time.monotonic() + 60
    printed = []
    while not any("clients connect as user" in line for line in printed):
        assert time.monotonic() < deadline, f"agora up did not come up: {printed}"
        line = up.stdout.readline()
        assert line or up.poll() is None, f"agora up exited early: {printed}"
        printed.append(line)
    try:
        # "up" means ready: the projector answers at once.
        assert _agora("query", "SELECT 1", env=env).returncode == 0
        result = _agora("env", "--json", env=env)
        assert result.returncode == 0, result.stderr
        client_env = json.loads(result.stdout)
        assert client_env["AGORA_NATS_USER"] == "client"
        yield {**env, **client_env}
    finally:
        up.send_signal(signal.SIGINT)
        up.communicate(timeout=30)  # reads what is left and closes the pipe
        assert up.returncode == 0


def test_docs_have_runnable_snippets_in_two_languages() -> None:
    languages = {language for _, language, _ in SNIPPETS}
    assert languages == {"python", "js"}, languages
    assert any(where.startswith("README.md") for where, _, _ in SNIPPETS)


@pytest.mark.slow
@pytest.mark.parametrize(("where", "language", "code"), SNIPPETS, ids=[s[0] for s in SNIPPETS])
def test_every_snippet_runs_verbatim_against_the_secure_platform(
    secure_platform: dict[str, str], where: str, language: str, code: str
) -> None:
    if language == "js":
        _node_ready()
    result = subprocess.run(
        RUNNERS[language],
        input=code,
        env={**secure_platform, "NODE_PATH": str(NODE_DIR / "node_modules")},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, f"{where}:\n{result.stdout}\n{result.stderr}"
    lines = result.stdout.splitlines()
    assert "goal_completed" in lines, f"{where} did not follow the goal live:\n{result.stdout}"
    # A trajectory row "<step> <stream_seq> goal_completed …" from the query after it.
    assert any(re.match(r"^\d+ \d+ goal_completed\b", line) for line in lines), result.stdout
    assert "Traceback" not in result.stderr


def test_the_asyncapi_document_validates_with_the_asyncapi_parser(tmp_path: Path) -> None:
    _node_ready()
    result = _agora("schema", "--asyncapi", env=_env(tmp_path))
    assert result.returncode == 0, result.stderr
    document = tmp_path / "asyncapi.json"
    document.write_text(result.stdout)
    checked = _validate(document)
    assert checked.returncode == 0, checked.stderr
    assert "valid AsyncAPI 3.0.0" in checked.stdout
    # The validator is not a rubber stamp: an operation without its action is refused.
    broken = json.loads(result.stdout)
    del broken["operations"]["submitGoal"]["action"]
    document.write_text(json.dumps(broken))
    refused = _validate(document)
    assert refused.returncode == 1
    assert "submitGoal" in refused.stderr


def _validate(document: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", str(NODE_DIR / "validate-asyncapi.js"), str(document)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
