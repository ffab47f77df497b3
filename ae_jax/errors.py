"""The one error users see: a bad config key, value, dataset or file, named in one line."""


class ConfigError(ValueError):
    """Raised before any training; the CLI prints `error: <message>` and exits with status 2."""
