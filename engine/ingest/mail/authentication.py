"""The sender checks a relay stamped on a mail: ``failed_checks(results, received_spf)``.

The relay in front of the engine (Postfix with an SPF policy service and OpenDMARC, a
cloud gateway ...) records what it found in ``Authentication-Results:`` (RFC 8601:
``mx.example; spf=fail smtp.mailfrom=...; dmarc=fail header.from=...``) and
``Received-SPF:`` (RFC 7208: ``fail (...) ...``). A failing SPF or DMARC check means the
From address may be forged, and the mail must not be answered (backscatter).

Every such field counts, the relay's and any the sender wrote: a failure can only withhold
an acknowledgement, never send one, so a field the sender forged harms no one but its
sender. Pure and linear in the fields' length.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from engine.contract import SenderCheck

MAX_FIELDS_READ = 50
_COMMENT = re.compile(r"\([^()]*\)")
_RESULT = re.compile(r"^\s*([a-z]+)\s*=\s*([a-z]+)", re.IGNORECASE)
_SPF_RESULT = re.compile(r"^\s*([a-z]+)", re.IGNORECASE)
_CHECKS = {check.value: check for check in SenderCheck}


def failed_checks(
    authentication_results: Iterable[str], received_spf: Iterable[str]
) -> tuple[SenderCheck, ...]:
    """The checks any of the fields says failed, each once, in ``SenderCheck``'s order."""
    failed: set[SenderCheck] = set()
    for field in list(authentication_results)[:MAX_FIELDS_READ]:
        # The first element is the authserv-id; each of the others one method's result.
        for result in _COMMENT.sub(" ", field).split(";")[1:]:
            found = _RESULT.match(result)
            if found and found.group(2).lower() == "fail":
                check = _CHECKS.get(found.group(1).lower())
                if check is not None:
                    failed.add(check)
    for field in list(received_spf)[:MAX_FIELDS_READ]:
        found = _SPF_RESULT.match(field)
        if found and found.group(1).lower() == "fail":
            failed.add(SenderCheck.SPF)
    return tuple(check for check in SenderCheck if check in failed)
