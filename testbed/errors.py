"""Errors every layer raises, and the exit codes the CLI maps them to.

Exit codes (DESIGN.md section 3): 0 fine, 1 a check failed, 2 bad input,
3 the machine cannot run it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_MACHINE = 3


class TestbedError(Exception):
    exit_code = 1


@dataclass
class FieldError:
    """One problem with one field, worded like the Kubernetes API server."""

    path: str  # e.g. "spec.ports[0].nodePort"
    type: str  # "Invalid value", "Required value", "Unsupported value", ...
    value: object = None
    detail: str = ""
    has_value: bool = True

    def __str__(self) -> str:
        if self.type in ("Required value", "Forbidden", "Too many") or not self.has_value:
            text = f"{self.path}: {self.type}"
        else:
            text = f"{self.path}: {self.type}: {_show(self.value)}"
        return f"{text}: {self.detail}" if self.detail else text


class Raw(str):
    """A value printed as it is (Go's %v of a map), not quoted."""


def _show(value: object) -> str:
    if isinstance(value, Raw):
        return str.__str__(value)
    if isinstance(value, str):
        return f'"{value}"'
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def invalid(path: str, value: object, detail: str = "") -> FieldError:
    return FieldError(path, "Invalid value", value, detail)


def required(path: str, detail: str = "") -> FieldError:
    return FieldError(path, "Required value", None, detail, has_value=False)


def unsupported(path: str, value: object, supported: list[str]) -> FieldError:
    listed = ", ".join(f'"{s}"' for s in supported)
    return FieldError(path, "Unsupported value", value, f"supported values: {listed}")


def duplicate(path: str, value: object) -> FieldError:
    return FieldError(path, "Duplicate value", value)


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError(path, "Forbidden", None, detail, has_value=False)


@dataclass
class InvalidError(TestbedError):
    """Bad input: names the file, the object and every bad field (exit 2).

    str() gives e.g.
    ``svc.yaml: The Service "web" is invalid: spec.ports[0].nodePort: Invalid value: 80: ...``
    """

    kind: str = ""
    name: str = ""
    errors: list[FieldError] = field(default_factory=list)
    source: str = ""  # file name, "-" for standard input
    message: str = ""  # used instead of the kind/name form when set

    exit_code = 2

    def __post_init__(self) -> None:
        Exception.__init__(self, str(self))

    def __str__(self) -> str:
        if self.message:
            body = self.message
        else:
            causes = [str(e) for e in self.errors]
            joined = causes[0] if len(causes) == 1 else "[" + ", ".join(causes) + "]"
            body = f'The {self.kind} "{self.name}" is invalid: {joined}'
        return f"{self.source}: {body}" if self.source else body


class BadInput(InvalidError):
    """Bad input that is not about one object's fields (YAML syntax, unknown file)."""

    def __init__(self, message: str, source: str = ""):
        super().__init__(message=message, source=source)


class MachineError(TestbedError):
    """This machine cannot run it: not root, a missing program or kernel feature (exit 3).
    The message says how to fix it."""

    exit_code = 3


class CheckFailed(TestbedError):
    exit_code = 1
