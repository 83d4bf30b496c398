"""dcmon: data-centre energy and rack compliance monitor.

Data flows one way::

    collector/  (MQTT topic -> Reading rows)      dcmon.collector
        -> store/   (Parquet dataset or InfluxDB) dcmon.store
        -> metrics/ (PUE, racks, policy checks)   dcmon.metrics
        -> dashboard/ and reports/                dcmon.dashboard, dcmon.reports

``dcmon.readings`` is the one reading model every layer shares, ``dcmon.registry``
the facility configuration, ``dcmon.periods`` the one period parser.
"""

__version__ = "0.1.0"
