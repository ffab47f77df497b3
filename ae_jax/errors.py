"""The errors users see in one line: a bad input (ConfigError) or a workdir that cannot be written."""


class ConfigError(ValueError):
    """Raised before any training; the CLI prints `error: <message>` and exits with status 2."""


class WorkdirError(RuntimeError):
    """The workdir cannot be written (full disk, read-only, ...); what it already holds stays whole.

    The CLI prints `error: <message>` and exits with status 2; the same command resumes later."""
