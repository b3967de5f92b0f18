"""OID <-> MIB names, offline.

The standard MIBs come compiled from the ``pysnmp-mibs`` package (IETF and IANA MIBs in
pysnmp's module format, BSD licensed; see docs/decisions/0010-mibs-offline.md); vendor
MIBs compiled the same way (pysmi's ``mibdump --destination-format pysnmp``) are added
from directories. Nothing is fetched from the network. An OID no loaded MIB knows keeps
its numeric form: the notification is still an event.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pysnmp_mibs
from pysnmp.smi import builder, view
from pysnmp.smi.error import SmiError

from engine.errors import EngineError

STANDARD_MIBS = (
    "SNMPv2-MIB",
    "IF-MIB",
    "DISMAN-EVENT-MIB",
    "ENTITY-MIB",
    "UPS-MIB",
    "SNMP-COMMUNITY-MIB",
)
_STANDARD_DIR = Path(pysnmp_mibs.__file__).resolve().parent

Oid = tuple[int, ...]
# Names looked up and OIDs written, remembered per OID. The OIDs come from senders, so the
# memory is bounded by entries: 4,096 OIDs of at most 128 arcs (the fast path's and the
# receiver's limit) with their text are a few MiB, whatever a sender invents.
MAX_CACHED_OIDS = 4096


class MibError(EngineError):
    """A vendor MIB directory or module cannot be loaded."""


@dataclass(frozen=True)
class Resolved:
    """Where an OID sits in the MIBs: ``IF-MIB::ifIndex`` and the instance after it."""

    module: str
    symbol: str
    instance: Oid

    @property
    def name(self) -> str:
        return f"{self.module}::{self.symbol}"


@functools.lru_cache(maxsize=MAX_CACHED_OIDS)
def oid_text(oid: Oid) -> str:
    return ".".join(map(str, oid))


def parse_oid(text: str) -> Oid:
    try:
        return tuple(int(part) for part in text.strip(".").split("."))
    except ValueError as error:
        raise ValueError(f"not a numeric OID: {text!r}") from error


class MibResolver:
    """Names for OIDs, from the standard MIBs and any vendor MIB directories."""

    def __init__(self, vendor_dirs: Iterable[Path] = ()) -> None:
        self._builder = builder.MibBuilder()
        sources = [builder.DirMibSource(str(_STANDARD_DIR))]
        vendor_modules: list[str] = []
        for folder in vendor_dirs:
            if not folder.is_dir():
                raise MibError(f"MIB directory {folder} does not exist")
            sources.append(builder.DirMibSource(str(folder)))
            vendor_modules.extend(
                path.stem for path in sorted(folder.glob("*.py")) if path.stem != "__init__"
            )
        self._builder.add_mib_sources(*sources)
        for module in (*STANDARD_MIBS, *vendor_modules):
            try:
                with warnings.catch_warnings():
                    # pysnmp-mibs (and older mibdump output) call pysnmp 4's camelCase API,
                    # which pysnmp 7 still serves but flags as deprecated.
                    warnings.simplefilter("ignore", DeprecationWarning)
                    self._builder.load_modules(module)
            except SmiError as error:
                raise MibError(f"MIB module {module} cannot be loaded: {error}") from error
        self.modules = (*STANDARD_MIBS, *vendor_modules)
        self._view = view.MibViewController(self._builder)
        self.locate = functools.lru_cache(maxsize=MAX_CACHED_OIDS)(self._locate)

    def _locate(self, oid: Oid) -> Resolved | None:
        try:
            module, symbol, instance = self._view.get_node_location(oid)
        except SmiError:
            return None
        if module == "SNMPv2-SMI" and instance:
            return None  # only an arc like enterprises.9999 is known: no real name
        return Resolved(str(module), str(symbol), tuple(int(part) for part in instance))

    def notification_name(self, oid: Oid) -> str | None:
        """The name of a notification OID (exact node only), e.g. ``IF-MIB::linkDown``."""
        found = self.locate(oid)
        return found.name if found is not None and not found.instance else None

    def object_name(self, oid: Oid) -> str | None:
        """The object a varbind OID is an instance of, e.g. ``IF-MIB::ifIndex`` for
        ``1.3.6.1.2.1.2.2.1.1.3``."""
        found = self.locate(oid)
        return found.name if found is not None else None

    def canonical_trap_oid(self, oid: Oid) -> Oid:
        """A v1 trap converted per RFC 3584 becomes ``enterprise.0.specific``; an SMIv2
        MIB may define that notification as ``enterprise.specific`` (UPS-MIB does). The
        defined form, when only it is known, so both versions get the same name."""
        if self.notification_name(oid) is not None or len(oid) < 3 or oid[-2] != 0:
            return oid
        defined = (*oid[:-2], oid[-1])
        return defined if self.notification_name(defined) is not None else oid

    def value_label(self, oid: Oid, value: int) -> str | None:
        """An enumeration's label for an integer value, e.g. ifOperStatus 2 -> ``down``."""
        found = self.locate(oid)
        if found is None:
            return None
        try:
            (node,) = self._builder.import_symbols(found.module, found.symbol)
        except SmiError:
            return None
        named = getattr(getattr(node, "syntax", None), "namedValues", None)
        if not named:
            return None
        try:
            return str(named.getName(value)) if value in named else None
        except (TypeError, KeyError):
            return None

    def resolve_name(self, name: str) -> Oid:
        """``IF-MIB::linkDown`` -> its OID (for tests, tools and configuration)."""
        module, _, symbol = name.partition("::")
        try:
            (node,) = self._builder.import_symbols(module, symbol)
        except SmiError as error:
            raise MibError(f"unknown MIB name {name}") from error
        return tuple(int(part) for part in node.getName())
