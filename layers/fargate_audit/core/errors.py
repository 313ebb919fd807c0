"""Exceptions that carry a one-line, user-facing message (the CLI prints it and exits 2)."""


class FargateAuditError(Exception):
    """Base class: str(exc) is one clear line naming the file, field or AWS call at fault."""


class ConfigError(FargateAuditError):
    """A bad rule file, params file or argument. Example message:
    "params.yaml: exemptions[0].expires: 'soon' is not a date (YYYY-MM-DD)"."""


class CredentialsError(FargateAuditError):
    """No usable AWS credentials or region."""


class ScanError(FargateAuditError):
    """The scan as a whole could not run (e.g. ListClusters denied in every region)."""
