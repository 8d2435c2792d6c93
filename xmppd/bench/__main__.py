"""``python -m xmppd.bench SUBBENCHMARK [options]``: each sub-benchmark module
offers ``add_arguments(parser)`` and ``main(args) -> exit status``."""

from __future__ import annotations

import argparse
import sys

from xmppd.bench import abuse, chat, cluster, component, federation, login, migrate, muc, pep, presence, roomstore

SUBBENCHMARKS = {
    "login": login,
    "chat": chat,
    "presence": presence,
    "pep": pep,
    "cluster": cluster,
    "muc": muc,
    "federation": federation,
    "abuse": abuse,
    "roomstore": roomstore,
    "component": component,
    "migrate": migrate,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xmppd.bench", description="Benchmark an xmppd node.")
    commands = parser.add_subparsers(dest="benchmark", required=True)
    for name, module in SUBBENCHMARKS.items():
        module.add_arguments(
            commands.add_parser(
                name, help=module.HELP, description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
            )
        )
    args = parser.parse_args(argv)
    return SUBBENCHMARKS[args.benchmark].main(args)


if __name__ == "__main__":
    sys.exit(main())
