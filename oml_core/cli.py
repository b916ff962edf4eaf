"""The ``oml`` command line. Subcommands come from plugins through ``oml_register_cli_commands``.

Errors that OML raises on purpose (bad config, missing file, broken plugin) are printed as one paragraph
and exit with status 2. Anything else is a bug (of OML or of a plugin): it is reported in one paragraph too, with
exit status 1. ``--debug`` (or ``OML_DEBUG=1``) prints the traceback of either kind before the message.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from oml_core.errors import OMLError

if TYPE_CHECKING:
    from oml_core.host import Host


@attrs.frozen
class Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Host], int | None]
    plugin: str


class CommandRegistry:
    """Subcommands by name; a name with a space (``"config check"``) is a nested subcommand.

    Example:
        >>> commands = CommandRegistry()
        >>> commands.add("hello", help="say hello", run=lambda args, host: print("hello"))
        >>> commands.names()
        ['hello']
    """

    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}
        self.current_plugin = "<unknown>"

    def add(
        self,
        name: str,
        *,
        help: str,
        run: Callable[[argparse.Namespace, Host], int | None],
        configure: Callable[[argparse.ArgumentParser], None] = lambda parser: None,
    ) -> None:
        """Add subcommand ``name``: ``configure(parser)`` adds its arguments, ``run(args, host)`` runs it and may
        return an exit status."""
        if name in self._commands:
            raise OMLError(
                f"command {name!r} is registered by two plugins: {self._commands[name].plugin!r} and {self.current_plugin!r}"
            )
        self._commands[name] = Command(name, help, configure, run, self.current_plugin)

    def names(self) -> list[str]:
        return sorted(self._commands)

    def __getitem__(self, name: str) -> Command:
        return self._commands[name]


def collect_commands(host: Host) -> CommandRegistry:
    commands = CommandRegistry()
    for impl in host.pm.hook.oml_register_cli_commands.get_hookimpls():
        commands.current_plugin = impl.plugin_name
        try:
            impl.function(**{a: commands for a in impl.argnames})
        except OMLError:
            raise
        except Exception as exc:  # noqa: BLE001 - a plugin's broken command must not take the CLI down
            print(f"oml: plugin {impl.plugin_name!r} failed to add its commands: {type(exc).__name__}: {exc}", file=sys.stderr)
    return commands


def build_parser(commands: CommandRegistry) -> argparse.ArgumentParser:
    from oml_core import __version__

    parser = argparse.ArgumentParser(prog="oml", description="Open metric learning: train, validate, index and search.")
    parser.add_argument("--version", action="version", version=f"oml-core {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (also OML_DEBUG=1)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, Any] = {}
    for name in commands.names():
        command = commands[name]
        head, _, tail = name.partition(" ")
        if tail:
            if head not in groups:
                group_parser = subparsers.add_parser(head, help=f"{head} commands")
                groups[head] = group_parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
            sub = groups[head].add_parser(tail, help=command.help, description=command.help)
        else:
            sub = subparsers.add_parser(name, help=command.help, description=command.help)
        command.configure(sub)
        sub.set_defaults(_command=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``oml`` console script.

    Example:
        >>> main(["plugins", "--json"])   # doctest: +SKIP
        0
    """
    from oml_core.host import Host

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_enabled(argv)
    argv = [arg for arg in argv if arg != "--debug"]
    if argv == ["--version"]:  # answered without loading any plugin
        from oml_core import __version__

        print(f"oml-core {__version__}")
        return 0
    # help only needs the commands: the registries are not filled, so no plugin imports torch for it
    only_help = not argv or "-h" in argv or "--help" in argv
    with warnings.catch_warnings(record=True) as load_warnings:
        warnings.simplefilter("always", RuntimeWarning)
        host = Host(strict=False, collect=not only_help)
    listing_plugins = bool(argv) and argv[0] == "plugins"
    if not listing_plugins:
        for warning in load_warnings:
            print(f"oml: warning: {warning.message}", file=sys.stderr)
    try:
        commands = collect_commands(host)
        parser = build_parser(commands)
        args = parser.parse_args(argv)
        command: Command | None = getattr(args, "_command", None)
        if command is None:
            parser.print_help()
            return 0
        if not listing_plugins:
            _refuse_invalid_plugins(host)
        status = command.run(args, host)
        return int(status or 0)
    except OMLError as exc:
        if debug:
            traceback.print_exc()
        print(f"oml: error: {_shorten_lines(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("oml: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        if debug:
            traceback.print_exc()
        if exc.errno not in _DISK_ERRORS:
            return _internal_error(argv, exc)
        where = f" while writing {exc.filename}" if exc.filename else ""
        print(
            f"oml: error: {exc.strerror or 'the disk is full'}{where}. Files written before were kept whole (OML writes "
            "through a temporary file and renames it); free some space, then continue with --resume where the "
            "command offers it.",
            file=sys.stderr,
        )
        return 2
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one paragraph, never a bare traceback
        if debug:
            traceback.print_exc()
        return _internal_error(argv, exc)


_DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def _internal_error(argv: Sequence[str], exc: BaseException) -> int:
    where = " ".join(a for a in argv[:2] if not a.startswith("-")) or "oml"
    print(
        f"oml: internal error in '{where}': {type(exc).__name__}: {_shorten(str(exc))}. This is a bug of OML or of "
        "a plugin, not of your input: please report it with the traceback that --debug (or OML_DEBUG=1) prints.",
        file=sys.stderr,
    )
    return 1


def debug_enabled(argv: Sequence[str] = ()) -> bool:
    """Whether tracebacks are wanted: ``--debug`` anywhere on the command line or ``OML_DEBUG`` set to 1/true/yes.

    Example:
        >>> debug_enabled(["train", "c.yaml", "--debug"])
        True
    """
    return "--debug" in argv or os.environ.get("OML_DEBUG", "").strip().lower() in {"1", "true", "yes"}


def _shorten_lines(text: str, limit: int = 2000) -> str:
    return "\n".join(_shorten(line, limit) for line in text.splitlines())


def _shorten(text: str, limit: int = 500) -> str:
    """Messages quote user input, which can be huge (a 30 MB path): keep both ends of it."""
    return text if len(text) <= limit else f"{text[: limit // 2]} ... [{len(text) - limit} characters] ... {text[-limit // 2 :]}"


def _refuse_invalid_plugins(host: Host) -> None:
    """A misspelled hook or a duplicate component is an error for every command but ``oml plugins``."""
    from oml_core.errors import DuplicateComponentError, PluginValidationError

    for error in host.load_errors.values():
        if isinstance(error.cause, (PluginValidationError, DuplicateComponentError)):
            raise OMLError(f"{error} (run 'oml plugins' to see every plugin's status)")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
