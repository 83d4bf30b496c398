"""Reports tests sign with a key made for the session, never with the real ~/.config/dcmon/keys."""
import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def session_key_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys-parent") / "keys"
    old = os.environ.get("DCMON_KEY_DIR")
    os.environ["DCMON_KEY_DIR"] = str(d)   # inherited by the dcmon subprocesses the tests run
    yield d
    if old is None:
        os.environ.pop("DCMON_KEY_DIR", None)
    else:
        os.environ["DCMON_KEY_DIR"] = old
