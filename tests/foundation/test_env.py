"""The settings helpers reject bad values loudly and accept good ones."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from threatlens.env import env_bool, env_duration, env_float, env_int, env_list, env_str, env_url


@pytest.fixture
def env(monkeypatch):
    def set_value(value):
        monkeypatch.setenv("TL_TEST_VALUE", value)
        return "TL_TEST_VALUE"

    monkeypatch.delenv("TL_TEST_VALUE", raising=False)
    return set_value


def test_unset_or_blank_values_give_the_default(env):
    assert env_str("TL_TEST_VALUE", "x") == "x"
    env("   ")
    assert env_int("TL_TEST_VALUE", 7) == 7
    assert env_bool("TL_TEST_VALUE", True) is True
    assert env_list("TL_TEST_VALUE", ["a"]) == ["a"]


TRUE_AND_FALSE = [("1", True), ("yes", True), ("ON", True),
                  ("0", False), ("false", False), ("Off", False)]  # fmt: skip


@pytest.mark.parametrize("text,expected", TRUE_AND_FALSE)
def test_env_bool_accepts_the_usual_words(env, text, expected):
    assert env_bool(env(text)) is expected


@pytest.mark.parametrize("text", ["2", "maybe", "truee", "y"])
def test_env_bool_rejects_anything_else(env, text):
    with pytest.raises(ImproperlyConfigured, match="TL_TEST_VALUE"):
        env_bool(env(text))


def test_env_int_accepts_numbers_within_bounds(env):
    assert env_int(env("42"), 1, minimum=1, maximum=100) == 42
    assert env_int(env("-3"), 1) == -3


@pytest.mark.parametrize("text", ["abc", "1.5", "10e3"])
def test_env_int_rejects_non_integers(env, text):
    with pytest.raises(ImproperlyConfigured, match="whole number"):
        env_int(env(text), 1)


def test_env_int_rejects_values_out_of_bounds(env):
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        env_int(env("0"), 5, minimum=1)
    with pytest.raises(ImproperlyConfigured, match="at most 1000"):
        env_int(env("1001"), 5, maximum=1000)


def test_env_float_rejects_nan_and_small_values(env):
    assert env_float(env("0.5"), 1.0, minimum=0) == 0.5
    with pytest.raises(ImproperlyConfigured):
        env_float(env("nan"), 1.0, minimum=0)
    with pytest.raises(ImproperlyConfigured):
        env_float(env("-1"), 1.0, minimum=0)


DURATIONS = [("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("7d", 604800),
             ("0.5", 0.5), (" 3 M ", 180)]  # fmt: skip


@pytest.mark.parametrize("text,seconds", DURATIONS)
def test_env_duration_accepts_each_form(env, text, seconds):
    assert env_duration(env(text), 1) == seconds


@pytest.mark.parametrize("text", ["ten", "5w", "-5", "1h30m", "m"])
def test_env_duration_rejects_other_forms(env, text):
    with pytest.raises(ImproperlyConfigured, match="duration"):
        env_duration(env(text), 1)


def test_env_duration_rejects_values_below_the_minimum(env):
    with pytest.raises(ImproperlyConfigured, match="at least 60"):
        env_duration(env("30s"), 300, minimum=60)


def test_env_list_splits_and_strips(env):
    assert env_list(env("a.example, b.example ,c")) == ["a.example", "b.example", "c"]


@pytest.mark.parametrize("text", ["a,,b", "a,", ",a", "a, ,b"])
def test_env_list_rejects_empty_items(env, text):
    with pytest.raises(ImproperlyConfigured, match="empty items"):
        env_list(env(text))


def test_env_url_accepts_listed_schemes(env):
    url = "postgres://u@db:5432/x"
    assert env_url(env(url), None, schemes=("postgres", "sqlite")) == url


@pytest.mark.parametrize("text", ["mysql://db/x", "localhost:6379", "redis:/x", "://x"])
def test_env_url_rejects_other_schemes(env, text):
    with pytest.raises(ImproperlyConfigured, match="redis://"):
        env_url(env(text), None, schemes=("redis", "rediss"))


def test_the_embedded_hosts_follow_the_serve_host():
    from threatlens.serving import LOOPBACK_HOSTS, embedded_allowed_hosts

    assert embedded_allowed_hosts("") == LOOPBACK_HOSTS
    assert embedded_allowed_hosts("127.0.0.1") == LOOPBACK_HOSTS
    assert embedded_allowed_hosts("soc.example.com")[-1] == "soc.example.com"
    assert embedded_allowed_hosts("2001:db8::5")[-1] == "[2001:db8::5]"
    assert len(embedded_allowed_hosts("0.0.0.0")) > len(LOOPBACK_HOSTS)
