"""The personas' password: `make_user` (tests/conftest.py) gives it to every user it makes,
and tests that log in through a form or `/api/auth/token/` type it."""

PASSWORD = "correct-horse-battery-staple"
