"""The grader's copy of a workspace keeps regular files and refuses what could harm the grader."""

from __future__ import annotations

import os

from autograder import snapshot


def test_regular_files_are_copied_and_caches_left_out(tmp_path):
    workspace = tmp_path / "workspace"
    (workspace / "service" / "__pycache__").mkdir(parents=True)
    (workspace / "service" / "app.py").write_text("app = 1\n")
    (workspace / "service" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0")
    (workspace / ".git").mkdir()
    (workspace / ".git" / "HEAD").write_text("ref")
    copy = snapshot.take(workspace, tmp_path / "copy")
    assert (copy.root / "service" / "app.py").read_text() == "app = 1\n"
    assert not (copy.root / "service" / "__pycache__").exists() and not (copy.root / ".git").exists()
    assert copy.notes == [] and copy.files == 1


def test_a_symlink_out_of_the_workspace_is_refused_and_one_inside_copied(tmp_path):
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "real.txt").write_text("mine")
    (workspace / "requirements.txt").symlink_to("/etc/passwd")
    (workspace / "alias.txt").symlink_to(workspace / "real.txt")
    (workspace / "escape").symlink_to("/etc", target_is_directory=True)
    copy = snapshot.take(workspace, tmp_path / "copy")
    assert not (copy.root / "requirements.txt").exists()
    assert (copy.root / "alias.txt").read_text() == "mine" and not (copy.root / "alias.txt").is_symlink()
    assert not (copy.root / "escape").exists()
    assert any(note.startswith("requirements.txt: refused") for note in copy.notes)
    assert any(note.startswith("escape: refused") for note in copy.notes)


def test_huge_and_sparse_files_are_left_out_without_being_read(tmp_path):
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    with open(workspace / "requirements.txt", "wb") as sparse:
        sparse.truncate(1024**3)  # 1 GB that takes no disk: reading it would take 1 GB of memory
    (workspace / "small.txt").write_text("ok")
    copy = snapshot.take(workspace, tmp_path / "copy", file_limit=1024**2)
    assert not (copy.root / "requirements.txt").exists()
    assert (copy.root / "small.txt").exists()
    assert any("over the 1 MB limit" in note for note in copy.notes)


def test_the_total_is_bounded(tmp_path):
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    for index in range(5):
        (workspace / f"part-{index}.bin").write_bytes(b"0" * 1000)
    copy = snapshot.take(workspace, tmp_path / "copy", total_limit=2500)
    assert copy.files == 2 and copy.total_bytes == 2000
    assert sum("limit" in note for note in copy.notes) == 3


def test_pipes_and_sockets_are_left_out(tmp_path):
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    os.mkfifo(workspace / "pipe")  # reading it would block the grader forever
    copy = snapshot.take(workspace, tmp_path / "copy")
    assert not (copy.root / "pipe").exists()
    assert copy.notes == ["pipe: left out: not a regular file (a device, pipe or socket)"]


def test_folders_nested_too_deep_are_left_out_without_a_crash(tmp_path):
    workspace = tmp_path / "workspace"
    (workspace / "service").mkdir(parents=True)
    (workspace / "service" / "app.py").write_text("app = None\n")
    deep = workspace.joinpath(*["d"] * 200)  # (1,200 levels crashed the recursive walk)
    deep.mkdir(parents=True)
    (deep / "x").write_text("x")
    copy = snapshot.take(workspace, tmp_path / "copy")
    assert (copy.root / "service" / "app.py").read_text() == "app = None\n"
    assert any(f"nested more than {snapshot.MAX_DEPTH} deep" in n for n in copy.notes), copy.notes
    assert copy.files == 1
