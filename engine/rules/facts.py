"""stated_facts(message) -> StatedFacts: what a message says about the customer's system.

A customer often writes what the directory does not know: "tenemos Issabel 4", "we use the
Call Center module", "los teléfonos son Grandstream GXP1625". These become facts of the
ticket for the customer conditions of the rules (``version_below``, ``modules_any``) when
the directory lacks them; the directory wins when it knows.

Only an Issabel version is taken: a number is a version when Issabel, the word "version"
or a "v" names it, or when the customer says they run it ("running 4.0.0-6", "we're on
2.2"), and not when it is another product's ("Asterisk 13.38", "firmware version 2.1",
"TLS v1.2"), a count or a time ("Issabel 3 veces", "version 4.30 pm"), an address
("Issabel 10.0.0.5") or the target of an upgrade ("upgrade to Issabel 5"). The first
version stated wins (subject, then body).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.contract import TicketMessage
from engine.rules.text import NEGATORS, words

CALLCENTER = "callcenter"
# Issabel (and the Elastix it forked) never had a major version above this; a larger
# number after "Issabel" is an address, a year or a count.
MAX_MAJOR = 9

_NUMBER = r"(?P<version>\d{1,2}(?:\.\d{1,3}){0,2}(?:-\d{1,3})?)(?!\.?\d)"
_DOTTED = r"(?P<version>\d{1,2}(?:\.\d{1,3}){1,2}(?:-\d{1,3})?)(?!\.?\d)"
_VERSION_PATTERNS = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        # "Issabel 4", "Issabel5", "Issabel PBX 5.0", "Issabel version 4.0.0", "issabel v5"
        rf"\bissabel[\s-]*(?:pbx\s+)?(?:versi[oó]n\s+|ver\.?\s*|v\.?\s*)?{_NUMBER}",
        # "versión 2.2", "la version 5.0.1 de Issabel", "version: 4"
        rf"\b(?:versi[oó]n)\s*(?:de\s+issabel\s+|of\s+issabel\s+)?(?::\s*)?v?{_NUMBER}",
        # "v5.0.1"
        rf"\bv\.?{_DOTTED}",
        # "running 4.0.0-6", "we're on 2.2", "estamos en 4.0"
        r"\b(?:running|we['\u2019]?re\s+(?:still\s+)?on|we\s+are\s+(?:still\s+)?on|still\s+on"
        rf"|estamos\s+en|seguimos\s+en|corriendo|corremos)\s+(?:la\s+|the\s+)?v?{_DOTTED}",
    )
)
# Products whose versions are not Issabel's, when named just before the version.
_OTHER_PRODUCTS = frozenset(
    {"asterisk", "asterisk13", "asterisk16", "freepbx", "elastix", "php", "centos", "rocky",
     "linux", "kernel", "firmware", "fw", "tls", "ssl", "snmp", "http", "https", "sip",
     "pjsip", "pjproject", "dahdi", "libpri", "mysql", "mariadb", "python", "openssl",
     "apache", "chrome", "firefox", "windows", "android", "ios", "zoiper", "webrtc",
     "vicidial", "node", "java", "yealink", "grandstream", "fanvil", "polycom", "cisco",
     "snom", "sangoma", "digium", "patton", "api", "ipv", "rtp", "srtp", "codec", "mime"}
)  # fmt: skip
# Words after a number that make it a count, a duration or a time, not a version.
_COUNTED = frozenset(
    {"am", "pm", "h", "hs", "hrs", "hr", "horas", "hours", "min", "mins", "minutos",
     "minutes", "seg", "segundos", "seconds", "sec", "secs", "anos", "years", "veces",
     "times", "ext", "extensiones", "extensions", "agentes", "agents", "lineas", "lines",
     "usuarios", "users", "personas", "people", "sedes", "sites", "troncales", "trunks",
     "dias", "days", "meses", "months", "semanas", "weeks", "gb", "mb", "tb", "ghz", "khz",
     "mbps", "kbps", "servidores", "servers", "telefonos", "phones", "puestos",
     "posiciones", "seats", "canales", "channels", "internos", "anexos"}
)  # fmt: skip
# An upgrade's target is not the running version: "upgrade to Issabel 5", "migrar a la 5".
_TARGET_BEFORE = re.compile(
    r"\b(?:upgrade|upgrading|migrate|migrating|move|moving|go|going|update|updating|"
    r"actualizar|migrar|pasar|pasarnos|mover|vs\.?|versus|than|que)\s+(?:to\s+|a\s+|al\s+)?"
    r"(?:the\s+|la\s+|el\s+)?(?:issabel\s+)?(?:versi[oó]n\s+)?$",
    re.IGNORECASE,
)
_AFTER_OF = re.compile(r"\s+(?:de|del|of|for|para)\s+(?:la\s+|el\s+|the\s+)?([\w-]+)", re.I)

_CALLCENTER_PATTERNS = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        # "módulo de Call Center", "modulo del call center", "módulo Callcenter"
        r"\bm[oó]dulo\s+(?:de\s+|del\s+)?(?:issabel\s+)?call[\s-]?cent(?:er|re)\b",
        # "the Call Center module", "callcenter module's console"
        r"\bcall[\s-]?cent(?:er|re)\s+(?:module|m[oó]dulo)\b",
        # "el Call Center de Issabel", "Issabel's Call Center", "issabel-callcenter"
        r"\bcall[\s-]?cent(?:er|re)\s+(?:de|of)\s+issabel\b",
        r"\b(?:issabel|elastix)(?:['\u2019]s)?[\s-]+call[\s-]?cent(?:er|re)\b",
        # "callcenter" written as the module's one-word name
        r"(?<![\w-])callcenter\b",
    )
)
# "callcenter" after these is the customer's business, not the module.
_BUSINESS_BEFORE = frozenset(
    {"un", "una", "a", "an", "el", "la", "the", "nuestro", "nuestra", "our", "somos", "del",
     "todo", "whole", "entire", "de"}
)  # fmt: skip
# A negation means "we do not have it" only with these verbs: "no tenemos el módulo de
# call center" is no module, "no funciona el módulo de call center" is one.
_HAVE = frozenset(
    {"tenemos", "tengo", "tienen", "tiene", "usamos", "uso", "usan", "usa", "utilizamos",
     "contamos", "have", "has", "use", "uses", "using", "run", "running", "installed",
     "instalado", "instalamos"}
)  # fmt: skip

_HARDWARE = re.compile(
    r"\b(?P<maker>yealink|grandstream|fanvil|polycom|snom|cisco|panasonic|avaya|sangoma|"
    r"digium|patton|dinstar|openvox|khomp|audiocodes|hp\s+proliant|dell\s+poweredge)"
    r"(?:\s+(?P<model>(?:sip-)?(?=[\w-]*[a-z])[a-z]{0,5}\d[\w-]*))?",
    re.IGNORECASE,
)
_APPLIANCE = re.compile(
    r"\b(?:(?:issabel|elastix)\s+(?:appliance|box)|appliances?|(?:certified|certificad[oa])"
    r"\s+(?:issabel\s+)?(?:appliance|hardware|server|equipment)|(?:equipo|servidor|hardware)"
    r"\s+(?:issabel\s+)?certificad[oa])\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Stated:
    """One fact and the words of the message that stated it."""

    value: str
    words: str


@dataclass(frozen=True)
class StatedFacts:
    version: Stated | None = None
    modules: tuple[Stated, ...] = ()
    hardware: tuple[Stated, ...] = ()
    appliance: Stated | None = None

    def __bool__(self) -> bool:
        return bool(self.version or self.modules or self.hardware or self.appliance)

    def describe(self) -> list[str]:
        """Each fact as an explanation reads it: 'version 4 ("Issabel 4")'."""
        found = [f'version {self.version.value} ("{self.version.words}")'] if self.version else []
        found += [f'module {m.value} ("{m.words}")' for m in self.modules]
        found += [f"hardware {h.value}" for h in self.hardware]
        if self.appliance:
            found.append(f'a certified appliance ("{self.appliance.words}")')
        return found


def _before(text: str, start: int, limit: int = 60) -> str:
    """The text just before ``start``, within the same sentence."""
    return re.split(r"[.;:!?\n]", text[max(0, start - limit) : start])[-1]


def _next_word(text: str, end: int) -> str:
    rest = text[end : end + 30].lstrip()
    if rest.startswith("%"):
        return "%"
    following = words(rest)
    return following[0] if following else ""


def _is_issabel_version(text: str, found: re.Match[str]) -> bool:
    version = found.group("version")
    if int(re.split(r"[.-]", version)[0]) > MAX_MAJOR or version.startswith("0"):
        return False
    if _next_word(text, found.end()) in _COUNTED:
        return False
    named_issabel = found.group(0).lower().startswith("issabel")
    if not named_issabel:
        if set(words(_before(text, found.start(), 30))[-2:]) & _OTHER_PRODUCTS:
            return False
        after = _AFTER_OF.match(text, found.end())
        if after and words(after.group(1)) and words(after.group(1))[0] != "issabel":
            return False
    return not _TARGET_BEFORE.search(_before(text, found.start()))


def _version(texts: list[str]) -> Stated | None:
    for text in texts:
        candidates = [
            found
            for pattern in _VERSION_PATTERNS
            for found in pattern.finditer(text)
            if _is_issabel_version(text, found)
        ]
        if candidates:
            first = min(candidates, key=lambda found: found.start())
            return Stated(first.group("version"), " ".join(first.group(0).split()))
    return None


def _denied(text: str, start: int) -> bool:
    before = words(_before(text, start))[-5:]
    if {"sin", "without"} & set(before[-2:]):
        return True
    negated = [i for i, word in enumerate(before) if word in NEGATORS]
    return bool(negated) and any(word in _HAVE for word in before[negated[0] :])


def _callcenter(texts: list[str]) -> Stated | None:
    for text in texts:
        for pattern in _CALLCENTER_PATTERNS:
            for found in pattern.finditer(text):
                before = words(_before(text, found.start()))
                if (
                    pattern is _CALLCENTER_PATTERNS[-1]
                    and before[-1:]
                    and (before[-1] in _BUSINESS_BEFORE)
                ):
                    continue
                if not _denied(text, found.start()):
                    return Stated(CALLCENTER, " ".join(found.group(0).split()))
    return None


def _hardware(texts: list[str]) -> tuple[Stated, ...]:
    seen: dict[str, Stated] = {}
    for text in texts:
        for found in _HARDWARE.finditer(text):
            maker = " ".join(part.capitalize() for part in found.group("maker").split())
            model = found.group("model")
            name = f"{maker} {model.upper()}" if model else maker
            seen.setdefault(name.lower(), Stated(name, " ".join(found.group(0).split())))
    return tuple(seen.values())


def _appliance(texts: list[str]) -> Stated | None:
    for text in texts:
        found = _APPLIANCE.search(text)
        if found:
            return Stated("appliance", " ".join(found.group(0).split()))
    return None


def stated_facts(message: TicketMessage) -> StatedFacts:
    texts = [text for text in (message.subject, message.body) if text]
    callcenter = _callcenter(texts)
    return StatedFacts(
        version=_version(texts),
        modules=(callcenter,) if callcenter else (),
        hardware=_hardware(texts),
        appliance=_appliance(texts),
    )
