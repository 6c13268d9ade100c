"""The detection pipeline's pure-Python heart: parsers, rules, analysis state, samples.

Nothing here defines models or writes to the database. The ingest service (models, REST,
commands) calls `parse_line` on each raw line, feeds the result to an `Analyzer`, and turns
the `SecurityEventDraft`s it returns into stored, published security events and alerts.
"""
