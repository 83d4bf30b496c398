"""dcmon config: the shipped policy profiles and example files, and one schema per kind of config file.

- ``facility``: facility YAML (meters, retrofit, applicant block) and racks CSV rows
- ``policy``: policy profiles (checks, portfolio checks, subsidy, grades, in_force, application window)
- ``users``: the dashboard's users file
- ``mappings``: device mappings for ``dcmon collect --mapping``
- ``errors``: turns a schema's errors into the user's sentences (file, line or field, value), all at once

Loaders (``dcmon.registry``, ``metrics.policy``, ``dashboard.auth``, ``dcmon.cli.collect``) read the file
and hand the parsed document to a schema; this package imports only foundation modules.
"""
