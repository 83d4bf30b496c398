"""What a reader may see in each language, for the tests of pages, reports and exports.

A Chinese text may carry Latin letters only for units, standard abbreviations and names; an
English text carries Chinese only in names (facilities, operators, districts, meters, cited
clauses and sources, which are quoted as written).
"""
import re

from dcmon.terms import source_text

# words a Chinese page may carry in Latin letters: units, standard abbreviations, the product name
LATIN_OK = {"kWh", "kW", "PUE", "IT", "UPS", "PDU", "GB", "ID", "dcmon", "ms", "ISO", "IEC", "MQTT", "English", "KW",
            "Prometheus", "PDF", "XLSX", "SHA", "UTC", "JSON", "HTML", "CSV"}
CJK = re.compile(r"[\u3400-\u9fff\u3000-\u303f\uff01-\uff5e]")


def names_of(registry, extra=()) -> list[str]:
    """Texts that are names (facilities, operators, districts, meters, racks, cited clauses): kept as written."""
    import yaml
    from importlib import resources
    out = ["中文", *extra]  # the language menu's own entry
    for f in registry.facilities.values():
        out += [f.id, f.name, f.name_en or "", f.operator, f.district, f.credit_code, *map(str, (f.extra or {}).values()), *(m.id for m in f.meters),
                *(m.name or "" for m in f.meters), *map(str, f.racks["rack_id"]), *map(str, f.racks["room"]),
                *map(str, f.racks["row"])]
    pol = resources.files("dcmon.config") / "policies"
    for p in pol.iterdir():
        if p.name.endswith(".yaml"):
            doc = yaml.safe_load(p.read_text(encoding="utf-8"))
            out += [c.get("clause", "") for c in doc.get("checks") or []]
            out += [c.get("clause", "") for c in doc.get("portfolio_checks") or []]
            out += [(doc.get("subsidy") or {}).get("clause", ""), (doc.get("application_window") or {}).get("clause", ""),
                    doc.get("source", ""), source_text(doc.get("source")), (doc.get("title") or {}).get("zh", ""), doc["id"]]
    from dcmon.metrics.applicant import CLAUSE, ITEMS   # the notice's items, cited by clause in the applicant's pack
    out += [CLAUSE, *(f"{CLAUSE}({n})" for n, _, _ in ITEMS)]
    return sorted({n for n in out if n}, key=len, reverse=True)


def bad_words(text: str, lang: str, names: list[str]) -> list[str]:
    """Internal codes or English words on a Chinese page; Chinese on an English page (names removed)."""
    if lang != "zh":
        # layout (PDF columns, wrapped cells) may break a name anywhere: compare without white space
        text = re.sub(r"\s+", "", text)
        names = [re.sub(r"\s+", "", n) for n in names]
    for n in names:
        text = text.replace(n, " ")
    # setup hints name files, options and variables as they are typed (deploy/…, --prometheus-url, DCMON_…);
    # digests and versions are not words
    text = re.sub(r"\S*/\S*|--[a-z-]+|\b[A-Z][A-Z_]{3,}\b|\b[0-9a-f]{16,}\b|\b\d+\.\d+\.\d+\S*", " ", text)
    if lang == "zh":
        text = re.sub(r"dcmon [a-z]+", " ", text)  # a command as it is typed
        words = re.findall(r"[A-Za-z][A-Za-z_]+", text)
        # a digest wrapped across lines leaves short hex fragments, not words
        return [w for w in words if w not in LATIN_OK and not re.fullmatch(r"[a-f]{1,4}", w)]
    return CJK.findall(text) + re.findall(r"\b[a-z]+_[a-z_]+\b", text)


