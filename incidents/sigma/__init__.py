"""Sigma rules: the community's detection format, run on ThreatLens's parsed log lines.

The interface the rest of ThreatLens uses:

    from incidents import sigma
    drafts = sigma.analyze(parsed_line, source="auth.log")   # SecurityEventDraft list

`incidents.processing` calls it once per line, beside the built-in analyzer. Rules are
stored as `SigmaRule` rows (`incidents.sigma.services` writes them: REST, admin and
`manage.py sync_sigma_rules` all go through it). See docs/sigma.md.

Modules: `loading` (YAML -> parsed, mapped, compiled rule or a refusal), `fields` (log
sources and field mapping), `compiler` (condition tree -> Python), `engine` (routing,
matching, correlations, drafts), `runtime` (this process's engine, reloaded on change),
`attack` (ATT&CK tags, Navigator layer), `services`, `api`, `admin`.
"""


def analyze(parsed, *, source=None):
    """Security event drafts the enabled Sigma rules raise for one parsed line."""
    from incidents.sigma.runtime import current_engine

    return current_engine().analyze(parsed, source=source)
