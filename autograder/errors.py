"""One exception hierarchy for problems a person must act on.

Every error carries a message that says what went wrong, where, and what to do next. The CLI prints
it without a traceback and exits with status 2.
"""


class AutograderError(Exception):
    """A problem with the input or the machine that a person can fix."""

    def __init__(self, message: str, *, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  what to do: {self.hint}" if self.hint else self.message


class WorkspaceError(AutograderError):
    """The workspace folder is missing or unreadable."""


class NotebookError(AutograderError):
    """A notebook could not be read or executed."""


class ReleaseError(AutograderError):
    """Generating the student release failed (for example a malformed solution region)."""


class DockerUnavailable(AutograderError):
    """No Docker engine answers; container checks are skipped, never passed."""


class ContainerError(AutograderError):
    """An image failed to build or a container failed to start or become ready."""
