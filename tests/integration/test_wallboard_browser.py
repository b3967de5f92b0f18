"""The wallboard in a real browser: headless Chromium, driven by selenium through Debian's
chromedriver, against ``engine up``. It signs in with a tickets:read token; a P1 outage
mail sent afterwards through SMTP appears within 5 s; its resolution removes it; the page
logs no JavaScript error. Screenshots are kept as artefacts (their path is printed).

``WALLBOARD_DOCS_SCREENSHOT=1`` also writes the screenshot with the P1 on the board to
``docs/wallboard.png`` (the README's).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.passwords import hash_password
from tests.integration.api_process import TOKEN, post_json
from tests.integration.harness import (
    PROJECT_ROOT,
    EngineProcess,
    engine_env,
    send_mail,
    support_mail,
    wait_until,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WALLBOARD_TOKEN = "wallboard.wall-screen-s3cret"
OUTAGE = (
    "La central está caída desde las 9, no entra ni sale ninguna llamada en toda la empresa. "
    "Somos 60 personas sin teléfono."
)
OTHER_MAILS = (
    ("Eco en las llamadas", "Desde ayer se escucha eco en algunas llamadas salientes."),
    ("Agregar extensiones", "Necesitamos agregar cinco extensiones nuevas para ventas."),
    ("Consulta sobre versiones", "¿Qué versión de Issabel nos recomiendan instalar?"),
)
APPEARS_WITHIN_SECONDS = 5  # issue 16: the P1 is on the wallboard within 5 s of the mail


def message_id() -> str:
    return f"<{uuid.uuid4()}@acme.example>"


def browser() -> Any:
    """Headless Chromium, or a failure that says how to install it (never a skip)."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} missing: run the bootstrap (make bootstrap, as root: it "
            "installs Debian's chromium and chromium-driver)"
        )
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is missing: run the bootstrap (make bootstrap)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1920,1080",
        "--lang=en-US",
    ):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    # A wall screen's full 1920x1080 page, whatever the window's own frame takes.
    frame = driver.execute_script("return window.outerHeight - window.innerHeight")
    driver.set_window_size(1920, 1080 + int(frame))
    return driver


@pytest.fixture
def wallboard_engine(topics: str, topic_prefix: str, tmp_path: Path) -> Iterator[EngineProcess]:
    tokens = tmp_path / "tokens"
    tokens.write_text(
        f"wallboard:tickets:read:{hash_password(WALLBOARD_TOKEN, 1000)}\n"
        f"tester:activity:write:{hash_password(TOKEN, 1000)}\n"
    )
    env = engine_env(tmp_path / "state", topics, topic_prefix, ENGINE_API_TOKENS_FILE=str(tokens))
    running = EngineProcess(env, tmp_path / "engine.log")
    running.start("--bootstrap-servers", topics)
    yield running
    running.stop()


def p1_rows(driver: Any) -> dict[str, str]:
    """The P1 list as shown: ticket id -> the row's text."""
    rows = driver.execute_script(
        "return [...document.querySelectorAll('#p1-rows tr')]"
        ".map(row => [row.dataset.ticket, row.innerText]);"
    )
    return {ticket: text for ticket, text in rows}


def keep(driver: Any, tmp_path: Path, name: str) -> Path:
    """A screenshot under the test's tmp dir, copied where it outlives the run."""
    shot = tmp_path / name
    assert driver.save_screenshot(str(shot)), f"no screenshot {shot}"
    kept = Path(os.environ.get("WALLBOARD_ARTEFACTS", Path(tempfile.gettempdir()) / "wallboard"))
    kept.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(shot, kept / name))


def test_a_p1_appears_on_the_wallboard_and_leaves_when_resolved(
    wallboard_engine: EngineProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = wallboard_engine
    base = f"http://127.0.0.1:{engine.api_port}"
    driver = browser()
    kept: list[Path] = []
    try:
        driver.get(f"{base}/wallboard")
        field = driver.find_element("id", "token")
        field.send_keys(WALLBOARD_TOKEN)
        driver.find_element("css selector", "#sign-in-form button[type=submit]").click()
        wait_until(
            lambda: driver.find_element("id", "connection").get_attribute("class")
            == "connection live",
            30, "the wallboard to sign in and follow the live stream",
        )  # fmt: skip
        # Signed in: the token is in neither the address nor the page.
        assert WALLBOARD_TOKEN not in driver.current_url
        assert WALLBOARD_TOKEN not in driver.page_source
        assert driver.find_element("id", "token").get_attribute("value") == ""
        assert p1_rows(driver) == {}

        if os.environ.get("WALLBOARD_DOCS_SCREENSHOT"):  # a fuller board for the README
            for subject, body in OTHER_MAILS:
                assert (
                    send_mail(engine.smtp_port, support_mail(subject, body, message_id()))[0] == 250
                )
        mail = support_mail("Urgente: central caída", OUTAGE, message_id())
        code, reply = send_mail(engine.smtp_port, mail)
        sent = time.monotonic()
        assert code == 250, reply
        ticket = reply.decode().rsplit(" ", 1)[-1]
        wait_until(
            lambda: ticket in p1_rows(driver), APPEARS_WITHIN_SECONDS,
            f"the P1 {ticket} on the wallboard within {APPEARS_WITHIN_SECONDS} s of the mail",
            on_timeout=engine.log,
        )  # fmt: skip
        shown = time.monotonic() - sent
        row = p1_rows(driver)[ticket]
        assert "central caída" in row and "nobody" in row and "L3" in row, row
        l3 = driver.find_element("id", "tier-L3").text
        assert "▲ P1" in l3, l3
        kept.append(keep(driver, tmp_path, "wallboard-p1.png"))
        if os.environ.get("WALLBOARD_DOCS_SCREENSHOT"):
            shutil.copy(kept[-1], PROJECT_ROOT / "docs" / "wallboard.png")

        resolved = {
            "activity_id": "resolve-1", "activity": "resolved", "actor": "ana",
            "note": "the trunk is back; calls flow again",
        }  # fmt: skip
        status, _, answer = post_json(f"{base}/tickets/{ticket}/activity", resolved)
        assert status == 202, answer
        wait_until(lambda: ticket not in p1_rows(driver), 30, f"{ticket} to leave the P1 list")
        kept.append(keep(driver, tmp_path, "wallboard-resolved.png"))

        errors = [
            entry for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" or "Uncaught" in entry["message"]
        ]  # fmt: skip
        assert errors == [], errors
    finally:
        if not kept:
            kept.append(keep(driver, tmp_path, "wallboard-failed.png"))
        driver.quit()
        with capsys.disabled():
            print(f"\nwallboard screenshots: {', '.join(str(path) for path in kept)}")
    print(f"the P1 was on the wallboard {shown:.2f}s after the mail was accepted")
