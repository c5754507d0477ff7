"""``pipeline users show|apply``: one least-privilege broker user per role.

    pipeline users show                  # the users and permission patterns, no broker needed
    PIPELINE_USER_PASSWORDS='{"publisher": "...", "billing": "...", ...}' pipeline users apply

``apply`` needs a management user with the administrator tag in
``PIPELINE_MANAGEMENT_URL``; the vhost is the one in ``PIPELINE_AMQP_URL``.
Passwords come from ``PIPELINE_USER_PASSWORDS`` or ``--passwords-file`` (a
JSON object, role -> password) and are never printed. See docs/reliability.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
from pathlib import Path

from pydantic import SecretStr

from pipeline.app import load_app
from pipeline.commands.output import print_json
from pipeline.consume.plan import plan_worker
from pipeline.errors import ConfigurationError
from pipeline.ops.access import AccessAdmin, Role, roles_for
from pipeline.settings import PipelineSettings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("users", help="least-privilege broker users, one per role")
    actions = parser.add_subparsers(dest="action", required=True)
    show = actions.add_parser("show", help="print each role's user and permissions")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    apply = actions.add_parser("apply", help="create or update the users and permissions")
    apply.add_argument("--passwords-file", type=Path,
                       help="JSON object of role -> password (instead of PIPELINE_USER_PASSWORDS)")
    apply.add_argument("--ca-file", type=Path,
                       help="CA certificate (PEM) that signed an https:// management API's "
                            "certificate; passwords are never sent over plain http but to "
                            "127.0.0.1")
    apply.add_argument("--allow-plain-http", action="store_true",
                       help="send passwords over http to a non-loopback API anyway: only on a "
                            "private network such as docker compose's")
    for action in (show, apply):
        action.add_argument("--prefix", default="pipeline", help="user names are PREFIX-ROLE")
    show.set_defaults(run=run_show)
    apply.set_defaults(run=run_apply)


def roles(settings: PipelineSettings, prefix: str) -> list[Role]:
    app = load_app(settings.app)
    workers = {name: plan_worker(app, name, settings).queue for name in app.worker_names}
    topology = app.topology(settings.ladder, settings.delivery_limit, settings.ledger,
                            settings.queue_replicas)
    return roles_for(topology, workers, prefix, scheduler=bool(app.schedules))


def run_show(args: argparse.Namespace, settings: PipelineSettings) -> int:
    found = roles(settings, args.prefix)
    if args.json:
        print_json([{"role": r.role, "user": r.user, "tags": r.tags,
                     "configure": r.permission.configure, "write": r.permission.write,
                     "read": r.permission.read, "purpose": r.purpose} for r in found])
        return 0
    _print(found, settings)
    return 0


def run_apply(args: argparse.Namespace, settings: PipelineSettings) -> int:
    found = roles(settings, args.prefix)
    passwords = _passwords(args.passwords_file) if args.passwords_file else settings.user_passwords

    async def apply() -> None:
        admin = AccessAdmin(settings, ca_file=_ca_file(args.ca_file),
                            allow_plain_http=args.allow_plain_http)
        try:
            await admin.apply(found, passwords)
        finally:
            await admin.close()

    asyncio.run(apply())
    _print(found, settings)
    print(f"{len(found)} users applied on vhost {settings.vhost!r}; passwords not shown")
    return 0


def _ca_file(path: Path | None) -> Path | None:
    if path is None:
        return None
    try:
        ssl.create_default_context(cafile=str(path))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"--ca-file {path}: not a readable PEM certificate ({exc})"
                                 ) from None
    return path


def _passwords(path: Path) -> dict[str, SecretStr]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the passwords file {path}: "
                                 f"{type(exc).__name__}") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ConfigurationError(f"{path} must hold a JSON object of role -> password strings")
    return {str(role): SecretStr(password) for role, password in data.items()}


def _print(found: list[Role], settings: PipelineSettings) -> None:
    # One block per user: the patterns are long and must stay copyable.
    print(f"users on vhost {settings.vhost!r}:")
    for role in found:
        print(f"\n{role.user}  ({role.purpose}; tags: {role.tags or 'none'})")
        for name in ("configure", "write", "read"):
            print(f"  {name:<9}  {getattr(role.permission, name)}")
