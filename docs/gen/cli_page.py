"""Write the CLI reference (``cli.md``) from kfunc's own argparse parser (run by mkdocs-gen-files).

Each command's ``--help``, as ``kfunc COMMAND --help`` prints it at 100
columns: a command or an option added, renamed or reworded shows up here
without an edit.
"""

import argparse
import os

import mkdocs_gen_files

os.environ["COLUMNS"] = "100"

from kfunc.cli import build_parser


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise RuntimeError("kfunc's parser has no subcommands")


top = build_parser()
with mkdocs_gen_files.open("cli.md", "w") as page:
    page.write("# Command line reference\n\n")
    page.write(
        "Generated from kfunc's own parser at `make docs`: each command's "
        "`--help`. The guides show the commands at work.\n\n"
    )
    page.write(f"```text\n{top.format_help()}```\n")
    for name in _commands(top):
        command = _commands(build_parser([name]))[name]
        page.write(f"\n## kfunc {name}\n\n```text\n{command.format_help()}```\n")
