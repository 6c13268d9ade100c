from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "threatlens.audit"
    label = "audit"
    verbose_name = "Audit log"

    def ready(self):
        from realtime.auditing import socket_audit
        from realtime.views import connections_action
        from threatlens.audit import events  # noqa: F401  (declares user_action)
        from threatlens.audit.receivers import record_connections_action, write_socket_rows

        # realtime imports no project app: its audit rows reach the log through these.
        socket_audit.connect(write_socket_rows, dispatch_uid="audit.write_socket_rows")
        connections_action.connect(
            record_connections_action, dispatch_uid="audit.record_connections_action"
        )
