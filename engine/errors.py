"""Every error AutoSRE raises on purpose, in one tree under one base.

    AutoSREError
     ├── InputError (ValueError)      what a person, a file or a model gave is wrong
     │    ├── SettingsError           an environment variable (.variable)
     │    ├── PolicyError             a policy file (.path, .field, .reason)
     │    ├── InventoryError          an inventory
     │    ├── RefusedError            a run the whitelist, the inventory or the vars refuse
     │    ├── ApprovalError           an approval that is unknown, decided or expired
     │    ├── UserError               an account, token or password request
     │    ├── ChaosError              a chaos experiment that cannot start
     │    ├── UsageError              a command line that cannot be carried out
     │    ├── MaintenanceError        a maintenance window or host re-enable that cannot be done
     │    ├── ReplyError              a model's reply that cannot be a proposal
     │    └── AnswerTooLargeError     an HTTP answer over its size limit (metrics/deadline.py)
     ├── HostBusyError (RuntimeError) another run holds a host's lock (.host, .holder)
     ├── StoreError (RuntimeError)    the database cannot be opened, or its schema is not current
     ├── IllegalMoveError (RuntimeError) an incident move its life's tables forbid: a bug
     ├── LLMError (RuntimeError)      one failed model call (.kind, .status, .retry_after)
     └── AwxError (RuntimeError)      one failed call to AWX; never leaves the executor
                                      (engine/execute/awx_client.py)

The CLI reports any ``AutoSREError`` in one line and exits with status 2; the engine
turns ``LLMError`` and ``ReplyError`` into a fallback to the rules planner and never lets
them out. Anything else that escapes is a bug, and shows as one.
"""

from __future__ import annotations

from typing import Literal

LLMErrorKind = Literal["timeout", "http", "rate_limited", "refused", "empty", "connection"]


class AutoSREError(Exception):
    """The base of every error AutoSRE raises on purpose."""


class InputError(AutoSREError, ValueError):
    """Input from a person, a file or a model that cannot be used; the message says why."""


class SettingsError(InputError):
    """An environment variable with a value that cannot be used."""

    def __init__(self, variable: str, reason: str) -> None:
        super().__init__(f"{variable}: {reason}")
        self.variable = variable


class PolicyError(InputError):
    """A policy file that cannot be used; the message names the file, field and reason."""

    def __init__(self, path: str, field: str, reason: str) -> None:
        super().__init__(f"{path}: {field}: {reason}" if field else f"{path}: {reason}")
        self.path = path
        self.field = field
        self.reason = reason


class InventoryError(InputError):
    """An inventory that cannot be used, with the file and the reason."""


class RefusedError(InputError):
    """A run the policy or the inventory does not allow; the message says why."""


class ApprovalError(InputError):
    """An approval that cannot be decided: unknown, already decided, or expired."""


class UserError(InputError):
    """A user or token request that cannot be carried out; the message says why."""


class ChaosError(InputError):
    """A chaos experiment that cannot start as asked (e.g. nginx is not running)."""


class UsageError(InputError):
    """A command line that cannot be carried out."""


class MaintenanceError(InputError):
    """A maintenance window (or a host's re-enable) that cannot be set or ended as asked."""


class ReplyError(InputError):
    """A model reply that cannot be used as a proposal."""


class HostBusyError(AutoSREError, RuntimeError):
    """Another run holds the host."""

    def __init__(self, host: str, holder: str) -> None:
        super().__init__(f"host {host} is busy: {holder or 'another run'} holds its lock")
        self.host = host
        self.holder = holder


class StoreError(AutoSREError, RuntimeError):
    """The database cannot be opened or migrated, or its schema is not the code's."""


class IllegalMoveError(AutoSREError, RuntimeError):
    """A phase or status move that engine/incident/life.py does not allow: a bug, not input."""


class LLMError(AutoSREError, RuntimeError):
    """One failed attempt to get a reply; ``kind`` says which failure, for retry decisions."""

    def __init__(
        self,
        kind: LLMErrorKind,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind: LLMErrorKind = kind
        self.status = status
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return (
            f"LLMError(kind={self.kind!r}, status={self.status!r}, "
            f"retry_after={self.retry_after!r}, message={str(self)!r})"
        )
