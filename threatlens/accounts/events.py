"""Event types of the user family: each goes to the user it concerns (and admins)."""

from realtime import catalogue
from realtime.catalogue import SEE_ALL_USER_EVENTS, Audience, Family

for name, priority, description in [
    ("user_login", 3, "The user logged in (REST token or session)."),
    ("user_logout", 3, "The user logged out."),
    ("session_expired", 8, "The user's token expired on a live socket."),
    ("permission_changed", 8, "The user's roles or permissions changed."),
]:
    catalogue.declare(
        name,
        family=Family.USER,
        priority=priority,
        permission=None,
        audience=Audience.USER,
        see_all_permission=SEE_ALL_USER_EVENTS,
        description=description,
    )
