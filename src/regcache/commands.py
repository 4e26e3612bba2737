"""The operator's commands: status, ls, rm, purge, gc, verify, prefetch (via the admin API).

Exit codes: 0 done, 1 done but something was wrong (a corrupt blob, an image that failed),
2 a usage or configuration error, 3 the running server could not be reached.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from regcache.adminclient import AdminClient, AdminError

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


def human_size(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def human_age(seconds: float) -> str:
    minutes, hours, days = seconds / 60, seconds / 3600, seconds / 86400
    if days >= 1:
        return f"{days:.0f}d ago"
    if hours >= 1:
        return f"{hours:.0f}h ago"
    return f"{max(minutes, 0):.0f}m ago"


def parse_when(text: str) -> float:
    """An ISO date or time (`2026-11-01`, `2026-11-01T12:00`), or an age: `7d`, `12h`, `30m`."""
    units = {"d": 86400, "h": 3600, "m": 60}
    if text[-1:] in units and text[:-1].isdigit():
        return time.time() - int(text[:-1]) * units[text[-1]]
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date or age: {text!r}") from None


def add_commands(commands: Any, add_common: Any) -> None:
    def command(name: str, help_: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(name, help=help_)
        add_common(parser)
        parser.add_argument("--admin-url", metavar="URL", help="the admin API of the server")
        parser.add_argument("--admin-token", metavar="TOKEN", help="default: from the cache")
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        return parser

    command("status", "size against budget, hit ratio, bytes saved, upstream health")
    command("ls", "cached images per upstream, repository and tag")
    rm = command("rm", "remove a repository or one tag of it, and what only it used")
    rm.add_argument("reference", help="REPOSITORY or REPOSITORY:TAG")
    rm.add_argument("--in", dest="in_upstream", metavar="UPSTREAM", help="only in this upstream")
    purge = command("purge", "remove everything not used since a date")
    purge.add_argument("--older-than", type=parse_when, required=True, metavar="DATE|AGE")
    command("gc", "remove blobs that no cached manifest refers to")
    command("verify", "re-hash every stored blob; remove corrupt ones")
    prefetch = command("prefetch", "warm the cache with images (every platform)")
    prefetch.add_argument("images", nargs="*", help="IMAGE[:TAG|@DIGEST]")
    prefetch.add_argument("--file", type=Path, help="a file with one image a line")


def run(args: argparse.Namespace, client: AdminClient) -> int:
    console = Console(stderr=False)
    try:
        return int(HANDLERS[args.command](args, client, console))
    except AdminError as exc:
        print(f"regcache: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE


def status(args: argparse.Namespace, client: AdminClient, console: Console) -> int:
    stats = client.get("/api/stats")
    if args.json:
        print(json.dumps(stats, indent=2))
        return EXIT_OK
    cache, requests = stats["cache"], stats["requests"]
    fill = cache["size_bytes"] / cache["budget_bytes"] * 100 if cache["budget_bytes"] else 0
    console.print(f"regcache {stats['version']}, up {stats['uptime_seconds']:.0f} s")
    console.print(
        f"cache      {human_size(cache['size_bytes'])} of {human_size(cache['budget_bytes'])}"
        f" ({fill:.1f}%), {cache['blobs']} blobs, {cache['manifests']} manifests"
    )
    console.print(
        f"hit ratio  {stats['hit_ratio'] * 100:.1f}% (hits {requests['hits']}, misses "
        f"{requests['misses']}, coalesced {requests['coalesced']}, stale {requests['stale']})"
    )
    served = stats["bytes_served"]
    console.print(
        f"served     {human_size(served['cache'])} from cache, "
        f"{human_size(served['upstream'])} from upstream"
    )
    console.print(f"downloads  {len(stats['downloads'])} in flight")
    for upstream in stats["upstreams"]:
        state = "healthy" if upstream["healthy"] else f"failing: {upstream['last_error']}"
        if upstream["rate_limited_for"]:
            state = f"rate limited for {upstream['rate_limited_for']:.0f} s"
        default = " (default)" if upstream["default"] else ""
        console.print(f"upstream   {upstream['name']}  {state}  {upstream['url']}{default}")
    return EXIT_OK


def ls(args: argparse.Namespace, client: AdminClient, console: Console) -> int:
    rows = client.get("/api/images")
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    table = Table(box=None)
    for column in ("UPSTREAM", "REPOSITORY", "TAG", "SIZE", "LAST USED", "PULLS", "DIGEST"):
        table.add_column(column)
    now = time.time()
    for row in rows:
        used = row["last_pulled"] or row["fetched_at"]
        table.add_row(
            row["upstream"], row["repository"], row["tag"], human_size(row["size"]),
            human_age(now - used), str(row["pulls"]), row["digest"][:19],
        )  # fmt: skip
    console.print(table)
    return EXIT_OK


def _removal(args: argparse.Namespace, result: dict[str, int], console: Console) -> int:
    if args.json:
        print(json.dumps(result))
    else:
        console.print(f"removed {result['removed']}, freed {human_size(result['freed_bytes'])}")
    return EXIT_OK


def rm(args: argparse.Namespace, client: AdminClient, console: Console) -> int:
    repository, _, tag = args.reference.partition(":")
    body = {"repository": repository, "tag": tag or None, "upstream": args.in_upstream}
    return _removal(args, client.post("/api/rm", body), console)


def purge(args: argparse.Namespace, client: AdminClient, console: Console) -> int:
    return _removal(args, client.post("/api/purge", {"older_than": args.older_than}), console)


def gc(args: argparse.Namespace, client: AdminClient, console: Console) -> int:
    return _removal(args, client.post("/api/gc"), console)


def verify(args: argparse.Namespace, client: AdminClient, console: Console) -> int:
    done: dict[str, Any] = {}
    with _progress(console, args.json) as progress:
        task: TaskID | None = None
        for event in client.stream("/api/verify"):
            if event["event"] == "start":
                task = progress.add_task("verify", total=event["bytes"])
            elif event["event"] == "blob" and task is not None:
                progress.advance(task, event["size"])
                if not event["ok"]:
                    progress.console.print(f"corrupt, removed: {event['digest']}")
            elif event["event"] == "done":
                done = event
    if args.json:
        print(json.dumps(done))
    else:
        console.print(f"checked {done.get('checked', 0)}, corrupt {len(done.get('corrupt', []))}")
    return EXIT_PROBLEMS if done.get("corrupt") else EXIT_OK


def prefetch(args: argparse.Namespace, client: AdminClient, console: Console) -> int:
    images = list(args.images)
    if args.file is not None:
        lines = args.file.read_text().splitlines()
        images += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if not images:
        print("regcache: prefetch needs images, or --file", file=sys.stderr)
        return EXIT_USAGE
    summary: dict[str, Any] = {}
    tasks: dict[str, TaskID] = {}
    with _progress(console, args.json) as progress:
        for event in client.stream("/api/prefetch", {"images": images}):
            kind = event["event"]
            if kind == "image":
                for digest, size in event["blobs"]:
                    if digest not in tasks:
                        tasks[digest] = progress.add_task(digest[7:19], total=size)
            elif kind == "progress" and event["digest"] in tasks:
                progress.update(tasks[event["digest"]], completed=event["received"])
            elif kind == "blob" and event["digest"] in tasks:
                progress.update(tasks[event["digest"]], completed=event["size"])
            elif kind == "error":
                progress.console.print(f"failed: {event.get('image')}: {event['message']}")
            elif kind == "done":
                summary = event
    if args.json:
        print(json.dumps(summary))
    else:
        console.print(
            f"{summary.get('images', 0)} images, {summary.get('blobs', 0)} blobs "
            f"({human_size(summary.get('bytes', 0))}; {summary.get('cached', 0)} already cached),"
            f" {summary.get('errors', 0)} errors"
        )
    return EXIT_PROBLEMS if summary.get("errors") else EXIT_OK


def _progress(console: Console, quiet: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        console=console, disable=quiet or not console.is_terminal, transient=False,
    )  # fmt: skip


HANDLERS = {
    "status": status,
    "ls": ls,
    "rm": rm,
    "purge": purge,
    "gc": gc,
    "verify": verify,
    "prefetch": prefetch,
}
