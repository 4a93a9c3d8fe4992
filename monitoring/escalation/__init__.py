"""Escalation rules: conditions an admin writes in the app, levels that act once each.

- ``conditions``: the registry of condition kinds, each a set-based filter over open tickets.
- ``actions``: what a level does (notify, assign, raise priority, require approval, tag).
- ``engine``: the sweep (beat, and each ticket event) that matches, fires and clears.
- ``views`` / ``forms`` / ``urls``: the "Escalation rules" settings section and its dry run.
"""
