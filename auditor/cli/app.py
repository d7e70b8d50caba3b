"""The `auditor` command group and `main(argv) -> int`, the console script's entry point."""

from __future__ import annotations

import importlib

import click

from auditor import __version__

# Each command is imported when it is run (or its own help shown): `auditor --help` then costs the start-up of
# click alone, not of jsonschema, httpx, jinja2 and the engine. The listing shows each command's summary
# from here (tests/unit/test_startup.py checks that it is the command's own).
COMMANDS = {  # name -> (module, function, first paragraph of its help)
    "validate": ("validate", "validate", "Check rule files, config, variables and waivers; no network."),
    "plan": ("plan", "plan", "Show each rule's compiled fetch and what runs locally; no network."),
    "run": ("run", "run", "Fetch, evaluate, report; exit 0 pass, 1 fail, 2 undecided."),
    "sync": ("sync", "sync", "Copy the API's logs into a Parquet log lake: only what it lacks, complete or not "
             "at all."),
    "report": ("report", "report", "Re-render a saved run's results JSON; no network."),
    "test": ("test", "test_rules", "Run the rules' tests: cases on fixture records; no network. Exit 0 all hold, "
             "1 one does not."),
    "init": ("init", "init", "Scaffold a policy repo in DIR (default: here): config, rules, waivers, CI; never "
             "overwrites a file."),
    "doctor": ("doctor", "doctor", "Check the credential, retention, paging and undeclared pushdowns on the "
               "account (at most 13 requests)."),
    "emulate": ("emulate", "emulate", "Serve both Cloudflare log endpoints locally from files, until Ctrl-C."),
}


class _Commands(click.Group):
    """A group whose commands (COMMANDS) are imported when first used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command's name, sorted."""
        return sorted(set(self.commands) | set(COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        """The command `name`, imported now if it was not yet."""
        if name not in self.commands and name in COMMANDS:
            module, function, _ = COMMANDS[name]
            self.add_command(getattr(importlib.import_module(f"auditor.cli.commands.{module}"), function), name)
        return self.commands.get(name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of `auditor --help`, from COMMANDS' summaries for commands not imported."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names), default=0)
        rows = []
        for name in names:
            command = self.commands.get(name)
            if command is not None:
                rows.append((name, command.get_short_help_str(limit)))
            else:
                # A bare Command shortens the summary as click does (its helper is private from click 8.5 on).
                rows.append((name, click.Command(name, help=COMMANDS[name][2]).get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(name="auditor", cls=_Commands,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="auditor")
def cli() -> None:
    """auditor: declarative audit checks for Cloudflare Zero Trust Access logs.

    validate the rule files, plan what will be asked of the API, run it, gate on the exit code
    (0 pass, 1 a rule failed, 2 could not decide).
    """


@cli.result_callback()
def _exit_with(code: int, **_: object) -> None:
    # Every command returns its exit code; this is the one place that turns it into the process's.
    click.get_current_context().exit(int(code))


def main(argv: list[str] | None = None) -> int:
    """Run `auditor` with argv (default: sys.argv[1:]) and return the exit code instead of exiting."""
    try:
        return int(cli.main(args=argv, prog_name="auditor", standalone_mode=False) or 0)
    except click.ClickException as exc:  # usage errors: click's message and exit 2
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("error: interrupted", err=True)
        return 2
