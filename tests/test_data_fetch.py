"""Fashion-MNIST's fetch chain, each step on its own: (1) the files under the root,
(2) the installed Debian package, (3) ``apt-get download`` + ``dpkg-deb -x`` (fake tools
on PATH serving a real-format .deb built here), (4) torchvision's download
(monkeypatched), (5) the error that lists what was tried and how to fix it. No step
leaves anything half-fetched under the root. No network, no real apt."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import sys
import tarfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

import data_trees as trees
from lifestudy import data
from lifestudy.cli import main
from lifestudy.data import classification

FILES = sorted(f"{p}-{k}-ubyte.gz" for p in ("train", "t10k") for k in ("images-idx3", "labels-idx1"))
DEB_NAME = "dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb"


@pytest.fixture(autouse=True)
def machine(tmp_path, monkeypatch):
    """A machine without the Debian package, apt, or a user id of root, and with package
    lists; each test adds what it needs."""
    monkeypatch.setattr(classification, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    lists = tmp_path / "apt-lists"
    lists.mkdir()
    (lists / "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4").write_text("")
    monkeypatch.setattr(classification, "APT_LISTS", lists)
    monkeypatch.setattr(classification.os, "geteuid", lambda: 1000)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


@pytest.fixture
def offline(monkeypatch):
    """torchvision's download as it fails without internet; returns the roots it was given."""
    import torchvision.datasets

    calls = []

    def download(root, train=True, download=False, **kwargs):
        calls.append(Path(root))
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://example/, got:\n"
                           "<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", download)
    return calls


def fetch_cli(capsys, root) -> tuple[int, str, str]:
    rc = main(["data", "fetch", "fashion-mnist", "--root", str(root)])
    out, err = capsys.readouterr()
    return rc, out, err


def contents(root: Path) -> list[str]:
    """Everything under ``root``, hidden staging folders included."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def assert_readable(root: Path, truth) -> None:
    ds = data.build_dataset("fashion-mnist", "test", root=root)
    assert len(ds) == len(truth["test"][1])
    assert np.array_equal(np.asarray(ds[3][0]), truth["test"][0][3]) and ds[3][1] == truth["test"][1][3]


# ----------------------------------------------------------------------------- a real .deb
def _ar_member(name: str, payload: bytes) -> bytes:
    header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(payload):<10}`\n".encode()
    assert len(header) == 60
    return header + payload + (b"\n" if len(payload) % 2 else b"")


def _tar_gz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, payload in files.items():
            info = tarfile.TarInfo("./" + name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def build_deb(path: Path, files: dict[str, bytes]) -> Path:
    """A binary package in dpkg's format (deb(5): an ar archive of debian-binary,
    control.tar.gz and data.tar.gz), holding ``files`` at their paths."""
    control = textwrap.dedent("""\
        Package: dataset-fashion-mnist
        Version: 0.0~git20200523.55506a9-1
        Architecture: all
        Maintainer: test <test@example.org>
        Description: Fashion-MNIST (test copy)
        """).encode()
    path.write_bytes(b"!<arch>\n" + _ar_member("debian-binary", b"2.0\n")
                     + _ar_member("control.tar.gz", _tar_gz({"control": control}))
                     + _ar_member("data.tar.gz", _tar_gz(files)))
    return path


def package_files(tmp_path: Path, **tree) -> tuple[dict[str, bytes], dict]:
    """The Debian package's payload: the four idx files under usr/share/datasets/fashion-mnist."""
    truth = trees.write_fashion_mnist(tmp_path / "payload", **tree)
    raw = tmp_path / "payload" / "FashionMNIST" / "raw"
    return {f"usr/share/datasets/fashion-mnist/{f}": (raw / f).read_bytes() for f in FILES}, truth


