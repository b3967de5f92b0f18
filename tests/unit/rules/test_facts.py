"""Facts a message states about the customer's system (``stated_facts``), and how the
rules use them when the customer directory lacks them."""

from __future__ import annotations

import pytest

from engine.contract import Channel, CustomerProfile, TicketMessage
from engine.rules.classify import classify
from engine.rules.facts import stated_facts
from engine.rules.ruleset import load_ruleset


def said(body: str, subject: str = "", customer: CustomerProfile | None = None) -> TicketMessage:
    return TicketMessage(channel=Channel.EMAIL, subject=subject, body=body, customer=customer)


@pytest.mark.parametrize(
    ("body", "version"),
    [
        ("Tenemos Issabel 4 instalado en la oficina", "4"),
        ("buenas, tenemos ISSABEL5 con 3 troncales", "5"),
        ("we are running Issabel 5.0.1 on a Dell server", "5.0.1"),
        ("Usamos la versión 2.2 de Issabel desde hace años", "2.2"),
        ("Tienen versión 2.2. Desde las 11:30 se cae", "2.2"),
        ("the box is running 4.0.0-6, never upgraded", "4.0.0-6"),
        ("we're on 2.2 still if that changes anything", "2.2"),
        ("Issabel v5.0.1 with pjsip", "5.0.1"),
        ("PBX v5.0.1, pjsip trunks", "5.0.1"),
        ("Asterisk 13.38 sobre Issabel 4.0.0, dejo los cores", "4.0.0"),
        ("Issabel 4.0.0-6 (Asterisk 13) and everything works", "4.0.0-6"),
        ("queremos actualizar a Issabel 5 pero hoy tenemos Issabel 4", "4"),
        ("we upgraded to Issabel 5 last week and transfers fail", "5"),
        ("mi extensión es la 4001 y tenemos la versión 4", "4"),
        ("estamos en la 4.0 todavía", "4.0"),
    ],
)
def test_a_stated_issabel_version(body: str, version: str) -> None:
    found = stated_facts(said(body)).version
    assert found is not None and found.value == version


@pytest.mark.parametrize(
    "body",
    [
        "asterisk 13.38 crashed twice today",
        "Asterisk version 13.38 on CentOS 7",
        "el asterisk13 13.38.3-2 del repo se reinicia",
        "llámenme al 55 1234 5678 o a la ext 4001",
        "the Issabel at 192.168.1.10 does not answer",
        "Issabel 10.0.0.5 no responde al ping",
        "desde las 4.30 pm no entran llamadas",
        "since 4.30 pm calls fail with SIP/2.0 403 Forbidden",
        "firmware version 2.1 on the Yealink phones",
        "the carrier wants TLS v1.2 and SRTP",
        "we plan to upgrade to Issabel 5 next month",
        "tenemos Issabel hace 3 años sin problemas",
        "el issabel se reinicia 3 veces al día",
        "PHP version 5.4 errors in the log",
        "la versión 5 de Zoiper no registra",
        "Issabel 2017 install, never touched",
        "running 4.30 pm shift, 12 agents",
        "Issabel 5 extensions do not register",
        "MIME-Version: 1.0\nla extension 102 no suena",
    ],
)
def test_numbers_that_are_not_the_issabel_version(body: str) -> None:
    assert stated_facts(said(body)).version is None


def test_the_subject_is_read_before_the_body() -> None:
    found = stated_facts(said("now we are on Issabel 5", subject="Issabel 4 question")).version
    assert found is not None and (found.value, found.words) == ("4", "Issabel 4")


@pytest.mark.parametrize(
    ("body", "stated"),
    [
        ("tenemos el módulo de Call Center y las campañas no arrancan", True),
        ("el modulo del callcenter no carga", True),
        ("the Call Center module's agent console freezes", True),
        ("We updated the Call Center module packages on Saturday", True),
        ("usamos la marcación automática que trae el Call Center de Issabel", True),
        ("no funciona el módulo de Call Center desde ayer", True),
        ("issabel-callcenter was updated by yum", True),
        ("los 22 agentes del call center están parados", False),
        ("somos un callcenter de cobranza", False),
        ("our call center has 35 agents sitting idle", False),
        ("no tenemos el módulo de call center, solo colas", False),
        ("we don't use the Call Center module at all", False),
        ("la instalación es sin el módulo de call center", False),
    ],
)
def test_the_call_center_module(body: str, stated: bool) -> None:
    modules = stated_facts(said(body)).modules
    assert [m.value for m in modules] == (["callcenter"] if stated else [])


@pytest.mark.parametrize(
    ("body", "hardware", "appliance"),
    [
        ("son Grandstream GXP1625 y Fanvil X3U", ["Grandstream GXP1625", "Fanvil X3U"], False),
        ("sysDescr: Yealink SIP-T46S 66.86.0.1", ["Yealink SIP-T46S"], False),
        ("the PRI is on a Digium TE420 card", ["Digium TE420"], False),
        ("about 35 Polycom phones", ["Polycom"], False),
        ("Appliance dead after storm, no LEDs", [], True),
        ("compramos un equipo certificado Issabel el año pasado", [], True),
        ("the phones reboot every hour", [], False),
    ],
)  # fmt: skip
def test_hardware_models_and_a_certified_appliance(
    body: str, hardware: list[str], appliance: bool
) -> None:
    facts = stated_facts(said(body))
    assert [h.value for h in facts.hardware] == hardware
    assert (facts.appliance is not None) == appliance


RULES = load_ruleset()


def test_a_stated_version_and_module_tag_an_unknown_customer_and_say_so() -> None:
    decided = classify(said("hola, tenemos Issabel 4 con el módulo de call center"), RULES)

    assert {"version-limited", "eol-callcenter"} <= set(decided.tags)
    evidence = {m.rule_id: m.matched for m in decided.matches}
    assert evidence["version-limited"] == ("version 4 (stated in the message) < 5",)
    assert evidence["eol-callcenter"] == ("modules include callcenter (stated in the message)",)
    assert (
        'stated in the message: version 4 ("Issabel 4"), module callcenter '
        '("módulo de call center")'
    ) in decided.explanation


def test_the_directory_wins_when_it_knows() -> None:
    known = CustomerProfile(customer_id="c1", version="5.0.0", modules=("callcenter",))

    decided = classify(said("we are still on Issabel 4", customer=known), RULES)

    assert "version-current" in decided.tags and "version-limited" not in decided.tags
    evidence = {m.rule_id: m.matched for m in decided.matches}
    assert evidence["version-current"] == ("version 5.0.0 >= 5",)
    assert "the directory's version 5.0.0 wins over the stated one" in decided.explanation


def test_a_directory_without_version_or_modules_takes_the_message() -> None:
    partly = CustomerProfile(customer_id="c1")

    decided = classify(said("Issabel 5.0.1, the Call Center module", customer=partly), RULES)

    assert {"version-current", "eol-callcenter"} <= set(decided.tags)


def test_a_message_that_states_nothing_explains_nothing_more() -> None:
    decided = classify(said("the phones reboot every hour"), RULES)

    assert not any(reason.startswith("stated in the message") for reason in decided.explanation)
    assert not {"version-limited", "version-current", "eol-callcenter"} & set(decided.tags)
