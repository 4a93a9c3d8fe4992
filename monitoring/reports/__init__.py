"""Manager reports: roll-ups kept from the ticket event log, the figures read from them, their
definitions, charts and CSV exports (the dashboard view lives in ``monitoring.views``)."""
