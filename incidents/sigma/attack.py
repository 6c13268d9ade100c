"""MITRE ATT&CK from Sigma tags, and the Navigator layer of what the enabled rules cover.

Sigma tags a rule `attack.t1110.001` (a technique), `attack.credential-access` (a tactic)
or `attack.g0016` / `attack.s0005` (groups, software; kept but not shown as coverage).
Tactic names are those of ATT&CK before v19 and since (SigmaHQ uses `attack.stealth` and
`attack.defense-impairment` where older rules say `attack.defense-evasion`); each is kept
as written, with its ATT&CK id when the name has one.
"""

import re

TACTICS = {
    "reconnaissance": "TA0043",
    "resource-development": "TA0042",
    "initial-access": "TA0001",
    "execution": "TA0002",
    "persistence": "TA0003",
    "privilege-escalation": "TA0004",
    "defense-evasion": "TA0005",
    "credential-access": "TA0006",
    "discovery": "TA0007",
    "lateral-movement": "TA0008",
    "collection": "TA0009",
    "command-and-control": "TA0011",
    "exfiltration": "TA0010",
    "impact": "TA0040",
    # ATT&CK v19 split defense evasion; ids are left out rather than guessed.
    "stealth": None,
    "defense-impairment": None,
}
_TECHNIQUE = re.compile(r"^t(\d{4})(?:\.(\d{3}))?$")


def attack_of(tags):
    """{"techniques": ["T1110.001"], "tactics": [{"name": ..., "id": ...}]} from rule tags
    (strings like "attack.t1110.001"); empty lists when the rule has none."""
    techniques, tactics = [], []
    for tag in tags:
        namespace, _, name = str(tag).lower().partition(".")
        if namespace != "attack" or not name:
            continue
        technique = _TECHNIQUE.match(name)
        if technique:
            identifier = "T" + technique.group(1)
            if technique.group(2):
                identifier += "." + technique.group(2)
            if identifier not in techniques:
                techniques.append(identifier)
        elif name.replace("_", "-") in TACTICS:
            tactic = name.replace("_", "-")
            if all(item["name"] != tactic for item in tactics):
                tactics.append({"name": tactic, "id": TACTICS[tactic]})
    return {"techniques": techniques, "tactics": tactics}


def navigator_layer(rules, *, name="ThreatLens Sigma coverage"):
    """An ATT&CK Navigator layer (format 4.5) scoring each technique by the number of
    enabled rules that detect it; `rules` are SigmaRule rows (their `techniques` and
    `title`)."""
    covered = {}
    for rule in rules:
        for technique in rule.techniques:
            covered.setdefault(technique, []).append(rule.title)
    return {
        "name": name,
        "versions": {"layer": "4.5", "navigator": "5.1.0"},
        "domain": "enterprise-attack",
        "description": "Techniques the enabled Sigma rules of this ThreatLens detect.",
        "techniques": [
            {
                "techniqueID": technique,
                "score": len(titles),
                "comment": "; ".join(sorted(titles))[:1000],
                "enabled": True,
            }
            for technique, titles in sorted(covered.items())
        ],
        "gradient": {"colors": ["#ffe766", "#ff6666"], "minValue": 0, "maxValue": 5},
    }


def coverage_by_tactic(rules):
    """What the enabled rules cover, grouped by tactic in ATT&CK's order: a list of
    {"name", "id", "techniques": [{"id", "rules": [{"id", "sigma_id", "title"}]}]}.

    A technique sits under every tactic its rules are tagged with (a rule tagged
    `credential-access` and `t1110` puts T1110 under credential access); techniques of
    rules with no tactic tag come last, under a tactic named None. `rules` are SigmaRule
    rows (their `techniques`, `tactics`, `pk`, `sigma_id`, `title`)."""
    grouped = {}
    for rule in rules:
        if not rule.techniques:
            continue
        names = [tactic.get("name") for tactic in rule.tactics if isinstance(tactic, dict)]
        for tactic in names or [None]:
            techniques = grouped.setdefault(tactic, {})
            for technique in rule.techniques:
                techniques.setdefault(technique, {})[rule.pk] = {
                    "id": rule.pk,
                    "sigma_id": rule.sigma_id,
                    "title": rule.title,
                }
    order = list(TACTICS)

    def rank(name):
        return (name is None, order.index(name) if name in order else len(order), name or "")

    return [
        {
            "name": name,
            "id": TACTICS.get(name),
            "techniques": [
                {
                    "id": technique,
                    "rules": sorted(by_rule.values(), key=lambda item: item["title"].lower()),
                }
                for technique, by_rule in sorted(grouped[name].items())
            ],
        }
        for name in sorted(grouped, key=rank)
    ]
