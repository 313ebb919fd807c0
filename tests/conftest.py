"""Suite-wide: one botocore data loader per process (support.sessions), so the service
models are parsed once per xdist worker rather than once per boto3 session."""

from support.sessions import share_botocore_loader

share_botocore_loader()
