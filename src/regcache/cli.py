"""The `regcache` command."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from regcache import __version__
from regcache.adminclient import AdminClient, AdminError
from regcache.clientconfig import GENERATORS, cache_url, render, write
from regcache.commands import EXIT_USAGE, HANDLERS, add_commands, run
from regcache.config import ConfigError, Settings, load_settings
from regcache.logsetup import configure_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="regcache", description="A pull-through cache for Docker/OCI container registries."
    )
    parser.add_argument("--version", action="version", version=f"regcache {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the cache (the default command)")
    add_serve_flags(serve)
    client = commands.add_parser(
        "client-config", help="print client configuration (hosts.toml, daemon.json, ...)"
    )
    client.add_argument("client", choices=sorted(GENERATORS), help="the client to configure")
    client.add_argument("--cache-url", metavar="URL", help="how clients reach this cache")
    client.add_argument(
        "--output-dir", type=Path, metavar="DIR", help="write the files below DIR instead"
    )
    add_serve_flags(client)
    add_commands(commands, add_serve_flags)
    return parser


def add_serve_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, metavar="FILE", help="TOML settings file")
    parser.add_argument("--listen", metavar="HOST:PORT", help="default 0.0.0.0:5000")
    parser.add_argument(
        "--upstream", metavar="URL", help="upstream registry, default https://registry-1.docker.io"
    )
    parser.add_argument("--cache-dir", metavar="DIR", help="where cached content is kept")
    parser.add_argument(
        "--cache-size", metavar="SIZE", help="size budget, e.g. 500GB (default 10GB)"
    )
    parser.add_argument("--tls-dir", metavar="DIR", help="directory holding cert.pem and key.pem")
    parser.add_argument("--tls-cert", metavar="FILE", help="TLS certificate chain (PEM)")
    parser.add_argument("--tls-key", metavar="FILE", help="TLS private key (PEM)")
    parser.add_argument(
        "--admin-listen", metavar="HOST:PORT", help='admin listener, default 127.0.0.1:5001 ("off")'
    )
    parser.add_argument("--upstream-ca", metavar="FILE", help="CA bundle to verify the upstream")
    parser.add_argument("--htpasswd", metavar="FILE", help="require clients to log in (bcrypt)")
    parser.add_argument("--log-format", choices=("text", "json"))
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"))


# Flag destination -> setting key.
SERVE_FLAGS = {
    "listen": "listen",
    "upstream": "upstream.url",
    "cache_dir": "cache_dir",
    "cache_size": "cache_size",
    "tls_dir": "tls.dir",
    "tls_cert": "tls.cert",
    "tls_key": "tls.key",
    "admin_listen": "admin.listen",
    "upstream_ca": "upstream.ca_bundle",
    "htpasswd": "auth.htpasswd",
    "log_level": "log.level",
    "log_format": "log.format",
}


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (
        args_list[0].startswith("-") and args_list[0] not in ("-h", "--help", "--version")
    ):
        args_list.insert(0, "serve")
    args = build_parser().parse_args(args_list)
    if args.command == "serve":
        return run_serve(args)
    if args.command == "client-config":
        return run_client_config(args)
    if args.command in HANDLERS:
        return run_admin_command(args)
    build_parser().print_help()
    return 2


def settings_from(args: argparse.Namespace, *, check_paths: bool = True) -> Settings | None:
    flags: dict[str, Any] = {key: getattr(args, dest) for dest, key in SERVE_FLAGS.items()}
    try:
        return load_settings(config_file=args.config, flags=flags, check_paths=check_paths)
    except ConfigError as exc:
        print(f"regcache: configuration error:\n{exc}", file=sys.stderr)
        return None


def run_client_config(args: argparse.Namespace) -> int:
    settings = settings_from(args, check_paths=False)
    if settings is None:
        return 2
    files = GENERATORS[args.client](settings, cache_url(settings, args.cache_url))
    if args.output_dir is None:
        print(render(files), end="")
    else:
        for path in write(files, args.output_dir):
            print(path)
    return 0


def run_admin_command(args: argparse.Namespace) -> int:
    settings = settings_from(args, check_paths=False)
    if settings is None:
        return EXIT_USAGE
    try:
        client = AdminClient.for_settings(settings, args.admin_url, args.admin_token)
    except AdminError as exc:
        print(f"regcache: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return run(args, client)


def run_serve(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if settings is None:
        return 2
    configure_logging(settings.log_level, settings.log_format)
    from regcache.clientauth import HtpasswdError
    from regcache.server import serve

    try:
        asyncio.run(serve(settings))
    except HtpasswdError as exc:
        print(f"regcache: configuration error:\n{exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"regcache: cannot serve: {exc}", file=sys.stderr)
        return 1
    return 0
