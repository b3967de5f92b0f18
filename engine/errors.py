"""The engine's exceptions.

EngineError
 ├── BrokerError          the local broker cannot be fetched, started or stopped
 ├── ProvisioningError    topics cannot be created or differ from the contract
 ├── RulesError           a rule set fails validation (names file, line and path)
 └── PublishError         Kafka did not acknowledge a record in time
"""


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
