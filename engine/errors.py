"""The engine's exceptions.

EngineError
 ├── BrokerError          the local broker cannot be fetched, started or stopped
 ├── ProvisioningError    topics cannot be created or differ from the contract
 ├── RulesError           a rule set fails validation (names file, line and path)
 └── PublishError         Kafka did not acknowledge a record in time
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
