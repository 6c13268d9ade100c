"""The hub talks to the sockets it serves through `realtime.members.HubMember` only."""

import ast
from pathlib import Path
from types import SimpleNamespace

import realtime
from realtime.consumers.authentication import Credentials
from realtime.consumers.membership import SocketMembership
from realtime.members import HubMember

REALTIME = Path(realtime.__file__).parent
MEMBERS = set(HubMember.__annotations__) | {
    name for name, value in vars(HubMember).items() if callable(value) and not name.startswith("_")
}


def owner_uses(path):
    """The attributes read, set or called on a connection's owner in a module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        value = node.value
        if (isinstance(value, ast.Name) and value.id == "owner") or (
            isinstance(value, ast.Attribute) and value.attr == "owner"
        ):
            yield node.attr


def test_the_hub_uses_nothing_of_an_owner_outside_the_interface():
    uses = {
        f"{path.relative_to(REALTIME.parent)}: {name}"
        for path in sorted(REALTIME.rglob("*.py"))
        if "consumers" not in path.parts
        for name in owner_uses(path)
    }
    assert uses and {use for use in uses if use.rsplit(": ", 1)[1] not in MEMBERS} == set()


def test_a_sockets_membership_is_a_hub_member():
    consumer = SimpleNamespace(closing=False)
    member = SocketMembership(consumer, Credentials(principal=None, expires_at=None, method="x"))
    assert isinstance(member, HubMember)
    assert set(dir(member)) >= MEMBERS


def test_a_session_membership_carries_the_sessions_digest():
    from realtime.control import digest

    credentials = Credentials(None, None, "session", session_key="abc")
    member = SocketMembership(SimpleNamespace(closing=True), credentials)
    assert (member.session_key, member.session_hash, member.closing) == ("abc", digest("abc"), True)
