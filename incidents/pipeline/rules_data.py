"""The detection rules ThreatLens ships, as data (format: see `rules.py`).

Severity guide: 9-10 likely compromise, 7-8 active attack (raises an alert at the default
ALERT_SEVERITY_THRESHOLD of 7), 4-6 reconnaissance or policy trouble worth a look, 1-3 noise.
Rules that match single lines carry a cooldown, so a scanner sending 500 injection probes
produces one event per address per cooldown, not 500.

The threshold rules Sigma can say are also shipped as Sigma correlations
(incidents/sigma/rules/, `threatlens-replaces`); while one is loaded it runs in place of
the rule here (`incidents.sigma.replacing`). Their ATT&CK tags are the same on both sides.
"""

_SSH_FAILURE = {
    "category": "authentication",
    "action": "login_failure",
    "fields": {"service": {"equals": "sshd"}},
}
_WEB_REQUEST = {"category": "web", "action": ["http_request", "bad_request"]}

SCANNER_USER_AGENTS = (
    r"(?i)\b(sqlmap|nikto|nmap|masscan|zgrab|gobuster|dirbuster|wpscan|nuclei|feroxbuster|"
    r"ffuf|wfuzz|acunetix|nessus|openvas|whatweb|skipfish|arachni|jaeles|dirsearch|"
    r"netsparker|w3af|zmeu|morfeus|hydra|commix|xsstrike|joomscan|censysinspect|"
    r"internetmeasurement|l9explore|l9tcpid)\b"
)
SQL_INJECTION = (
    r"(?i)(\bunion\b[\s+/*]+(?:all[\s+/*]+)?select\b|'\s*or\s*'?\d+'?\s*=\s*'?\d+|"
    r"\bor\s+1\s*=\s*1\b|\bsleep\s*\(\s*\d|\bbenchmark\s*\(|\binformation_schema\b|"
    r"\bpg_sleep\s*\(|\bwaitfor\s+delay\b|\bxp_cmdshell\b|;\s*drop\s+table\b|"
    r"\bextractvalue\s*\(|\bupdatexml\s*\(|\bload_file\s*\(|'\s*--)"
)
XSS = (
    r"(?i)(<\s*script\b|javascript\s*:|\bon(?:error|load|mouseover|focus)\s*=|<\s*svg\b[^>]*\bon\w+|"
    r"<\s*img\b[^>]*\bsrc\s*=|\balert\s*\(|document\.cookie|<\s*iframe\b)"
)

