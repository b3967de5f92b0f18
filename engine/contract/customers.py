"""The customer directory: who is writing, and what the rules and clocks need to know.

A YAML file (``customers: [...]``) or a CSV file with the same columns, lists separated by
``;``. An address is matched exactly first, then by its domain and the domain's parents
(``mail.acme.example`` finds ``acme.example``). A sender matched by nothing is an unknown
customer: still a ticket, marked so.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.contract import CustomerProfile, SupportPlan, TimeZoneName
from engine.contract.addresses import may_receive_mail
from engine.errors import EngineError, describe_validation

LIST_COLUMNS = ("domains", "addresses", "modules", "contacts")


class CustomerDirectoryError(EngineError):
    pass


class Customer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    name: str = ""
    domains: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    language: str | None = None
    timezone: TimeZoneName = "America/Mexico_City"
    plan: SupportPlan = SupportPlan.BUSINESS_HOURS
    version: str | None = None
    modules: tuple[str, ...] = ()
    support_hours: float | None = Field(default=None, ge=0, description="Prepaid hours")
    calendar: str | None = Field(
        default=None, description="SLA calendar name; None: the calendar of the plan"
    )
    contacts: tuple[str, ...] = Field(
        default=(),
        description="Notification contacts: told of every ticket of the customer (alarms too)",
    )

    @field_validator("domains", "addresses", "modules", "contacts")
    @classmethod
    def _lowercase(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(item.strip().lower() for item in value if item.strip())

    @field_validator("contacts")
    @classmethod
    def _mailable(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [contact for contact in value if not may_receive_mail(contact)]
        if bad:
            raise ValueError(f"not an e-mail address a person reads: {', '.join(bad)}")
        return tuple(dict.fromkeys(value))

    def profile(self) -> CustomerProfile:
        return CustomerProfile(
            customer_id=self.id,
            name=self.name,
            language=self.language,
            timezone=self.timezone,
            plan=self.plan,
            version=self.version,
            modules=self.modules,
        )


class CustomerDirectory:
    def __init__(self, customers: Iterable[Customer]) -> None:
        self.customers = tuple(customers)
        self._by_address: dict[str, Customer] = {}
        self._by_domain: dict[str, Customer] = {}
        self._by_id = {customer.id: customer for customer in self.customers}
        for customer in self.customers:
            for address in customer.addresses:
                self._claim(self._by_address, address, customer)
            for domain in customer.domains:
                self._claim(self._by_domain, domain, customer)

    @staticmethod
    def _claim(index: dict[str, Customer], key: str, customer: Customer) -> None:
        other = index.get(key)
        if other is not None and other.id != customer.id:
            raise CustomerDirectoryError(f"{key} is claimed by both {other.id} and {customer.id}")
        index[key] = customer

    def lookup(self, address: str) -> Customer | None:
        address = address.strip().lower()
        if address in self._by_address:
            return self._by_address[address]
        domain = address.rpartition("@")[2]
        while domain:
            if domain in self._by_domain:
                return self._by_domain[domain]
            domain = domain.partition(".")[2]
        return None

    def by_id(self, customer_id: str) -> Customer | None:
        return self._by_id.get(customer_id)

    def profile_of(self, address: str) -> CustomerProfile | None:
        customer = self.lookup(address)
        return customer.profile() if customer else None

    def profile_by_id(self, customer_id: str) -> CustomerProfile | None:
        customer = self._by_id.get(customer_id)
        return customer.profile() if customer else None


EMPTY_DIRECTORY = CustomerDirectory(())


def _rows_from_csv(text: str) -> list[dict[str, Any]]:
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        cleaned: dict[str, Any] = {k.strip(): (v or "").strip() for k, v in row.items() if k}
        for column in LIST_COLUMNS:
            if column in cleaned:
                cleaned[column] = [part for part in cleaned[column].split(";") if part.strip()]
        rows.append({key: value for key, value in cleaned.items() if value not in ("", [])})
    return rows


def load_directory(path: Path | None) -> CustomerDirectory:
    if path is None:
        return EMPTY_DIRECTORY
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise CustomerDirectoryError(f"{path}: cannot read the directory: {error}") from error
    rows: Any
    if path.suffix.lower() == ".csv":
        rows = _rows_from_csv(text)
    else:
        document = yaml.safe_load(text) or {}
        rows = document.get("customers") if isinstance(document, dict) else None
        if not isinstance(rows, list):
            raise CustomerDirectoryError(f"{path}: expected 'customers:' with a list")
    customers = []
    for index, row in enumerate(rows):
        try:
            customers.append(Customer.model_validate(row))
        except ValidationError as error:
            problems = describe_validation(error)
            raise CustomerDirectoryError(f"{path}: customers[{index}]: {problems}") from error
    return CustomerDirectory(customers)
