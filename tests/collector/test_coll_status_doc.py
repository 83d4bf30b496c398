"""The health document (store.put_status) is replaced atomically: dot-file, fsync, rename, folder fsync."""
import os

import pytest

from dcmon.store import open_store


def test_put_status_fsyncs_the_temp_file_before_the_rename_and_then_the_folder(tmp_path, monkeypatch):
    st = open_store(tmp_path / "data")
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        events.append(("fsync", os.path.basename(path)))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.basename(src), os.path.basename(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    st.put_status("collector-a", {"messages": 3})
    assert len(events) == 3, events
    (_, tmp), (_, src, dst), (_, folder) = events
    assert tmp.startswith(".collector-a.") and tmp.endswith(".tmp")    # a dot-file readers ignore
    assert (src, dst) == (tmp, "collector-a.json")
    assert folder == "status"
    assert st.get_status("collector-a") == {"messages": 3}


def test_a_failed_write_leaves_the_previous_document_and_no_temp_file(tmp_path, monkeypatch):
    st = open_store(tmp_path / "data")
    st.put_status("collector-a", {"messages": 1})

    def crash(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError):
        st.put_status("collector-a", {"messages": 2, "big": "x" * 100_000})
    monkeypatch.undo()
    assert st.get_status("collector-a") == {"messages": 1}
    assert sorted(p.name for p in st.status_dir.iterdir()) == ["collector-a.json"]
    assert st.list_status() == {"collector-a": {"messages": 1}}