RULES = [
    {
        "id": "ssh_bruteforce_ip",
        "name": "SSH brute force from one address",
        "description": "Many failed SSH logins from a single address in a short time.",
        "match": _SSH_FAILURE,
        "threshold": {"count": 10, "window": 300, "group_by": "src_ip"},
        "severity": 8,
        "category": "authentication",
        "alert_category": "suspicious",
        "threat_level": "high",
        "confidence": 0.9,
        "message": "SSH brute force from {src_ip}: {count} failed logins in {window} s",
        "explanation": (
            "{count} failed SSH logins from {src_ip} within {window} seconds (threshold "
            "{threshold}), the last for user {user}. Password guessing from one address."
        ),
        "recommendations": [
            "Block {src_ip} at the firewall or with fail2ban",
            "Check for a successful login from this address after the failures",
            "Disable SSH password authentication in favour of keys",
        ],
        "correlation_key": "ssh_bruteforce_ip:{src_ip}",
        "attack": ["attack.credential-access", "attack.t1110.001"],
    },
    {
        "id": "ssh_bruteforce_user",
        "name": "SSH brute force against one account",
        "description": "Many failed SSH logins for one user name, from any addresses.",
        "match": _SSH_FAILURE,
        "threshold": {"count": 10, "window": 600, "group_by": "user"},
        "severity": 7,
        "category": "authentication",
        "alert_category": "suspicious",
        "threat_level": "high",
        "confidence": 0.8,
        "message": "SSH brute force against account {user}: {count} failed logins in {window} s",
        "explanation": (
            "{count} failed SSH logins for user {user} within {window} seconds (threshold "
            "{threshold}), the last from {src_ip}. Several addresses may share the attack."
        ),
        "recommendations": [
            "Make sure the account {user} has a strong password or key-only access",
            "Review the source addresses of the failures and block them",
            "Disable direct root login over SSH (PermitRootLogin no)",
        ],
        "correlation_key": "ssh_bruteforce_user:{user}",
        "attack": ["attack.credential-access", "attack.t1110.001"],
    },
    {
        "id": "login_bruteforce_ip",
        "name": "Application login brute force from one address",
        "description": "Many failed logins to a service other than SSH from one address.",
        "match": {
            "category": "authentication",
            "action": "login_failure",
            "fields": {"service": {"not_in": ["sshd"]}},
        },
        "threshold": {"count": 10, "window": 300, "group_by": "src_ip"},
        "severity": 7,
        "category": "authentication",
        "alert_category": "suspicious",
        "threat_level": "high",
        "confidence": 0.8,
        "message": "Login brute force on {service} from {src_ip}: {count} failures in {window} s",
        "explanation": (
            "{count} failed logins to {service} from {src_ip} within {window} seconds "
            "(threshold {threshold}): password guessing or credential stuffing."
        ),
        "recommendations": [
            "Rate-limit or block {src_ip}",
            "Check the targeted accounts for a later successful login",
            "Enable multi-factor authentication for the application",
        ],
        "correlation_key": "login_bruteforce_ip:{src_ip}",
    },
    {
        "id": "ssh_invalid_users",
        "name": "SSH attempts for non-existent users",
        "description": "Several logins for user names that do not exist on the host.",
        "match": {
            "category": "authentication",
            "action": "invalid_user",
            "fields": {"service": {"equals": "sshd"}},
        },
        "threshold": {"count": 3, "window": 300, "group_by": "src_ip"},
        "severity": 5,
        "category": "authentication",
        "alert_category": "suspicious",
        "threat_level": "medium",
        "confidence": 0.8,
        "message": "SSH user enumeration from {src_ip}: {count} invalid user names in {window} s",
        "explanation": (
            "{src_ip} tried {count} user names that do not exist (the last: {user}) within "
            "{window} seconds: a dictionary attack or user enumeration."
        ),
        "recommendations": [
            "Block {src_ip} if it is not a known client",
            "Restrict SSH to known networks or a VPN",
        ],
        "correlation_key": "ssh_invalid_users:{src_ip}",
    },
    {
        "id": "login_new_address",
        "name": "Login from a new address",
        "description": (
            "A successful login from an address this user has not logged in from before "
            "(a user's first login sets the baseline and does not fire)."
        ),
        "match": {"category": "authentication", "action": "login_success"},
        "first_seen": {"value": "src_ip", "per": "user", "remember": 30 * 86400},
        "severity": 5,
        "category": "authentication",
        "alert_category": "suspicious",
        "threat_level": "medium",
        "confidence": 0.6,
        "message": "{user} logged in to {service} from a new address {src_ip}",
        "explanation": (
            "User {user} has not logged in from {src_ip} in the last 30 days. This is normal "
            "for travel or a new network, and also how a stolen credential shows up."
        ),
        "recommendations": [
            "Confirm with {user} that the login from {src_ip} was theirs",
            "Look at what the session did after the login",
        ],
        "correlation_key": "login_new_address:{user}",
    },
    {
        "id": "login_after_bruteforce",
        "name": "Successful login after a brute force",
        "description": "A login succeeds for the address or account a brute force targeted.",
        "match": {"category": "authentication", "action": "login_success"},
        "preceded_by": [
            {"rule": "ssh_bruteforce_ip", "within": 3600},
            {"rule": "login_bruteforce_ip", "within": 3600},
            {"rule": "ssh_bruteforce_user", "within": 3600},
        ],
        "cooldown": 3600,
        "severity": 9,
        "category": "authentication",
        "alert_category": "suspicious",
        "threat_level": "critical",
        "confidence": 0.85,
        "message": "Likely compromise: {user} logged in from {src_ip} after a brute force",
        "explanation": (
            "User {user} logged in to {service} from {src_ip} after a burst of failed logins "
            "for this address or account: the password was probably guessed."
        ),
        "recommendations": [
            "Terminate the sessions of {user} and lock or reset the account now",
            "Block {src_ip} and look for other logins from it",
            "Review commands run, files changed and new SSH keys since the login",
            "Open an incident and preserve the logs",
        ],
        "correlation_key": "login_after_bruteforce:{src_ip}",
    },
    {
        "id": "sudo_auth_failure",
        "name": "sudo password failures",
        "description": "A user failed the password prompt of sudo.",
        "match": {"category": "authorization", "action": "sudo_auth_failure"},
        "cooldown": 600,
        "severity": 5,
        "category": "authorization",
        "alert_category": "policy_violation",
        "threat_level": "medium",
        "confidence": 0.6,
        "message": "sudo password failure for {user} on {host} (incorrect attempts: {attempts})",
        "explanation": (
            "{user} gave {attempts} incorrect password(s) to sudo trying to run "
            "{command} as {target_user}. A typo, or someone using an unlocked session."
        ),
        "recommendations": [
            "Ask {user} whether they ran sudo at this time",
            "Check the session that ran it (tty {tty})",
        ],
        "correlation_key": "sudo_auth_failure:{user}",
    },
    {
        "id": "sudo_not_permitted",
        "name": "sudo by a user without the right",
        "description": "A user not in sudoers, or not allowed the command, tried sudo.",
        "match": {
            "category": "authorization",
            "action": ["sudo_not_in_sudoers", "sudo_command_denied"],
        },
        "cooldown": 600,
        "severity": 6,
        "category": "authorization",
        "alert_category": "policy_violation",
        "threat_level": "medium",
        "confidence": 0.8,
        "message": "{user} tried sudo without permission on {host}: {command}",
        "explanation": (
            "{user} is not allowed to run {command} as {target_user}. An attempt at "
            "privilege escalation, or a misconfigured account."
        ),
        "recommendations": [
            "Verify with {user} why they tried to run {command} as {target_user}",
            "Review the account's recent activity for other escalation attempts",
        ],
        "correlation_key": "sudo_not_permitted:{user}",
    },
    {
        "id": "su_failure",
        "name": "su failures",
        "description": "A failed attempt to switch user with su.",
        "match": {"category": "authorization", "action": "su_failure"},
        "cooldown": 600,
        "severity": 4,
        "category": "authorization",
        "alert_category": "policy_violation",
        "threat_level": "low",
        "confidence": 0.6,
        "message": "su to {target_user} failed for {user} on {host}",
        "explanation": (
            "{user} gave a wrong password to su {target_user}. Repeated failures suggest "
            "someone guessing the {target_user} password."
        ),
        "recommendations": [
            "Ask {user} about the attempt",
            "Prefer sudo with per-user rules over shared passwords and su",
        ],
        "correlation_key": "su_failure:{user}",
    },
    {
        "id": "web_404_burst",
        "name": "Burst of 404 responses",
        "description": "One address requesting many paths that do not exist: content discovery.",
        "match": {"category": "web", "fields": {"status": {"equals": 404}}},
        "threshold": {"count": 20, "window": 60, "group_by": "src_ip"},
        "severity": 5,
        "category": "reconnaissance",
        "alert_category": "suspicious",
        "threat_level": "medium",
        "confidence": 0.75,
        "message": "Web scan from {src_ip}: {count} requests for missing pages in {window} s",
        "explanation": (
            "{src_ip} received {count} 404 responses within {window} seconds (threshold "
            "{threshold}), the last for {path}: directory or file brute forcing."
        ),
        "recommendations": [
            "Rate-limit or block {src_ip} at the reverse proxy or WAF",
            "Check the same address for requests that did succeed",
        ],
        "correlation_key": "web_404_burst:{src_ip}",
        "attack": ["attack.reconnaissance", "attack.t1595.003"],
    },
    {
        "id": "web_scanner_user_agent",
        "name": "Known scanner user agent",
        "description": "A request whose User-Agent names a vulnerability or content scanner.",
        "match": {**_WEB_REQUEST, "fields": {"user_agent": {"regex": SCANNER_USER_AGENTS}}},
        "cooldown": 900,
        "severity": 6,
        "category": "reconnaissance",
        "alert_category": "suspicious",
        "threat_level": "medium",
        "confidence": 0.9,
        "message": "Scanner at work from {src_ip}: {user_agent}",
        "explanation": (
            "{src_ip} sends requests as a known attack or scanning tool ({user_agent}). "
            "Unless it is your own authorised scan, expect exploitation attempts next."
        ),
        "recommendations": [
            "Block {src_ip} unless this is an authorised assessment",
            "Look for injection and traversal attempts from the same address",
        ],
        "correlation_key": "web_scanner_user_agent:{src_ip}",
    },
    {
        "id": "web_path_traversal",
        "name": "Path traversal attempt",
        "description": "A request path that climbs out of the web root or names system files.",
        "match": {
            **_WEB_REQUEST,
            "fields": {
                "url_decoded": {
                    "contains_any": [
                        "../",
                        "..\\",
                        "/etc/passwd",
                        "/etc/shadow",
                        "/proc/self/environ",
                        "win.ini",
                        "boot.ini",
                        "c:\\windows",
                    ]
                }
            },
        },
        "cooldown": 600,
        "severity": 7,
        "category": "web_attack",
        "alert_category": "suspicious",
        "threat_level": "high",
        "confidence": 0.85,
        "message": "Path traversal attempt from {src_ip}: {method} {path} ({status})",
        "explanation": (
            "{src_ip} requested {path}, which tries to read files outside the web root. "
            "Status {status}: a 200 may mean the file was served."
        ),
        "recommendations": [
            "Check whether the response to {path} exposed a file (status {status})",
            "Block {src_ip} and review the application's file-serving code",
        ],
        "correlation_key": "web_path_traversal:{src_ip}",
    },
    {
        "id": "web_sql_injection",
        "name": "SQL injection attempt",
        "description": "SQL syntax in a request's path or query string.",
        "match": {**_WEB_REQUEST, "fields": {"url_decoded": {"regex": SQL_INJECTION}}},
        "cooldown": 600,
        "severity": 8,
        "category": "web_attack",
        "alert_category": "suspicious",
        "threat_level": "high",
        "confidence": 0.8,
        "message": "SQL injection attempt from {src_ip}: {method} {path} ({status})",
        "explanation": (
            "{src_ip} sent SQL syntax in {path}. Status {status}; a 200 with a larger "
            "response than usual may mean the injection worked."
        ),
        "recommendations": [
            "Block {src_ip} and review the targeted endpoint for parameterised queries",
            "Check database logs for errors or unusual queries at this time",
        ],
        "correlation_key": "web_sql_injection:{src_ip}",
    },
    {
        "id": "web_xss_probe",
        "name": "Cross-site scripting probe",
        "description": "Script or event-handler markup in a request.",
        "match": {**_WEB_REQUEST, "fields": {"url_decoded": {"regex": XSS}}},
        "cooldown": 600,
        "severity": 6,
        "category": "web_attack",
        "alert_category": "suspicious",
        "threat_level": "medium",
        "confidence": 0.75,
        "message": "XSS probe from {src_ip}: {method} {path} ({status})",
        "explanation": "{src_ip} sent script markup in {path}, looking for reflected XSS.",
        "recommendations": [
            "Make sure the endpoint encodes its output and sends a Content-Security-Policy",
            "Block {src_ip} if the probing continues",
        ],
        "correlation_key": "web_xss_probe:{src_ip}",
    },
    {
        "id": "web_sensitive_file_probe",
        "name": "Probe for sensitive files",
        "description": (
            "Requests for secrets and admin pages (.env, .git, backups, server-status), or "
            "for WordPress pages on a site that has none (404)."
        ),
        "match": {
            **_WEB_REQUEST,
            "any": [
                {
                    "fields": {
                        "url_path": {
                            "contains_any": [
                                "/.env",
                                "/.git/",
                                "/.svn/",
                                "/.hg/",
                                "/.htpasswd",
                                "/.htaccess",
                                "/.aws/",
                                "/.ssh/",
                                "/id_rsa",
                                "/wp-config.php",
                                "/config.php.bak",
                                "/.ds_store",
                                "/server-status",
                                "/phpinfo.php",
                                "/backup.sql",
                                "/dump.sql",
                                "/.docker",
                                "/actuator/env",
                            ]
                        }
                    }
                },
                {
                    "fields": {
                        "url_path": {"contains_any": ["wp-login.php", "xmlrpc.php", "/wp-admin"]},
                        "status": {"equals": 404},
                    }
                },
            ],
        },
        "cooldown": 600,
        "severity": 6,
        "category": "reconnaissance",
        "alert_category": "suspicious",
        "threat_level": "medium",
        "confidence": 0.8,
        "message": "Sensitive file probe from {src_ip}: {url_path} ({status})",
        "explanation": (
            "{src_ip} asked for {url_path}, a file that holds secrets or reveals the "
            "server's setup. Status {status}: anything but 403/404 needs a look."
        ),
        "recommendations": [
            "Make sure {url_path} is not served (status {status})",
            "Deny dot-files and backups at the web server",
        ],
        "correlation_key": "web_sensitive_file_probe:{src_ip}",
    },
    {
        "id": "dns_random_long_name",
        "name": "Long or random-looking DNS name",
        "description": "Queries that look like DNS tunnelling or generated (DGA) domains.",
        "match": {
            "category": "dns",
            "action": "query",
            "any": [
                {"fields": {"domain_length": {"gte": 100}}},
                {
                    "fields": {
                        "longest_label_length": {"gte": 30},
                        "label_entropy": {"gte": 3.8},
                    }
                },
            ],
        },
        "cooldown": 600,
        "severity": 5,
        "category": "dns",
        "alert_category": "malware",
        "threat_level": "medium",
        "confidence": 0.5,
        "message": "Suspicious DNS name queried by {src_ip}: {domain}",
        "explanation": (
            "{src_ip} asked for {domain} ({domain_length} characters, a label of "
            "{longest_label_length} with entropy {label_entropy}): typical of DNS tunnelling "
            "or malware using generated domains."
        ),
        "recommendations": [
            "Look at the process on {src_ip} making these queries",
            "Consider an RPZ rule for the parent domain",
        ],
        "correlation_key": "dns_random_long_name:{src_ip}",
    },
    {
        "id": "dns_threat_feed_match",
        "name": "DNS query for a listed domain",
        "description": "A client asked for a domain an RPZ rule or threat feed lists.",
        "match": {"category": "dns", "action": ["query", "rpz_rewrite"]},
        "listed": {"field": "domain"},
        "cooldown": 300,
        "severity": 8,
        "category": "dns",
        "alert_category": "malware",
        "threat_level": "high",
        "confidence": 0.9,
        "message": "{src_ip} queried {domain}, listed by {feed}",
        "explanation": (
            "{src_ip} resolved {domain}, which {feed} lists (entry {list_rule}). The host may "
            "be infected or a user followed a malicious link."
        ),
        "recommendations": [
            "Investigate {src_ip} for malware",
            "Make sure an RPZ rule blocks {domain}",
        ],
        # Per client and listing entry: each listed domain a host resolves is its own
        # detection, while the generated names under one listed parent stay one.
        "correlation_key": "dns_threat_feed_match:{src_ip}:{list_rule}",
    },
]
