"""Each shipped rule firing and not firing, thresholds at their edges, windows expiring,
bursts firing once per window. Every test runs on MemoryState and on CacheState."""

import json
from datetime import timedelta

from incidents.pipeline.parsers import parse_line
from tests.pipeline.helpers import (
    T0,
    Feed,
    access,
    at,
    bind_query,
    ssh_failure,
    ssh_invalid,
    ssh_success,
    syslog,
)

SQLMAP = "sqlmap/1.7.2#stable (https://sqlmap.org)"


# -- SSH brute force per address -----------------------------------------------------------------


def test_nine_failures_from_one_address_do_not_fire(feed):
    for second in range(9):
        assert "ssh_bruteforce_ip" not in feed(ssh_failure(at(second * 10)))


def test_tenth_failure_within_the_window_fires_with_the_count(feed):
    fired = [feed(ssh_failure(at(second * 10))) for second in range(10)]
    assert "ssh_bruteforce_ip" in fired[-1]
    (draft,) = feed.fired("ssh_bruteforce_ip")
    assert draft.details["count"] == 10
    assert draft.correlation_key == "ssh_bruteforce_ip:203.0.113.45"
    assert draft.severity == 8 and draft.src_ip == "203.0.113.45" and draft.user == "root"
    assert draft.timestamp == at(90)


def test_a_burst_fires_once_per_window_not_on_every_line_past_the_threshold(feed):
    for second in range(60):  # 60 failures, one every 4 s: 240 s, inside one window
        feed(ssh_failure(at(second * 4)))
    assert len(feed.fired("ssh_bruteforce_ip")) == 1


def test_a_burst_that_goes_on_fires_again_after_its_window(feed):
    for second in range(0, 700, 5):  # 140 failures over 700 s
        feed(ssh_failure(at(second)))
    times = [draft.timestamp for draft in feed.fired("ssh_bruteforce_ip")]
    assert len(times) == 3
    assert all(
        later - earlier >= timedelta(seconds=300)
        for earlier, later in zip(times, times[1:], strict=False)
    )


def test_failures_spread_just_inside_the_window_fire(feed):
    for index in range(10):
        feed(ssh_failure(at(index * 28)))  # 0..252 s
    assert len(feed.fired("ssh_bruteforce_ip")) == 1


def test_failures_spread_wider_than_the_window_do_not_fire(feed):
    for index in range(10):
        feed(ssh_failure(at(index * 36)))  # 0..324 s: the first has left the window
    assert feed.fired("ssh_bruteforce_ip") == []


def test_old_failures_expire_from_the_window(feed):
    for second in range(9):
        feed(ssh_failure(at(second)))
    assert "ssh_bruteforce_ip" not in feed(ssh_failure(at(400)))
    for second in range(401, 409):
        feed(ssh_failure(at(second)))
    assert "ssh_bruteforce_ip" in feed(ssh_failure(at(409)))


def test_failures_from_different_addresses_do_not_add_up_per_address(feed):
    for index in range(10):
        feed(ssh_failure(at(index), ip=f"192.0.2.{index % 2 + 1}", user=f"user{index}"))
    assert feed.fired("ssh_bruteforce_ip") == []


# -- SSH brute force per account ---------------------------------------------------------------


def test_distributed_attack_on_one_account_fires_per_user_not_per_address(feed):
    for index in range(10):
        feed(ssh_failure(at(index * 30), ip=f"198.51.100.{index + 1}", user="root"))
    (draft,) = feed.fired("ssh_bruteforce_user")
    assert draft.correlation_key == "ssh_bruteforce_user:root" and draft.severity == 7
    assert feed.fired("ssh_bruteforce_ip") == []


# -- invalid users ------------------------------------------------------------------------------


def test_invalid_users_fire_from_the_third_within_five_minutes(feed):
    assert feed(ssh_invalid(at(0), user="admin")) == []
    assert feed(ssh_invalid(at(10), user="oracle")) == []
    assert feed(ssh_invalid(at(20), user="test")) == ["ssh_invalid_users"]
    assert feed(ssh_invalid(at(30), user="git")) == []


def test_two_invalid_users_a_while_apart_do_not_fire(feed):
    feed(ssh_invalid(at(0)))
    feed(ssh_invalid(at(200)))
    feed(ssh_invalid(at(600)))
    assert feed.fired("ssh_invalid_users") == []


# -- logins from new addresses and after a brute force ---------------------------------------------


def test_first_login_of_a_user_sets_the_baseline_quietly(feed):
    assert feed(ssh_success(at(0), user="alice", ip="10.20.1.15")) == []
    assert feed(ssh_success(at(60), user="alice", ip="10.20.1.15")) == []


