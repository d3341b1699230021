"""``manage.py hub_admin create-user|create-token|create-worker-credential|set-password|
deactivate-user|list-users`` (also
``hub admin ...``)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from hub.accounts import selectors, services
from hub.common.errors import HubError


class Command(BaseCommand):
    help = "Administer users and API tokens."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        cu = sub.add_parser("create-user", help="create a user (and their namespace)")
        cu.add_argument("--user", required=True)
        cu.add_argument("--password", default=None)
        cu.add_argument("--email", default="")
        cu.add_argument("--admin", action="store_true", help="site administrator")
        cu.add_argument("--exist-ok", action="store_true")
        ct = sub.add_parser("create-token", help="print a new API token for a user")
        ct.add_argument("--user", required=True)
        ct.add_argument("--scope", choices=["read", "write"], default="write")
        ct.add_argument("--name", default="cli")
        cw = sub.add_parser(
            "create-worker-credential",
            help="print a new service credential for workers (HUB_WORKER_TOKEN): it only claims jobs",
        )
        cw.add_argument("--name", default="worker")
        sp = sub.add_parser(
            "set-password", help="set (or generate and print) a user's dashboard password"
        )
        sp.add_argument("--user", required=True)
        sp.add_argument("--password", default=None)
        du = sub.add_parser(
            "deactivate-user", help="revoke every API token of a user and disable their sign-in"
        )
        du.add_argument("--user", required=True)
        du.add_argument("--missing-ok", action="store_true")
        sub.add_parser("list-users")

    def handle(self, *args, action, **opts):
        try:
            if action == "create-user":
                from hub.accounts.models import User

                if opts["exist_ok"] and User.objects.filter(username=opts["user"]).exists():
                    self.stdout.write(f"user {opts['user']} exists")
                    return
                user = services.user_create(
                    username=opts["user"],
                    password=opts["password"],
                    email=opts["email"],
                    is_staff=opts["admin"],
                )
                self.stdout.write(f"created user {user.username}")
            elif action == "create-token":
                user = selectors.user_get(username=opts["user"])
                _, secret = services.token_create(user=user, name=opts["name"], scope=opts["scope"])
                self.stdout.write(secret)
            elif action == "create-worker-credential":
                _, secret = services.worker_service_credential_create(name=opts["name"])
                self.stdout.write(secret)
            elif action == "set-password":
                import secrets

                user = selectors.user_get(username=opts["user"])
                password = opts["password"] or secrets.token_urlsafe(12)
                user.set_password(password)
                user.save(update_fields=["password"])
                self.stdout.write(
                    password if not opts["password"] else f"password set for {user.username}"
                )
            elif action == "deactivate-user":
                from hub.accounts.models import User

                user = User.objects.filter(username=opts["user"]).first()
                if user is None:
                    if not opts["missing_ok"]:
                        raise CommandError(f"no user {opts['user']!r}")
                    self.stdout.write(f"no user {opts['user']}")
                    return
                revoked = services.user_deactivate(user=user)
                self.stdout.write(f"deactivated {user.username}: {revoked} token(s) revoked")
            elif action == "list-users":
                from hub.accounts.models import User

                for u in User.objects.order_by("username"):
                    self.stdout.write(f"{u.username}{' (admin)' if u.is_superuser else ''}")
        except HubError as e:
            raise CommandError(f"{e.code}: {e.message}") from e
