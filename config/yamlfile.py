"""Reading config YAML: safe, and without implicit dates (dates stay text, checked by the schemas)."""
from __future__ import annotations

from pathlib import Path

import yaml


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """Safe YAML without implicit dates: dates stay strings and are validated with a named error."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(path: Path):
    return yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_Loader)


def yaml_error_where(path: Path, e: yaml.YAMLError) -> str:
    """``file:line`` of a YAML syntax error (the file alone when the parser gives no line)."""
    mark = getattr(e, "problem_mark", None)
    return f"{path}:{mark.line + 1}" if mark else str(path)
