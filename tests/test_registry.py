"""Registry validation: every error names the file, the line or field and the bad value."""
import shutil

import pytest

from dcmon.errors import ConfigError
from dcmon.registry import credit_code_check_char, credit_code_problem, load_registry

GOOD = """\
id: site-1
name: 测试数据中心
operator: 测试有限公司
credit_code: {cc}
city: chengdu
district: 武侯区
kind: cloud
timezone: Asia/Shanghai
commissioned: 2020-01-01
pue_category: 2
meters:
  - {{id: grid-a, role: facility}}
  - {{id: ups-1, role: it}}
racks: racks.csv
"""
RACKS = "rack_id,room,row,position,design_power_kw,function,status\nA-01,A,01,01,5,compute,in_service\nA-02,A,01,02,5,storage,vacant\n"
VALID_CC = "91510100MA6C" + "00001"
VALID_CC += credit_code_check_char(VALID_CC)


def make(tmp_path, yaml_text=None, racks=RACKS):
    d = tmp_path / "cfg" / "facilities"
    d.mkdir(parents=True, exist_ok=True)
    (d / "site-1.yaml").write_text(yaml_text or GOOD.format(cc=VALID_CC), encoding="utf-8")
    (d / "racks.csv").write_text(racks, encoding="utf-8")
    return tmp_path / "cfg"


def test_valid_config_loads(tmp_path):
    reg = load_registry(make(tmp_path))
    f = reg.get("site-1")
    assert f.meter_ids == {"grid-a", "ups-1"} and len(f.racks) == 2


def test_credit_code_check_character():
    # GB 32100-2015 worked example code used widely in documentation
    assert credit_code_problem("91350100M000100Y43") is None
    assert "check character" in credit_code_problem("91350100M000100Y44")
    assert "18 characters" in credit_code_problem("123")
    assert "not allowed" in credit_code_problem("91350100M000100YI3") or "outside" in credit_code_problem("91350100M000100YI3")


@pytest.mark.parametrize("change, expected", [
    (lambda s: s.replace("role: it", "role: itx"), "meters[1]: meter ups-1 role 'itx' is not one of"),
    (lambda s: s.replace("timezone: Asia/Shanghai", "timezone: Asia/Chengdu"), "timezone 'Asia/Chengdu' is not a known"),
    (lambda s: s.replace(VALID_CC, VALID_CC[:-1] + ("0" if VALID_CC[-1] != "0" else "1")), "check character"),
    (lambda s: s.replace("  - {id: ups-1, role: it}\n", ""), "no IT energy source"),
    (lambda s: s.replace("kind: cloud", "kind: cloudy"), "kind 'cloudy' is not one of"),
    (lambda s: s.replace("id: site-1", "id: Site_1"), "id 'Site_1' must be lowercase"),
    (lambda s: s + "pue_categroy: 2\n", "unknown key(s) pue_categroy"),
    (lambda s: s.replace("pue_category: 2", "pue_category: 4"), "pue_category 4 must be 1"),
    (lambda s: s.replace("commissioned: 2020-01-01", "commissioned: 2020-13-01"), "commissioned is not a date"),
    (lambda s: s.replace("racks: racks.csv", "racks: missing.csv"), "racks file not found"),
    (lambda s: s.replace("  - {id: ups-1, role: it}", "  - {id: grid-a, role: it}"), "duplicate meter id 'grid-a'"),
])
def test_bad_facility_file_names_file_field_and_value(tmp_path, change, expected):
    cfg = make(tmp_path, change(GOOD.format(cc=VALID_CC)))
    with pytest.raises(ConfigError) as e:
        load_registry(cfg)
    assert expected in str(e.value)
    assert "site-1.yaml" in str(e.value)


@pytest.mark.parametrize("racks, expected", [
    (RACKS + "A-01,A,01,03,5,compute,in_service\n", "racks.csv:4: duplicate rack_id 'A-01' (first on line 2)"),
    (RACKS + "A-03,A,01,03,0,compute,in_service\n", "racks.csv:4: rack A-03 design_power_kw must be > 0: '0'"),
    (RACKS + "A-03,A,01,03,-2,compute,in_service\n", "racks.csv:4: rack A-03 design_power_kw must be > 0: '-2'"),
    (RACKS + "A-03,A,01,03,abc,compute,in_service\n", "racks.csv:4: rack A-03 design_power_kw is not a number: 'abc'"),
    (RACKS + "A-03,A,01,03,5,gpu,in_service\n", "racks.csv:4: rack A-03 function 'gpu' is not one of"),
    (RACKS + "A-03,A,01,03,5,compute,broken\n", "racks.csv:4: rack A-03 status 'broken' is not one of"),
    ("rack_id,room,design_power_kw\nA,1,2\n", "missing column(s) row, position, function, status"),
])
def test_bad_racks_csv_names_line_and_value(tmp_path, racks, expected):
    with pytest.raises(ConfigError) as e:
        load_registry(make(tmp_path, racks=racks))
    assert expected in str(e.value)


def test_all_errors_reported_together(tmp_path):
    text = GOOD.format(cc="123").replace("kind: cloud", "kind: x")
    with pytest.raises(ConfigError) as e:
        load_registry(make(tmp_path, text, racks=RACKS + "A-01,A,01,03,5,compute,in_service\n"))
    msg = str(e.value)
    assert "credit_code" in msg and "kind 'x'" in msg and "duplicate rack_id" in msg


def test_missing_folder_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="no facilities/ folder"):
        load_registry(tmp_path)
    cfg = make(tmp_path, "id: [unclosed\n")
    with pytest.raises(ConfigError, match=r"site-1.yaml:\d+: not valid YAML"):
        load_registry(cfg)


def test_shipped_example_is_valid(tmp_path):
    from pathlib import Path
    repo = Path(__file__).resolve().parents[1]
    cfg = tmp_path / "c"
    shutil.copytree(repo / "config", cfg, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    reg = load_registry(cfg)
    assert "example" in reg.facilities


def test_racks_on_demand_reads_a_facility_s_racks_when_used(tmp_path):
    cfg = make(tmp_path)
    d = cfg / "facilities"
    (d / "site-2.yaml").write_text(GOOD.format(cc=VALID_CC).replace("id: site-1", "id: site-2")
                                   .replace("racks: racks.csv", "racks: bad.csv"), encoding="utf-8")
    (d / "bad.csv").write_text(RACKS + "A-03,A,01,03,-1,compute,in_service\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="bad.csv"):
        load_registry(cfg)                      # read up front: site-2's bad rack line stops everything
    reg = load_registry(cfg, racks_on_demand=True)
    f = reg.get("site-1")
    assert "racks" not in f.__dict__            # not read yet
    assert f.racks["rack_id"].tolist() == ["A-01", "A-02"] and f.rack_ids == {"A-01", "A-02"}
    with pytest.raises(ConfigError, match=r"bad.csv:4: rack A-03 design_power_kw"):
        reg.get("site-2").racks                 # read when used, with the same error
    # the configuration a report names is the same whichever way it was loaded
    (d / "bad.csv").write_text(RACKS, encoding="utf-8")
    assert load_registry(cfg, racks_on_demand=True).fingerprint() == load_registry(cfg).fingerprint()


def test_rack_meter_clash_found_on_demand_too(tmp_path):
    cfg = make(tmp_path, racks=RACKS.replace("A-02", "ups-1"))
    with pytest.raises(ConfigError, match="rack and meter ids must differ: ups-1"):
        load_registry(cfg, racks_on_demand=True).get("site-1").racks