def fake_apt(bin_dir: Path, deb: Path | None, fail: str | None = None) -> Path:
    """``apt-get`` and ``dpkg-deb`` executables: apt-get logs each call (argv, cwd) and
    `download` puts ``deb`` in the current folder (or fails with ``fail``); dpkg-deb -x
    unpacks the data member of a .deb as dpkg does."""
    log = bin_dir / "calls.jsonl"
    (bin_dir / "apt-get").write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import json, os, shutil, sys
        with open({str(log)!r}, "a") as f:
            f.write(json.dumps({{"argv": sys.argv[1:], "cwd": os.getcwd()}}) + "\\n")
        if sys.argv[1:] == ["download", "dataset-fashion-mnist"]:
            if {fail!r} is not None:
                print({fail!r}, file=sys.stderr)
                sys.exit(100)
            shutil.copy({str(deb)!r}, {DEB_NAME!r})
        elif sys.argv[1:] != ["update"]:
            sys.exit("fake apt-get: unexpected arguments " + repr(sys.argv[1:]))
        """))
    (bin_dir / "dpkg-deb").write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import io, sys, tarfile
        assert sys.argv[1] == "-x", sys.argv
        blob = open(sys.argv[2], "rb").read()
        assert blob.startswith(b"!<arch>\\n"), "not a debian package"
        pos = 8
        while pos < len(blob):
            name, size = blob[pos:pos + 16].decode().strip().rstrip("/"), int(blob[pos + 48:pos + 58])
            body = blob[pos + 60:pos + 60 + size]
            if name.startswith("data.tar"):
                with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as tar:
                    tar.extractall(sys.argv[3])
            pos += 60 + size + size % 2
        """))
    for tool in ("apt-get", "dpkg-deb"):
        (bin_dir / tool).chmod(0o755)
    return log


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


# ----------------------------------------------------------------------------- (1) in place
def test_step1_files_in_place_are_used_as_they_are(tmp_path, machine, capsys):
    truth = trees.write_fashion_mnist(tmp_path / "root")
    log = fake_apt(machine, deb=None)
    before = contents(tmp_path / "root")
    rc, out, _ = fetch_cli(capsys, tmp_path / "root")
    assert rc == 0 and "already in place" in out
    assert calls(log) == [] and contents(tmp_path / "root") == before
    assert_readable(tmp_path / "root", truth)