def test_login_from_a_new_address_fires_once(feed):
    feed(ssh_success(at(0), user="alice", ip="10.20.1.15"))
    assert feed(ssh_success(at(60), user="alice", ip="192.0.2.61")) == ["login_new_address"]
    assert feed(ssh_success(at(120), user="alice", ip="192.0.2.61")) == []
    (draft,) = feed.fired("login_new_address")
    assert "192.0.2.61" in draft.message and draft.correlation_key == "login_new_address:alice"


def test_addresses_are_remembered_per_user(feed):
    feed(ssh_success(at(0), user="alice", ip="10.20.1.15"))
    assert feed(ssh_success(at(10), user="bob", ip="10.20.1.15")) == []  # bob's baseline


def test_success_after_a_brute_force_from_that_address_is_a_likely_compromise(feed):
    feed(ssh_success(at(0), user="backup", ip="10.20.5.20"))
    for index in range(12):
        feed(ssh_failure(at(100 + index * 5), user="backup"))
    fired = feed(ssh_success(at(400), user="backup", ip="203.0.113.45"))
    assert set(fired) == {"login_new_address", "login_after_bruteforce"}
    (draft,) = feed.fired("login_after_bruteforce")
    assert draft.severity == 9 and draft.analysis["threat_level"] == "critical"
    assert draft.correlation_key == "login_after_bruteforce:203.0.113.45"
    assert draft.details["preceded_by"]["rule_id"] == "ssh_bruteforce_ip"


def test_success_without_a_preceding_burst_is_not_a_compromise(feed):
    for index in range(5):
        feed(ssh_failure(at(index)))
    assert "login_after_bruteforce" not in feed(ssh_success(at(60), user="root", ip="203.0.113.45"))


def test_success_long_after_the_burst_is_not_linked_to_it(feed):
    for index in range(10):
        feed(ssh_failure(at(index)))
    late = feed(ssh_success(at(3 * 3600), user="root", ip="203.0.113.45"))
    assert "login_after_bruteforce" not in late


def test_success_for_an_account_under_distributed_attack_is_linked_by_user(feed):
    for index in range(10):
        feed(ssh_failure(at(index * 10), ip=f"198.51.100.{index + 1}", user="carol"))
    fired = feed(ssh_success(at(200), user="carol", ip="198.51.100.99"))
    assert "login_after_bruteforce" in fired
    assert feed.fired("login_after_bruteforce")[0].details["preceded_by"]["rule_id"] == (
        "ssh_bruteforce_user"
    )


# -- sudo and su ----------------------------------------------------------------------------------


def sudo(moment, body, user="bob"):
    return syslog(moment, "sudo", f"{user:>8} : {body}", pid=None)


def test_sudo_password_failure_fires_once_per_cooldown(feed):
    failure = (
        "3 incorrect password attempts ; TTY=pts/1 ; PWD=/home/bob ; USER=root ; COMMAND=/bin/bash"
    )
    assert feed(sudo(at(0), failure)) == ["sudo_auth_failure"]
    assert feed(sudo(at(60), failure)) == []
    assert feed(sudo(at(700), failure)) == ["sudo_auth_failure"]
    draft = feed.fired("sudo_auth_failure")[0]
    assert draft.category == "authorization" and "bob" in draft.message


def test_successful_sudo_is_not_an_event(feed):
    assert feed(sudo(at(0), "TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/usr/bin/apt update")) == []


def test_sudo_by_a_user_not_in_sudoers_fires(feed):
    line = sudo(
        at(0), "user NOT in sudoers ; TTY=pts/3 ; PWD=/ ; USER=root ; COMMAND=/bin/bash", "eve"
    )
    assert feed(line) == ["sudo_not_permitted"]
    assert feed.fired("sudo_not_permitted")[0].correlation_key == "sudo_not_permitted:eve"


def test_su_failure_fires_and_success_does_not(feed):
    assert feed(syslog(at(0), "su", "(to root) carol on pts/2")) == []
    assert feed(syslog(at(5), "su", "FAILED SU (to root) bob on pts/1")) == ["su_failure"]


# -- web ------------------------------------------------------------------------------------------


def test_nineteen_404s_in_a_minute_do_not_fire_and_twenty_do(feed):
    for index in range(19):
        assert "web_404_burst" not in feed(access(at(index * 3), path=f"/p{index}", status=404))
    assert "web_404_burst" in feed(access(at(58), path="/p19", status=404))
    assert feed.fired("web_404_burst")[0].category == "reconnaissance"


