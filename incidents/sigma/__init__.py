"""Sigma rules: the community's detection format, run on ThreatLens's parsed log lines.

The interface the rest of ThreatLens uses:

    from incidents import sigma
    by_line = sigma.analyze_many(parsed_lines, source="auth.log", lines=line_ids)

`incidents.processing` calls `analyze_many` once per chunk, beside the built-in analyzer, and asks
`sigma.builtin_rules(rules)` for the built-in rules that analyzer runs: a loaded Sigma
correlation may replace one of them (`replacing`). Rules are
stored as `SigmaRule` rows (`incidents.sigma.services` writes them: REST, admin and
`manage.py sync_sigma_rules` all go through it). See docs/sigma.md.

Modules: `loading` (YAML -> parsed, mapped, compiled rule or a refusal), `fields` (log
sources and field mapping), `compiler` (condition tree -> Python), `engine` (routing,
matching, correlations, drafts), `runtime` (this process's engine, reloaded on change),
`replacing` (correlations that replace a built-in rule), `attack` (ATT&CK tags, Navigator
layer), `services`, `api`, `admin`.
"""


def analyze_many(parsed_lines, *, source=None, lines=None, state=None, replay=False):
    """The drafts of each parsed line (a list per line), the detection state asked once
    for all of them; `lines`: stable line ids (`processing.line_id`); `state`: the
    built-in analyzer's (default: this process's detection state); `replay`: lines stored
    before a crash, analysed again for the state only (no hit counted)."""
    from incidents.sigma.runtime import current_engine

    return current_engine().analyze_many(
        parsed_lines, source=source, lines=lines, state=state, replay=replay
    )


def count_replacement_firings(drafts):
    """Count, in the Sigma rules' hits, the built-in analyzer's drafts raised by a Sigma
    correlation that replaces a built-in rule (`replacing`)."""
    from incidents.sigma.runtime import current_engine

    current_engine().count_replacement_firings(drafts)


def builtin_rules(rules):
    """The built-in rules to run (`rules`, a tuple of compiled ones), each one an enabled
    Sigma correlation replaces (`threatlens-replaces`) swapped for it (`replacing.py`)."""
    from incidents.sigma.runtime import current_engine

    return current_engine().builtin_rules(rules)
