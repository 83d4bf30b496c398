"""What an entry point wires, for tests that start from folders: the entry points (``dcmon dashboard``,
``dcmon demo``) load the registry and open the store, then hand both to the dashboard."""
from dcmon.registry import load_registry
from dcmon.store import open_store


def app_for(config_dir, data_dir, **kwargs):
    """``create_app`` for a configuration folder and a data folder, as ``dcmon dashboard`` builds it."""
    from dcmon.dashboard.app import create_app
    return create_app(load_registry(config_dir), open_store(data_dir), **kwargs)


def loader_for(config_dir, data_dir, **kwargs):
    """The dashboard's ``Loader`` for a configuration folder and a data folder."""
    from dcmon.dashboard.data import Loader
    return Loader(load_registry(config_dir), open_store(data_dir), **kwargs)
