"""The engine's exceptions: one tree, so ``except EngineError`` catches every refusal
the engine means (the CLI prints it as one line; anything else is a bug and a traceback).

Each error lives beside the code that raises it (the module in brackets) and derives from
EngineError; tests/unit/test_errors.py keeps this drawing and the code in agreement.

EngineError
 ├── BrokerError               the local broker cannot be fetched, started or stopped
 ├── ProvisioningError         topics cannot be created or differ from the contract
 ├── PublishError              Kafka did not acknowledge a record in time
 ├── RulesError                a rule set fails validation (names file, line and path)
 ├── CustomerDirectoryError    [contract.customers] the customer directory is not valid
 ├── InvalidTransitionError    [triage.activity] an activity cannot apply to the ticket
 ├── CalendarError             [sla.calendars] an SLA calendar or time zone is not valid
 ├── ApiError                  [api.context] an HTTP refusal: status, body and headers
 ├── ApiSecurityError          [api.security] the API token file is not valid
 ├── CustomerClaimError        [api.security] a message claims a customer not its token's
 ├── SmtpSecurityError         [ingest.mail.security] SMTP users or TLS files are not valid
 ├── XforwardError             [ingest.mail.xforward] an XFORWARD command it cannot take
 ├── EmailParseError           [ingest.mail.parse] a mail the parser cannot read (*)
 ├── ParseBudgetError          [ingest.mail.parse] a mail past a bound or its parse budget;
 │                             an EmailParseError (*)
 ├── NotificationError         [ingest.snmp.trap_event] a trap that cannot be an event (*)
 ├── BerError                  [ingest.snmp.fastpath] not a v2c notification it reads
 ├── LimitError                [ingest.snmp.fastpath] an OID past SNMP's limits; a BerError
 ├── MibError                  [ingest.snmp.mibs] a MIB directory or module cannot load
 ├── SnmpUsersError            [ingest.snmp.users] the SNMPv3 users file is not valid
 ├── DeviceDirectoryError      [ingest.snmp.devices] the device directory is not valid
 ├── SpoolError                [ingest.snmp.spool] the trap spool directory is unusable
 ├── UnknownTopicError         [kafka.follower] a followed topic is not provisioned (retried)
 ├── KafkaAuthenticationError  [kafka.security] a broker refused the engine's SASL credentials
 ├── AgentsDirectoryError      [workers.agents] the agents directory is not valid
 ├── EscalationFileError       [workers.escalation] the escalation matrix is not valid
 ├── UnusableRecordError       [workers.service] a record the tier workers do not read there
 └── NoticeRefusedError        [notify.notifier] the relay refused a notice for good (5xx)

(*) also a ValueError (``class EmailParseError(EngineError, ValueError)``): they report
bad input, which callers of a parser catch as ValueError; their ``except ValueError``
clauses keep working.
"""

from pydantic import ValidationError


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""


class BrokerError(EngineError):
    pass


class ProvisioningError(EngineError):
    pass


class RulesError(EngineError):
    pass


class PublishError(EngineError):
    pass


def field_path(location: tuple[int | str, ...]) -> str:
    """A pydantic error location as a path: ("data", "rcpt_to", 0) -> "data.rcpt_to.0"."""
    return ".".join(str(part) for part in location)


def describe_validation(error: ValidationError) -> str:
    """Every problem of a validation error, as "path: message; ..."."""
    return "; ".join(f"{field_path(issue['loc'])}: {issue['msg']}" for issue in error.errors())
