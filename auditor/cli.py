"""Command-line interface (placeholder while the foundation lands)."""

import click


@click.group()
def main() -> None:
    """auditor: declarative audit checks for Cloudflare Zero Trust Access logs."""
