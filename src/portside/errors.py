"""The exception tree of portside.

Every error a user can cause or see is a ``PortsideError``. Each carries the AWS
error code it maps to (``code``) and an HTTP status hint (``status_hint``), so the
API edge turns any of them into a response in one place. Foreign exceptions
(docker, sqlite, socket) are converted at the edge that meets them and chained
with ``from exc``; they never escape into the API.

    PortsideError
    ├── ClientException            400  the request is wrong (ECS ClientException)
    │   ├── InvalidParameterException   400
    │   └── AttributeLimitExceededException  400  a container instance would pass 10 custom attributes
    ├── NotFoundError              400  a named thing does not exist (ClusterNotFoundException, ...)
    ├── AlreadyExistsError         400  a named thing exists already (ResourceAlreadyExistsException)
    ├── ConflictError              409  name/port/token already in use
    ├── UnknownOperation           400  X-Amz-Target names no action we serve
    ├── SerializationError         400  body is not JSON of the right shape
    ├── AuthError                  403  signature missing or wrong; Host or Origin not the API's (AccessDenied)
    ├── DriverError                     the container runtime failed (retryable or not)
    │   ├── NoSuchObject                the runtime has no such container, image or network
    │   ├── NameConflict                a container with that name exists already
    │   └── PortAllocated               Docker could not bind the host port we chose
    ├── PortsExhausted                  no free host port in the dynamic range
    │
    │   defined beside the code that raises them:
    ├── ElbError (core/lb/errors.py)    400+ an ELBv2 error, its AWS code as given (ValidationError, ...)
    ├── LimitExceededException (core/tags.py; a ClientException)  400  a resource would pass 50 tags
    ├── AutoScalingError (control/autoscaling.py)  400  an Application Auto Scaling error
    ├── SsmError (control/ssm.py)       400  an SSM Parameter Store error (ParameterNotFound, ...)
    ├── SecretsManagerError (control/secretsmanager.py)  400  a Secrets Manager error
    ├── SecretsKeyError (control/secrets_key.py)  the secrets key file is unusable, or not the store's key
    ├── QueryError (api/server.py)      400  the query protocol's own errors (MissingAction, ...)
    ├── FirewallError (agent/firewall.py)    iptables could not bring the host firewall in step
    ├── StoreError (control/store/database.py)  the store cannot be opened as asked (a newer schema, a bad URL)
    │   └── TransferError (control/store/transfer.py)  `store migrate` refused or failed; nothing kept
    ├── StoreUnavailable (control/store/database.py)  503  the database does not answer; retry
    ├── StaleWrite (control/store/database.py)  409  a conditional update found the row changed
    └── Deposed (control/store/database.py)  a fenced write found the lease lost: rolled back
"""

from __future__ import annotations


class PortsideError(Exception):
    code = "ServerException"
    status_hint = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ClientException(PortsideError):
    code = "ClientException"
    status_hint = 400


class InvalidParameterException(ClientException):
    code = "InvalidParameterException"


class AttributeLimitExceededException(ClientException):
    """PutAttributes would leave a container instance with more custom attributes than ECS allows."""

    code = "AttributeLimitExceededException"


class NotFoundError(ClientException):
    """A named resource is missing; ``code`` is the AWS exception name for it."""

    def __init__(self, message: str, code: str = "ClientException") -> None:
        super().__init__(message)
        self.code = code


class AlreadyExistsError(ClientException):
    """A resource of that name exists already; ``code`` is the AWS exception name for it."""

    def __init__(self, message: str, code: str = "ResourceAlreadyExistsException") -> None:
        super().__init__(message)
        self.code = code


class ConflictError(PortsideError):
    code = "ConflictException"
    status_hint = 409


class UnknownOperation(PortsideError):
    code = "UnknownOperationException"
    status_hint = 400


class SerializationError(PortsideError):
    code = "SerializationException"
    status_hint = 400


class AuthError(PortsideError):
    status_hint = 403

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class DriverError(PortsideError):
    """The container runtime failed. ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class NoSuchObject(DriverError):
    pass


class NameConflict(DriverError):
    pass


class PortAllocated(DriverError):
    """Docker could not bind a host port (another process took it after our probe)."""

    def __init__(self, message: str, port: int | None = None) -> None:
        super().__init__(message, retryable=True)
        self.port = port


class PortsExhausted(PortsideError):
    pass
