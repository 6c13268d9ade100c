"""What the foundation tests install: the audit context middleware and the throttled
login backend."""

FOUNDATION_MIDDLEWARE = "threatlens.audit.context.AuditContextMiddleware"
THROTTLE_BACKEND = "threatlens.accounts.backends.ThrottledModelBackend"
