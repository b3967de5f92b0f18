"""``engine api`` on its own, as a process, for the contract and outage tests."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.passwords import hash_password
from tests.integration.harness import engine_env, port_open, wait_until

ALL_SCOPES = "chat:write,phone:write,activity:write,tickets:read"
TOKEN = "tester.contract-tester-secret"


@contextmanager
def api_process(bootstrap: str, state: Path, topic_prefix: str = "", **extra: str) -> Iterator[str]:
    """Runs ``engine api`` with one all-scopes token (TOKEN); yields its base URL."""
    state.mkdir(parents=True, exist_ok=True)
    tokens = state / "tokens"
    tokens.write_text(f"tester:{ALL_SCOPES}:{hash_password(TOKEN, 1000)}\n")
    env = engine_env(state, bootstrap, topic_prefix, ENGINE_API_TOKENS_FILE=str(tokens), **extra)
    port = int(env["ENGINE_API_PORT"])
    log_path = state / "api.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "engine", "api"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_until(
            lambda: process.poll() is None and port_open(port),
            60,
            f"engine api to listen on {port}",
            on_timeout=lambda: log_path.read_text(errors="replace")[-4000:],
        )
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def get_json(url: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def post_json(url: str, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    """Status, headers and JSON body, for refusals too."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, dict(answer.headers), json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, dict(refused.headers), json.loads(refused.read())