def test_many_successful_requests_are_not_a_scan(feed):
    for index in range(40):
        feed(access(at(index), path=f"/page/{index}", status=200))
    assert feed.drafts == []


def test_404s_spread_over_more_than_a_minute_do_not_fire(feed):
    for index in range(20):
        feed(access(at(index * 4), path=f"/p{index}", status=404))  # 0..76 s
    assert feed.fired("web_404_burst") == []


def test_scanner_user_agents_fire_once_per_address_per_cooldown(feed):
    assert feed(access(at(0), ua=SQLMAP)) == ["web_scanner_user_agent"]
    assert feed(access(at(1), ua=SQLMAP)) == []
    assert feed(access(at(2), ua="Mozilla/5.0 zgrab/0.x", ip="192.0.2.50")) == [
        "web_scanner_user_agent"
    ]
    for agent in ("Nuclei - Open-source project (github.com/projectdiscovery/nuclei)",
                  "Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:000003)", "gobuster/3.6",
                  "WPScan v3.8.25 (https://wpscan.com/wordpress-security-scanner)",
                  "masscan/1.3 (https://github.com/robertdavidgraham/masscan)"):  # fmt: skip
        assert Feed(feed.analyzer.state)(access(at(3), ua=agent, ip=f"192.0.2.{len(agent)}")) == [
            "web_scanner_user_agent"
        ]


def test_ordinary_browsers_and_bots_are_not_scanners(feed):
    for agent in ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/122.0 Safari/537.36",
                  "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
                  "curl/8.5.0", "Prometheus/2.50.1"):  # fmt: skip
        assert feed(access(at(0), ua=agent)) == []


def test_path_traversal_in_its_encodings(feed):
    paths = [
        "/static/../../../../etc/passwd",
        "/download?file=..%2F..%2Fetc%2Fpasswd",
        "/download?file=%2e%2e%2f%2e%2e%2fboot.ini",
        "/download?file=%252e%252e%252fetc%252fshadow",
        "/images/..%5c..%5cwindows%5cwin.ini",
    ]
    for index, path in enumerate(paths):
        fresh = Feed(feed.analyzer.state)
        assert "web_path_traversal" in fresh(access(at(index), path=path, ip=f"192.0.2.{index}"))


def test_ordinary_paths_are_not_traversal(feed):
    for path in ("/docs/v1.2/index.html", "/a..b/c", "/releases/1.0..2.0"):
        assert feed(access(at(0), path=path)) == []


def test_sql_injection_strings(feed):
    probes = [
        "/products?id=1%27%20OR%20%271%27%3D%271",
        "/products?id=1%20UNION%20ALL%20SELECT%20NULL,NULL--",
        "/products?id=1+union+select+password+from+users",
        "/products?id=1%20AND%20SLEEP(5)",
        "/p?id=1%20and%20(select%201%20from%20information_schema.tables)",
        "/login?u=admin%27--",
        "/p?id=-1%20or%201=1",
    ]
    for index, path in enumerate(probes):
        fresh = Feed(feed.analyzer.state)
        assert "web_sql_injection" in fresh(access(at(index), path=path, ip=f"192.0.2.{index}")), (
            path
        )


def test_ordinary_queries_are_not_sql_injection(feed):
    for path in ("/search?q=union+station", "/products?id=12&sort=price", "/blog/select-a-plan",
                 "/search?q=sleep+well", "/api/v1/events?page=2"):  # fmt: skip
        assert feed(access(at(0), path=path)) == [], path


def test_xss_probe(feed):
    assert feed(access(at(0), path="/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E")) == [
        "web_xss_probe"
    ]
    assert Feed(feed.analyzer.state)(access(at(0), path="/search?q=scripts", ip="192.0.2.3")) == []


def test_sensitive_file_probes(feed):
    for index, (path, status) in enumerate(
        [
            ("/.env", 404),
            ("/.git/config", 404),
            ("/wp-login.php", 404),
            ("/backup.sql", 404),
            ("/.aws/credentials", 403),
        ]  # fmt: skip
    ):
        fresh = Feed(feed.analyzer.state)
        fired = fresh(access(at(index), path=path, status=status, ip=f"192.0.2.{index}"))
        assert "web_sensitive_file_probe" in fired, path


def test_wordpress_pages_on_a_wordpress_site_are_not_probes(feed):
    assert feed(access(at(0), path="/wp-login.php", status=200)) == []
    assert feed(access(at(1), path="/environment", status=404)) == []


# -- DNS -----------------------------------------------------------------------------------------


