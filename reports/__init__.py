"""Reports: the regulator's quarterly inventory export and the subsidy evidence report.

Every figure comes from :func:`dcmon.metrics.evaluate.evaluate`, so an export, a report,
the dashboard and ``dcmon evaluate`` never disagree. Reports embed a machine-readable summary
that ``dcmon verify`` recomputes from the data.
"""
