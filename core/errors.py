"""The one exception tree of coatcheck.

Every error a user can see carries a message that says how to fix it. Third-party exceptions
are translated at the adapter that calls the library (keyring, cryptography, docker, mitmproxy)
and never escape it. No message ever contains a secret value.

    CoatcheckError                 exit 1 unless said otherwise
    ├── UsageError                 exit 2: bad input on the command line or in a file
    │   ├── InvalidName            a secret name that is not an env-var name
    │   ├── InvalidDomain          a domain pattern that security.md does not allow
    │   ├── InvalidValue           a secret value with CR, LF or NUL, or empty
    │   └── InvalidJobFile         a job file: each problem names the file, the field, the fix
    ├── VaultError
    │   ├── KeystoreUnavailable    no keyring backend and no COATCHECK_VAULT_KEY_FILE
    │   ├── VaultCorrupt           the vault file can't be read or fails authentication
    │   └── SecretNotFound         no secret of that name
    ├── ProxyError
    │   ├── ProxyUnavailable       the proxy service can't be reached or started
    │   └── RegistrationRefused    the service refused a run (unknown secret, bad policy)
    ├── SandboxError               exit 125: the sandbox can't be set up
    │   ├── DockerUnavailable      no Docker engine answers
    │   ├── ImageMissing           the sandbox image is not built
    │   └── ImageUnfit             an agent job's image has no agent loop in it
    └── Stopped                    exit 128 + N: signal N (SIGTERM, SIGHUP) stopped a run
"""

from __future__ import annotations


class CoatcheckError(Exception):
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(CoatcheckError):
    exit_code = 2


class InvalidName(UsageError):
    pass


class InvalidDomain(UsageError):
    pass


class InvalidValue(UsageError):
    pass


class InvalidJobFile(UsageError):
    """Problems of one job file: ``(field, message)`` pairs; the field is a dotted path ("" for
    the file as a whole). The message holds one line per problem: ``FILE: FIELD: MESSAGE``."""

    def __init__(self, file: str, problems: tuple[tuple[str, str], ...]) -> None:
        self.file = file
        self.problems = problems
        super().__init__(
            "\n".join(f"{file}: {f}: {m}" if f else f"{file}: {m}" for f, m in problems)
        )


class VaultError(CoatcheckError):
    pass


class KeystoreUnavailable(VaultError):
    pass


class VaultCorrupt(VaultError):
    pass


class SecretNotFound(VaultError):
    pass


class ProxyError(CoatcheckError):
    exit_code = 125


class ProxyUnavailable(ProxyError):
    pass


class RegistrationRefused(ProxyError):
    pass


class SandboxError(CoatcheckError):
    exit_code = 125


class DockerUnavailable(SandboxError):
    pass


class ImageMissing(SandboxError):
    pass


class ImageUnfit(SandboxError):
    pass


class Stopped(CoatcheckError):
    """A run was stopped by a signal; raised in the main thread so cleanup runs on the way out."""

    def __init__(self, signum: int, name: str) -> None:
        super().__init__(f"stopped by {name}; the sandbox was stopped and removed")
        self.exit_code = 128 + signum