def test_step1_an_incomplete_copy_is_not_mixed_with_a_new_one(tmp_path, capsys):
    trees.write_fashion_mnist(tmp_path)
    (tmp_path / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    rc, _, err = fetch_cli(capsys, tmp_path)
    assert rc == 2 and "incomplete" in err and "lacks t10k-labels-idx1-ubyte" in err
    assert f"rm -r {tmp_path / 'FashionMNIST'}" in err


# ----------------------------------------------------------------------------- (2) Debian package
def test_step2_links_the_installed_debian_package(tmp_path, machine, monkeypatch):
    truth = trees.write_fashion_mnist(tmp_path / "deb")
    debian = tmp_path / "deb" / "FashionMNIST" / "raw"
    monkeypatch.setattr(classification, "DEBIAN_FASHION_MNIST", debian)
    log = fake_apt(machine, deb=None)
    msg = data.fetch("fashion-mnist", tmp_path / "root")
    assert "linked the Debian package's files" in msg
    raw = tmp_path / "root" / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == FILES
    assert all(p.is_symlink() and p.resolve().parent == debian.resolve() for p in raw.iterdir())
    assert calls(log) == [] and contents(tmp_path / "root") == ["FashionMNIST", "FashionMNIST/raw",
                                                                *(f"FashionMNIST/raw/{f}" for f in FILES)]
    assert_readable(tmp_path / "root", truth)


def test_links_left_dangling_by_an_uninstalled_package_are_fetched_again(tmp_path, machine, monkeypatch):
    trees.write_fashion_mnist(tmp_path / "deb")
    monkeypatch.setattr(classification, "DEBIAN_FASHION_MNIST", tmp_path / "deb" / "FashionMNIST" / "raw")
    data.fetch("fashion-mnist", tmp_path / "root")
    shutil.rmtree(tmp_path / "deb")  # apt-get remove dataset-fashion-mnist
    files, truth = package_files(tmp_path, n_train=40)
    fake_apt(machine, build_deb(tmp_path / DEB_NAME, files))
    assert "extracted" in data.fetch("fashion-mnist", tmp_path / "root")
    assert not any(p.is_symlink() for p in (tmp_path / "root" / "FashionMNIST" / "raw").iterdir())
    assert_readable(tmp_path / "root", truth)


# ----------------------------------------------------------------------------- (3) apt-get download
def test_step3_apt_get_download_and_dpkg_deb_without_root(tmp_path, machine):
    files, truth = package_files(tmp_path)
    log = fake_apt(machine, build_deb(tmp_path / DEB_NAME, files))
    root = tmp_path / "root"
    msg = data.fetch("fashion-mnist", root)
    assert msg.startswith(f"fashion-mnist: extracted {DEB_NAME} (`apt-get download`")
    made = calls(log)
    assert [c["argv"] for c in made] == [["download", "dataset-fashion-mnist"]]  # no update, no install
    staging = Path(made[0]["cwd"])
    assert staging.parent.parent == root and staging.parent.name.startswith(".")  # a temporary folder
    assert contents(root) == ["FashionMNIST", "FashionMNIST/raw", *(f"FashionMNIST/raw/{f}" for f in FILES)]
    raw = root / "FashionMNIST" / "raw"
    assert all(not p.is_symlink() and p.read_bytes() == files[f"usr/share/datasets/fashion-mnist/{p.name}"]
               for p in raw.iterdir())
    assert_readable(root, truth)


@pytest.mark.parametrize("lists_empty, calls_expected", [
    (True, [["update"], ["download", "dataset-fashion-mnist"]]),
    (False, [["download", "dataset-fashion-mnist"]]),
])
def test_step3_as_root_updates_empty_package_lists_first(tmp_path, machine, monkeypatch, lists_empty,
                                                         calls_expected):
    monkeypatch.setattr(classification.os, "geteuid", lambda: 0)
    if lists_empty:
        monkeypatch.setattr(classification, "APT_LISTS", tmp_path / "fresh-container-lists")
    files, truth = package_files(tmp_path)
    log = fake_apt(machine, build_deb(tmp_path / DEB_NAME, files))
    assert "extracted" in data.fetch("fashion-mnist", tmp_path / "root")
    assert [c["argv"] for c in calls(log)] == calls_expected
    assert_readable(tmp_path / "root", truth)


def test_step3_failures_fall_through_to_the_download(tmp_path, machine, monkeypatch):
    """apt-get cannot find the package: step 4 is tried, and it fills the root."""
    import torchvision.datasets

    fake_apt(machine, deb=None, fail="E: Unable to locate package dataset-fashion-mnist")
    served = trees.write_fashion_mnist(tmp_path / "served")

    def download(root, train=True, download=False, **kwargs):
        shutil.copytree(tmp_path / "served" / "FashionMNIST", Path(root) / "FashionMNIST", dirs_exist_ok=True)

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", download)
    assert data.fetch("fashion-mnist", tmp_path / "root") == \
        "fashion-mnist: downloaded (torchvision) into " + str(tmp_path / "root" / "FashionMNIST" / "raw")
    assert_readable(tmp_path / "root", served)


def test_step3_a_corrupt_package_leaves_nothing(tmp_path, machine, capsys, offline):
    files, _ = package_files(tmp_path)
    key = "usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
    files[key] = gzip.compress(gzip.decompress(files[key])[:1000])  # truncated
    fake_apt(machine, build_deb(tmp_path / DEB_NAME, files))
    rc, _, err = fetch_cli(capsys, tmp_path / "root")
    assert rc == 2 and "(3) dataset 'fashion-mnist': corrupt file" in err and "truncated" in err
    assert contents(tmp_path / "root") == []


# ----------------------------------------------------------------------------- (4) torchvision
def test_step4_torchvision_downloads_into_a_temporary_folder(tmp_path, monkeypatch):
    """No apt on PATH, no package: torchvision's download, into a staging folder renamed
    into place, with torchvision's own layout (compressed and extracted files) kept."""
    import torchvision.datasets

    served = trees.write_fashion_mnist(tmp_path / "served")
    roots = []

    def download(root, train=True, download=False, **kwargs):
        roots.append(Path(root))
        raw = Path(root) / "FashionMNIST" / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        for f in FILES:
            (raw / f).write_bytes((tmp_path / "served" / "FashionMNIST" / "raw" / f).read_bytes())
            (raw / f[:-3]).write_bytes(gzip.decompress((raw / f).read_bytes()))

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", download)
    root = tmp_path / "root"
    assert "downloaded (torchvision)" in data.fetch("fashion-mnist", root)
    assert roots and all(r.parent == root and r.name.startswith(".") for r in roots)
    assert len(list((root / "FashionMNIST" / "raw").iterdir())) == 8 and not [
        p for p in root.iterdir() if p.name.startswith(".")]
    assert_readable(root, served)


def test_step4_an_interrupted_download_leaves_nothing(tmp_path, monkeypatch, capsys):
    import torchvision.datasets

    trees.write_fashion_mnist(tmp_path / "served")

    def download(root, train=True, download=False, **kwargs):
        raw = Path(root) / "FashionMNIST" / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / "served" / "FashionMNIST" / "raw" / FILES[0], raw)
        (raw / FILES[1]).write_bytes(b"\x1f\x8b half a file")
        raise ConnectionResetError("[Errno 104] Connection reset by peer")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", download)
    rc, _, err = fetch_cli(capsys, tmp_path / "root")
    assert rc == 2 and "(4) torchvision's download failed (ConnectionResetError" in err
    assert contents(tmp_path / "root") == []


