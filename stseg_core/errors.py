"""The few typed errors the library raises; the CLI and jobs turn each into one line and an exit code."""


class StsegError(Exception):
    """Base class; `exit_code` is what a job or the CLI exits with."""

    exit_code = 1


class BadInputError(StsegError):
    """Input that can never work (malformed file, unknown name, bad option). Retrying will not help."""

    exit_code = 2


class MissingArtifactError(StsegError):
    """Something a stage needs is not (yet) in the store: a frame, a checkpoint, a done marker."""

    exit_code = 3


class BackendError(StsegError):
    """The execution backend (local processes, Kubernetes) failed or refused a request."""

    exit_code = 4
