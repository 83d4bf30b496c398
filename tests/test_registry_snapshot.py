"""The registry snapshot: a valid configuration is validated once and loaded in one read while its
files are unchanged; any change, damage or foreign file means validating again, and errors are
never kept."""
import os
import stat
import subprocess
import sys

import pytest

from dcmon.errors import ConfigError
from dcmon.registry import load_registry, snapshot_path
from tests.test_registry import GOOD, RACKS, VALID_CC, make

OLD_NS = 1_700_000_000 * 10**9   # 2023-11-14: files edited long before the load (a snapshot is then kept)


def age(cfg):
    """Set every config file's time well before now (a file changed during a load is not snapshotted)."""
    for p in cfg.rglob("*"):
        if p.is_file():
            os.utime(p, ns=(OLD_NS, OLD_NS))


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    monkeypatch.setenv("DCMON_CACHE", str(tmp_path / "cache"))
    c = make(tmp_path)
    age(c)
    return c


def edit(path, text):
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(OLD_NS + 10**9, OLD_NS + 10**9))


def test_a_valid_configuration_is_kept_owner_only_and_loaded_from_the_snapshot(cfg):
    first = load_registry(cfg)
    snap = snapshot_path(cfg)
    assert snap.is_file()
    assert stat.S_IMODE(snap.stat().st_mode) == 0o600 and stat.S_IMODE(snap.parent.stat().st_mode) == 0o700
    again = load_registry(cfg)
    f, g = first.get("site-1"), again.get("site-1")
    assert g.racks["rack_id"].tolist() == ["A-01", "A-02"] and g.racks["design_power_kw"].tolist() == [5.0, 5.0]
    assert (g.path, g.racks_path, g.meters, g.credit_code) == (f.path, f.racks_path, f.meters, f.credit_code)
    # loaded from the snapshot: validation is not run again
    import dcmon.registry as reg_mod
    calls = []
    orig = reg_mod._validate
    reg_mod._validate = lambda *a, **k: calls.append(1) or orig(*a, **k)
    try:
        load_registry(cfg)
        load_registry(cfg, racks_on_demand=True)
    finally:
        reg_mod._validate = orig
    assert calls == []


@pytest.mark.parametrize("change", ["yaml", "racks", "same_size_same_time", "new_file", "removed_file"])
def test_any_change_of_a_config_file_is_seen(cfg, change):
    load_registry(cfg)
    d = cfg / "facilities"
    if change == "yaml":
        edit(d / "site-1.yaml", GOOD.format(cc=VALID_CC).replace("name: 测试数据中心", "name: 新名字"))
        assert load_registry(cfg).get("site-1").name == "新名字"
    elif change == "racks":
        edit(d / "racks.csv", RACKS.replace("A-02,A,01,02,5", "A-02,A,01,02,7.5"))
        assert load_registry(cfg).get("site-1").racks["design_power_kw"].tolist() == [5.0, 7.5]
    elif change == "same_size_same_time":   # the content hash catches what size and time do not
        (d / "racks.csv").write_text(RACKS.replace("storage,vacant", "compute,vacant"), encoding="utf-8")
        os.utime(d / "racks.csv", ns=(OLD_NS, OLD_NS))
        assert load_registry(cfg).get("site-1").racks["function"].tolist() == ["compute", "compute"]
    elif change == "new_file":
        edit(d / "site-2.yaml", GOOD.format(cc=VALID_CC).replace("id: site-1", "id: site-2"))
        assert sorted(load_registry(cfg).facilities) == ["site-1", "site-2"]
    else:
        edit(d / "site-2.yaml", GOOD.format(cc=VALID_CC).replace("id: site-1", "id: site-2"))
        load_registry(cfg)
        (d / "site-2.yaml").unlink()
        assert sorted(load_registry(cfg).facilities) == ["site-1"]


def test_an_invalid_configuration_fails_the_same_way_every_time(cfg):
    load_registry(cfg)
    edit(cfg / "facilities" / "racks.csv", RACKS + "A-03,A,01,03,-1,compute,in_service\n")
    messages = []
    for _ in range(3):
        with pytest.raises(ConfigError) as e:
            load_registry(cfg)
        messages.append(str(e.value))
    assert messages[0] == messages[1] == messages[2] and "racks.csv:4: rack A-03 design_power_kw must be > 0" in messages[0]


@pytest.mark.parametrize("damage", [b"", b"not a pickle", None])
def test_a_damaged_snapshot_is_ignored_and_rebuilt(cfg, damage):
    load_registry(cfg)
    snap = snapshot_path(cfg)
    data = snap.read_bytes()
    snap.write_bytes(data[: len(data) // 2] if damage is None else damage)
    assert load_registry(cfg).get("site-1").racks["rack_id"].tolist() == ["A-01", "A-02"]
    assert snap.read_bytes() == data      # written again


def test_a_snapshot_others_may_write_is_not_trusted(cfg):
    load_registry(cfg)
    snap = snapshot_path(cfg)
    os.chmod(snap, 0o666)
    import dcmon.registry as reg_mod
    assert reg_mod._read_snapshot(snap, cfg) is None
    os.chmod(snap, 0o600)
    os.chmod(snap.parent, 0o777)
    assert reg_mod._read_snapshot(snap, cfg) is None
    assert load_registry(cfg).get("site-1").name == "测试数据中心"


def test_a_file_changed_during_validation_is_not_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("DCMON_CACHE", str(tmp_path / "cache"))
    cfg = make(tmp_path)            # just written: its time is not before the load started
    load_registry(cfg)
    assert not snapshot_path(cfg).exists()


def test_cache_off_and_cli_uses_the_snapshot(cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("DCMON_CACHE", "off")
    load_registry(cfg)
    assert snapshot_path(cfg) is None and not (tmp_path / "cache").exists()
    env = {**os.environ, "DCMON_CACHE": str(tmp_path / "cache")}
    for _ in range(2):
        out = subprocess.run([sys.executable, "-m", "dcmon.cli", "facilities", "--config", str(cfg)],
                             capture_output=True, text=True, env=env)
        assert out.returncode == 0 and "site-1" in out.stdout and "Traceback" not in out.stderr
    assert list((tmp_path / "cache" / "registry").glob("*.pickle"))


def test_another_dcmon_version_validates_again(cfg, monkeypatch):
    load_registry(cfg)
    import dcmon
    import dcmon.registry as reg_mod
    monkeypatch.setattr(dcmon, "__version__", dcmon.__version__ + ".post1")
    assert reg_mod._read_snapshot(snapshot_path(cfg), cfg) is None
    load_registry(cfg)                                       # kept again for this version
    assert reg_mod._read_snapshot(snapshot_path(cfg), cfg) is not None