# ----------------------------------------------------------------------------- (5) the error
def test_step5_one_line_naming_each_step_and_the_fixes(tmp_path, capsys, offline):
    rc, out, err = fetch_cli(capsys, tmp_path / "root")
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    for needle in (
        "lifestudy data: error: dataset 'fashion-mnist': cannot fetch it; tried",
        f"(1) not under {tmp_path / 'root' / 'FashionMNIST' / 'raw'}",
        "(2) the Debian package dataset-fashion-mnist is not installed",
        "(3) `apt-get download` needs apt-get and dpkg-deb (Debian/Ubuntu): not on PATH",
        "(4) torchvision's download failed (RuntimeError: Error downloading train-images-idx3-ubyte.gz: "
        "Tried https://example/, got: <urlopen error [Errno -3] Temporary failure in name resolution>)",
        "Fix: `sudo apt-get install dataset-fashion-mnist`",
        f"`lifestudy data fetch fashion-mnist --root {tmp_path / 'root'}`",
        f"copy the four *-ubyte.gz files of https://github.com/zalandoresearch/fashion-mnist into "
        f"{tmp_path / 'root' / 'FashionMNIST' / 'raw'}/",
    ):
        assert needle in err, f"{needle!r} not in:\n{err}"
    assert offline and contents(tmp_path / "root") == []


def test_step5_names_what_apt_get_said(tmp_path, machine, capsys, offline):
    fake_apt(machine, deb=None, fail="E: Unable to locate package dataset-fashion-mnist")
    rc, _, err = fetch_cli(capsys, tmp_path / "root")
    assert rc == 2 and err.count("\n") == 1
    assert ("(3) `apt-get download dataset-fashion-mnist` failed "
            "(E: Unable to locate package dataset-fashion-mnist)") in err
    assert contents(tmp_path / "root") == []


def test_scenes_fetch_their_items_through_the_chain(tmp_path, machine):
    """`lifestudy data fetch scenes-det` (what the chapters' ensure_data runs) gets Fashion-MNIST."""
    files, truth = package_files(tmp_path)
    fake_apt(machine, build_deb(tmp_path / DEB_NAME, files))
    msg = data.fetch("scenes-det", tmp_path / "root")
    assert msg.startswith("scenes-det: generated on the fly from Fashion-MNIST's items (fashion-mnist: extracted")
    assert "items from fashion-mnist" in data.check("scenes-det", tmp_path / "root")

