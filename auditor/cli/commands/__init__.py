"""One module per `auditor` command; auditor.cli.app puts them into the group."""