def test_random_looking_long_names_fire_and_ordinary_names_do_not(feed):
    assert feed(bind_query(at(0), name="www.google.com")) == []
    assert feed(bind_query(at(1), name="d2x8cbm4kk3lq.cloudfront.net")) == []
    random_name = "q7x2kz9pl4mv8rt3ys6wb1nc5hdj0fga.nightowl-relay.example"
    assert feed(bind_query(at(2), name=random_name, qtype="TXT")) == ["dns_random_long_name"]


def test_listed_domain_fires_only_with_a_lookup_that_lists_it(state):
    listed = {
        "dl.fastupdate-cdn.example": {"feed": "demo-feed", "rule": "dl.fastupdate-cdn.example"}
    }
    feed = Feed(state, domain_lookup=listed.get)
    assert feed(bind_query(at(0), name="github.com")) == []
    assert feed(bind_query(at(1), name="dl.fastupdate-cdn.example", ip="10.20.2.57")) == [
        "dns_threat_feed_match"
    ]
    draft = feed.fired("dns_threat_feed_match")[0]
    assert draft.details["listing"]["feed"] == "demo-feed"
    assert "demo-feed" in draft.message and draft.alert_category == "malware"
    without_lookup = Feed(state)
    assert without_lookup(bind_query(at(2), name="dl.fastupdate-cdn.example", ip="10.9.9.9")) == []


# -- application logins (JSON) and the injected clock -------------------------------------------


def portal_failure(ip="192.0.2.200", user="admin", **extra):
    return json.dumps(
        {"service": "portal", "event": "login_failed", "user": user, "client_ip": ip, **extra}
    )


def test_lines_without_time_use_the_injected_clock_for_windows(state):
    now = [T0]
    feed = Feed(state, clock=lambda: now[0])
    for index in range(9):
        feed(portal_failure(user=f"u{index}"))
        now[0] += timedelta(seconds=10)
    now[0] += timedelta(seconds=400)  # the nine have left the 300 s window
    assert feed(portal_failure()) == []
    for index in range(9):
        now[0] += timedelta(seconds=1)
        fired = feed(portal_failure(user=f"v{index}"))
    assert fired == ["login_bruteforce_ip"]
    draft = feed.fired("login_bruteforce_ip")[0]
    assert draft.timestamp == now[0] and draft.source == "portal"


# -- drafts --------------------------------------------------------------------------------------


def test_draft_carries_the_security_event_fields(feed):
    for index in range(10):
        feed(ssh_failure(at(index)), source="auth.log")
    draft = feed.fired("ssh_bruteforce_ip")[0]
    data = draft.to_event_data()
    assert set(data) == {
        "event_id", "severity", "category", "source", "message", "timestamp", "analysis",
        "recommendations",
    }  # fmt: skip
    assert data["event_id"] is None and data["source"] == "auth.log"
    # And the rule's ATT&CK techniques and tactics, as a Sigma rule's events carry them.
    assert set(data["analysis"]) == {"threat_level", "confidence", "explanation", "attack"}
    assert data["analysis"]["attack"]["techniques"] == ["T1110.001"]
    assert 0 <= data["analysis"]["confidence"] <= 1
    assert all("{" not in item for item in data["recommendations"])
    assert "Block 203.0.113.45 at the firewall or with fail2ban" in data["recommendations"]
    assert draft.raw_line.endswith("port 51234 ssh2")


def test_source_defaults_to_the_service_that_wrote_the_line(feed):
    for index in range(10):
        feed(ssh_failure(at(index)))
    assert feed.fired("ssh_bruteforce_ip")[0].source == "sshd"


def test_log_text_in_messages_is_cleaned_of_control_characters(feed):
    feed(ssh_success(at(0), user="alice", ip="10.20.1.15"))
    feed(ssh_success(at(1), user="alice\x1b[31m", ip="10.20.1.15"))
    feed(ssh_success(at(2), user="alice\x1b[31m", ip="192.0.2.1"))
    (draft,) = feed.fired("login_new_address")
    assert "\x1b" not in draft.message and "alice?[31m" in draft.message


def test_malformed_and_unknown_lines_never_fire(feed):
    for _ in range(30):
        assert feed("<999>garbage sshd: Failed password for root from 1.2.3.4 port 1 ssh2") == []
        assert feed("Failed password for root from 1.2.3.4 port 1 ssh2") == []


def test_analyzer_can_give_drafts_an_id_now(state):
    from incidents.pipeline.analyzer import Analyzer, uuid_event_id
    from incidents.pipeline.rules import load_rules

    analyzer = Analyzer(load_rules(), state, new_event_id=uuid_event_id)
    drafts = analyzer.analyze(parse_line(syslog(at(0), "su", "FAILED su for root by bob")))
    assert len(drafts[0].event_id) == 36
