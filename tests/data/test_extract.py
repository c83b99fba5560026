"""Safe extraction: traversal, absolute paths and links are refused before anything is written; size is bounded."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from bench.data.extract import UnsafeArchiveError, copy_tree, extract_archive, safe_member_path


def _zip(path: Path, members: list[tuple[str, bytes, int | None]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            if mode is not None:
                info.create_system = 3
                info.external_attr = mode << 16
            zf.writestr(info, data)
    return path


def _tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tf.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tf.addfile(info, io.BytesIO(m[1]))
    return path


def _link(name: str, target: str, hard: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info


def _nothing_written(dest: Path) -> bool:
    return not dest.exists() or not any(dest.rglob("*"))


def test_good_zip_and_tar(tmp_path) -> None:
    z = _zip(tmp_path / "a.zip", [("top/", b"", None), ("top/x.png", b"abc", 0o100644), ("./top/y.png", b"de", None)])
    written = extract_archive(z, tmp_path / "out-zip", max_bytes=100)
    assert sorted(p.relative_to(tmp_path / "out-zip").as_posix() for p in written) == ["top/x.png", "top/y.png"]
    assert (tmp_path / "out-zip" / "top" / "x.png").read_bytes() == b"abc"
    t = _tar(tmp_path / "a.tar.gz", [("top/x.png", b"abc")])
    extract_archive(t, tmp_path / "out-tar", max_bytes=100)
    assert (tmp_path / "out-tar" / "top" / "x.png").read_bytes() == b"abc"


@pytest.mark.parametrize(
    "name, why",
    [
        ("../evil.png", r"outside the target"),
        ("ok/../../evil.png", r"outside the target"),
        ("/etc/evil.png", r"absolute path"),
        ("C:/evil.png", r"absolute path"),
        ("..\\evil.png", r"outside the target"),
    ],
)
def test_zip_traversal_and_absolute_refused(tmp_path, name, why) -> None:
    z = _zip(tmp_path / "bad.zip", [("fine.png", b"x", None), (name, b"x", None)])
    dest = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError, match=why):
        extract_archive(z, dest, max_bytes=100)
    assert _nothing_written(dest)  # the good member before the bad one was not written either
    assert not (tmp_path / "evil.png").exists()


def test_zip_symlink_member_refused(tmp_path) -> None:
    z = _zip(tmp_path / "link.zip", [("fine.png", b"x", None), ("link.png", b"/etc/passwd", stat.S_IFLNK | 0o777)])
    with pytest.raises(UnsafeArchiveError, match="link"):
        extract_archive(z, tmp_path / "out", max_bytes=100)
    assert _nothing_written(tmp_path / "out")


@pytest.mark.parametrize(
    "member, why",
    [
        (_link("a.png", "/etc/passwd"), "link"),
        (_link("a.png", "fine.png", hard=True), "link"),
        ("../evil.png", "outside the target"),
        ("/abs/evil.png", "absolute path"),
    ],
)
def test_tar_links_traversal_absolute_refused(tmp_path, member, why) -> None:
    m = member if isinstance(member, tarfile.TarInfo) else (member, b"x")
    t = _tar(tmp_path / "bad.tar.gz", [("fine.png", b"x"), m])
    with pytest.raises(UnsafeArchiveError, match=why):
        extract_archive(t, tmp_path / "out", max_bytes=100)
    assert _nothing_written(tmp_path / "out")


def test_tar_device_refused(tmp_path) -> None:
    info = tarfile.TarInfo("dev")
    info.type = tarfile.CHRTYPE
    t = _tar(tmp_path / "dev.tar.gz", [info])
    with pytest.raises(UnsafeArchiveError, match="not a regular file"):
        extract_archive(t, tmp_path / "out", max_bytes=100)


def test_size_bound(tmp_path) -> None:
    z = _zip(tmp_path / "big.zip", [("a.bin", b"\0" * 600, None), ("b.bin", b"\0" * 600, None)])
    with pytest.raises(UnsafeArchiveError, match="1200 bytes to extract, over the bound of 1000"):
        extract_archive(z, tmp_path / "out", max_bytes=1000)
    assert _nothing_written(tmp_path / "out")
    extract_archive(z, tmp_path / "ok", max_bytes=1200)


def test_lying_member_size_is_caught_while_streaming(tmp_path, monkeypatch) -> None:
    """A member whose header declares fewer bytes than it holds: the counted bytes still enforce the bound."""
    z = _zip(tmp_path / "a.zip", [("a.bin", b"\0" * 5000, None)])
    real_members = __import__("bench.data.extract", fromlist=["_members"])._members

    def lying(archive):
        kind, members = real_members(archive)
        return kind, [(rel, 10, handle) for rel, _, handle in members]

    monkeypatch.setattr("bench.data.extract._members", lying)
    with pytest.raises(UnsafeArchiveError, match="more bytes than the bound"):
        extract_archive(z, tmp_path / "out", max_bytes=1000)


def test_not_an_archive(tmp_path) -> None:
    p = tmp_path / "x.zip"
    p.write_bytes(b"hello")
    with pytest.raises(UnsafeArchiveError, match="neither a zip nor a tar"):
        extract_archive(p, tmp_path / "out", max_bytes=100)


def test_duplicate_member_refused(tmp_path) -> None:
    z = _zip(tmp_path / "dup.zip", [("a.png", b"1", None), ("./a.png", b"2", None)])
    with pytest.raises(UnsafeArchiveError, match="twice"):
        extract_archive(z, tmp_path / "out", max_bytes=100)


def test_safe_member_path() -> None:
    assert str(safe_member_path("./a/./b.png", "x")) == "a/b.png"
    assert safe_member_path("./", "x") is None
    with pytest.raises(UnsafeArchiveError):
        safe_member_path("a\x00b", "x")


def test_copy_tree_refuses_links_and_bounds_size(tmp_path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "a.png").write_bytes(b"abc")
    copy_tree(src, tmp_path / "copy", max_bytes=10)
    assert (tmp_path / "copy" / "sub" / "a.png").read_bytes() == b"abc"
    with pytest.raises(UnsafeArchiveError, match="over the bound"):
        copy_tree(src, tmp_path / "copy2", max_bytes=2)
    os.symlink("/etc/hostname", src / "link.png")
    with pytest.raises(UnsafeArchiveError, match="link"):
        copy_tree(src, tmp_path / "copy3", max_bytes=10_000)
    (src / "link.png").unlink()
    os.symlink(tmp_path, src / "dirlink")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        copy_tree(src, tmp_path / "copy4", max_bytes=10_000)
