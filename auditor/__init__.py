"""auditor: declarative audit checks for Cloudflare Zero Trust Access logs."""

__version__ = "0.1.0"
