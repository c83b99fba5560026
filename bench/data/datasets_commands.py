"""``python -m bench datasets list | fetch NAME | verify NAME | info NAME`` -- the manifest datasets.

``list`` shows every manifest of ``datasets/`` with its status (missing / partial / ready / modified), size on disk and
image count. ``fetch`` downloads (resumable), checks size and sha256 before extracting, extracts safely and checks the
layout; ``--from PATH`` takes a local archive, a folder holding the archives, or the unpacked dataset folder (for sets
behind a login); ``--url URL`` (or ``$BENCH_DATASET_MIRROR``, a base URL) replaces the official URL. ``verify``
re-hashes every file against what the fetch recorded. ``info`` prints the manifest. Data lands in ``$BENCH_DATA/NAME/``,
else in ``datasets/NAME/`` beside the manifests, else -- the packaged manifests of an installed wheel -- in
``$BENCH_HOME/datasets/NAME/`` (:func:`bench.paths.data_dir`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``datasets`` (with ``list``, ``fetch``, ``verify``, ``info``) to the top-level ``subparsers``."""
    parser = subparsers.add_parser(
        "datasets",
        help="list, fetch, verify and describe the real datasets (manifests in datasets/)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="datasets_command", metavar="{list,fetch,verify,info}")
    sub.required = True

    p = sub.add_parser("list", help="every dataset with its status, size on disk and image count")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("fetch", help="download (or import with --from), verify, extract and check a dataset")
    p.add_argument("name", metavar="NAME")
    p.add_argument(
        "--from",
        dest="from_paths",
        action="append",
        default=[],
        type=Path,
        metavar="PATH",
        help="a local archive, a folder holding the archives, or the unpacked dataset folder (repeatable)",
    )
    p.add_argument("--url", help="download from this URL instead (a base URL when the dataset has several archives)")
    p.add_argument("--force", action="store_true", help="fetch again even if the dataset is ready")
    p.add_argument("--keep-archives", action="store_true", help="keep the downloaded archives in <data>/.downloads")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds for the connection and each read (60)")
    p.set_defaults(func=_cmd_fetch)

    p = sub.add_parser("verify", help="re-hash a fetched dataset against its ready-marker and the checksum lock")
    p.add_argument("names", nargs="*", metavar="NAME", help="datasets to verify (default: every fetched one)")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("info", help="the manifest: sources, checksums, layout, pairing rule, licence, citation")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=_cmd_info)
    return parser


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _store():
    from bench.data.store import DatasetStore

    return DatasetStore()


def _cmd_list(args: argparse.Namespace) -> int:
    store = _store()
    rows = []
    for name, m in sorted(store.manifests.items()):
        st = store.status(name)
        size = _human(st.size_bytes) if st.size_bytes else "-"
        images = "-" if st.images is None else str(st.images)
        how = "embedded" if m.kind == "embedded" else ("download" if m.fetchable else "manual (--from)")
        scales = ",".join(f"x{s}" for s in m.scales)
        rows.append([name, st.state, size, images, scales, m.split, "yes" if m.ground_truth else "no", how])
    print(_table(rows, ["name", "status", "size", "images", "scales", "split", "GT", "source"]))
    print(f"\nmanifests: {store.manifest_dir}   data: {store.root}")
    for file, error in store.invalid.items():
        print(f"INVALID {file}: {error}")
    return 1 if store.invalid else 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    store = _store()
    m = store.get(args.name)
    result = store.fetch(
        m.name,
        from_paths=tuple(args.from_paths),
        url=args.url,
        force=args.force,
        keep_archives=args.keep_archives,
        timeout=args.timeout,
    )
    if result.already:
        print(f"ready   {m.name}  {result.path}  (already fetched; --force to fetch again)")
        return 0
    counts = ", ".join(f"x{s}: {n} images" + (f" ({result.failures[s]} fail pairing)" if result.failures.get(s) else "")
                       for s, n in sorted(result.images.items()))  # fmt: skip
    print(f"ready   {m.name}  {result.path}  ({counts})")
    for w in result.warnings:
        print(f"        warning: {w}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    store = _store()
    names = [store.get(n).name for n in args.names] if args.names else [
        n for n, m in sorted(store.manifests.items()) if m.kind == "archive" and store.marker(n) is not None
    ]  # fmt: skip
    if not names:
        print("no fetched datasets (run: python -m bench datasets fetch NAME)")
        return 0
    bad = 0
    for name in names:
        problems = store.verify(name)
        if problems:
            bad += 1
            print(f"BAD     {name}\n        " + "\n        ".join(problems))
        else:
            print(f"ok      {name}")
    return 1 if bad else 0


def _cmd_info(args: argparse.Namespace) -> int:
    import yaml

    store = _store()
    m = store.get(args.name)
    st = store.status(m.name)
    data = m.model_dump(mode="json", exclude_defaults=False)
    print(f"# {m.title}")
    print(f"# status: {st.state}" + (f" ({st.detail})" if st.detail else "") + f"; folder: {store.folder(m.name)}")
    print(f"# get it: {m.fetch_command()}")
    sys.stdout.write(yaml.safe_dump(data, sort_keys=False, width=118, allow_unicode=True))
    locked = {f: v for (d, f), v in store.read_locks().items() if d == m.name}
    if locked:
        where = store.lock_path if store.shipped_lock is None else f"{store.shipped_lock} and {store.lock_path}"
        print(f"# recorded in {where}:")
        for file, (sha, size) in sorted(locked.items()):
            print(f"#   {file}: sha256 {sha}, {size} bytes")
    return 0
