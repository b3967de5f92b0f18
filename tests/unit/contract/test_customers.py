from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.contract import SupportPlan
from engine.contract.customers import CustomerDirectoryError, load_directory

EXAMPLE = Path(__file__).resolve().parents[3] / "deploy" / "customers.example.yaml"


def test_senders_match_by_address_then_domain_and_parent_domains() -> None:
    directory = load_directory(EXAMPLE)

    assert directory.lookup("Director.ACME@gmail.example").id == "acme"  # type: ignore[union-attr]
    assert directory.lookup("ops@acme.example").id == "acme"  # type: ignore[union-attr]
    assert directory.lookup("noc@mail.globex.example").id == "globex"  # type: ignore[union-attr]
    assert directory.lookup("someone@unknown.example") is None


def test_a_profile_carries_what_rules_and_clocks_need() -> None:
    profile = load_directory(EXAMPLE).profile_of("ops@globex.example")

    assert profile is not None
    assert (profile.plan, profile.timezone, profile.version) == (
        SupportPlan.ALWAYS,
        "America/Bogota",
        "5.1",
    )


def test_csv_directories_split_lists_on_semicolons(tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text(
        "id,name,domains,modules,plan,timezone,contacts\n"
        "initech,Initech,initech.example;initrode.example,callcenter;reports,24x7,Europe/Madrid,"
        "NOC@initech.example; it@initech.example\n",
        encoding="utf-8",
    )

    customer = load_directory(path).lookup("bill@initrode.example")

    assert customer is not None
    assert customer.modules == ("callcenter", "reports")
    assert customer.plan is SupportPlan.ALWAYS
    assert customer.contacts == ("noc@initech.example", "it@initech.example")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("customers:\n  - {id: a, timezone: Mars/Olympus}", "customers[0]: timezone"),
        ("customers:\n  - {id: a, plan: weekends}", "customers[0]: plan"),
        ("customers:\n  - {id: a, color: red}", "customers[0]: color"),
        ("customers:\n  - {id: a, domains: [x.example]}\n  - {id: b, domains: [x.example]}",
         "x.example is claimed by both a and b"),
        ("clients: []", "expected 'customers:' with a list"),
        ("customers:\n  - {id: a, contacts: [noc@a.example, postmaster@a.example, noc]}",
         "customers[0]: contacts: Value error, not an e-mail address a person reads: "
         "postmaster@a.example, noc"),
    ],
)  # fmt: skip
def test_a_bad_directory_is_refused_naming_the_entry(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "customers.yaml"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(CustomerDirectoryError, match=re.escape(expected)):
        load_directory(path)
