"""`python -m launcher up | services | stop`."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.text import Text

from common.settings import SettingsError, get_settings
from launcher.commands import exec_flower
from launcher.guards import check_before_up
from launcher.services import ServiceError, ensure_services, stop_private_services
from launcher.up import run_up

COMMANDS = {
    "up": "make the services ready, then run the API, the worker pools and Flower until Ctrl-C",
    "services": "make RabbitMQ (with its management API) and Redis ready, then exit",
    "stop": "stop the private RabbitMQ node and Redis started under run/, if any",
    "flower": "run Flower alone, as `up` does (basic auth, queue depth from the management API)",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m launcher", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in COMMANDS.items():
        sub.add_parser(name, help=help_text)
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
    except SettingsError as exc:
        _error(str(exc))
        return 2
    try:
        if args.command == "up":
            check_before_up(settings)
            return run_up(settings)
        if args.command == "services":
            ensure_services(settings)
        elif args.command == "flower":
            exec_flower(settings)
        else:
            stop_private_services(settings)
    except KeyboardInterrupt:
        return 130
    except ServiceError as exc:
        _error(str(exc))
        return 1
    return 0


def _error(message: str) -> None:
    Console(stderr=True, highlight=False, soft_wrap=True).print(Text.assemble(("error: ", "bold red"), message))


if __name__ == "__main__":
    sys.exit(main())
