"""``gateway user|network|member|token|revoke``: the admin commands, their flags and output.

Input is checked by the same schema as the REST API; every change goes through the same use
case. Passwords come from standard input (first line) or a prompt, never from an argument, which
would leave them in shell history and process listings.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from gateway.admin.context import Admin, admin_context
from gateway.api.users import EMAIL, NAME, PASSWORD, user_json
from gateway.auth.minting import MintRequest
from gateway.auth.permissions import ROLES, parse_actions
from gateway.auth.revoker import Receipt
from gateway.config import OPTIONS, Settings, parse_duration
from gateway.errors import NotFound, Unprocessable
from gateway.types import Principal, RevocationReason, Scope, User

REASON = RevocationReason.BY_ADMINISTRATOR

Command = Callable[[Admin, argparse.Namespace], Awaitable[None]]


def add_commands(commands: Any) -> None:
    """Register the admin commands on the top-level subparsers."""

    def leaf(parent: Any, name: str, run: Command, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = parent.add_parser(
            name,
            help=help_text,
            description=help_text
            + ". Configuration comes from the same GATEWAY_* variables (or flags) as serve.",
        )
        for option in OPTIONS:  # accepted like serve's, listed only by serve --help
            parser.add_argument(
                option.flag,
                dest=option.field,
                nargs="?" if option.switch else None,
                const="true" if option.switch else None,
                help=argparse.SUPPRESS,
            )
        parser.set_defaults(admin=run)
        return parser

    user = commands.add_parser("user", help="add, list, disable users; set a password")
    users = user.add_subparsers(dest="user_command", required=True)
    add = leaf(users, "add", user_add, "create a user; the password is read from stdin")
    add.add_argument("email")
    add.add_argument("--role", choices=sorted(ROLES), default="client")
    add.add_argument("--name", help="display name (default: the part before @)")
    leaf(users, "list", user_list, "list users (JSON, one per line)")
    disable = leaf(users, "disable", user_disable, "disable a user; closes their live sessions")
    disable.add_argument("user", metavar="EMAIL|ID")
    passwd = leaf(users, "passwd", user_passwd, "set a user's password (read from stdin)")
    passwd.add_argument("user", metavar="EMAIL|ID")

    network = commands.add_parser("network", help="add networks")
    networks = network.add_subparsers(dest="network_command", required=True)
    network_add = leaf(networks, "add", network_add_command, "create a network")
    network_add.add_argument("name")
    network_add.add_argument("--description")

    member = commands.add_parser("member", help="add network memberships")
    members = member.add_subparsers(dest="member_command", required=True)
    member_add = leaf(members, "add", member_add_command, "make a user a member of a network")
    member_add.add_argument("user", metavar="USER", help="email or id")
    member_add.add_argument("network", metavar="NETWORK", help="name or id")

    token = commands.add_parser("token", help="mint tokens")
    tokens = token.add_subparsers(dest="token_command", required=True)
    mint = leaf(tokens, "mint", token_mint, "mint a token pair for a user (printed as JSON)")
    mint.add_argument("--user", required=True, metavar="EMAIL|ID")
    mint.add_argument("--actions", nargs="+", metavar="ACTION", help="names or ids")
    mint.add_argument("--network-ids", nargs="+", metavar="ID", help="ids, or *")
    mint.add_argument("--device-ids", nargs="+", metavar="ID", help="ids, or *")
    mint.add_argument("--expires-in", metavar="DURATION", help="access token lifetime (e.g. 30d)")

    revoke = leaf(commands, "revoke", revoke_command, "revoke tokens; closes live sessions")
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--user", metavar="EMAIL|ID", help="every token of the user")
    which.add_argument("--jti", help="one token")
    which.add_argument("--device", metavar="DEVICE_ID", help="every token scoped to the device")


async def run(settings: Settings, args: argparse.Namespace) -> None:
    async with admin_context(settings) as admin:
        await args.admin(admin, args)


# -- helpers ---------------------------------------------------------------------------------


def _emit(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value).decode() + "\n")
    sys.stdout.flush()


def _check(schema: Any, value: Any, field: str) -> Any:
    return schema.check(value, field)


def read_password(confirm: bool = True) -> str:
    """The first line of stdin when it is not a terminal; otherwise a prompt (twice)."""
    if not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if confirm and getpass.getpass("Again: ") != password:
            raise Unprocessable("the two passwords differ")
    _check(PASSWORD, password, "password")
    return password


async def find_user(admin: Admin, who: str) -> User:
    text = who.strip()
    user = await (
        admin.users.get(int(text))
        if text.isdigit() and len(text) < 19
        else admin.users.by_email(text)
    )
    if user is None:
        raise NotFound(f"no user {who!r}")
    return user


def _receipt(admin: Admin, receipt: Receipt | None) -> dict[str, Any]:
    """Only the serving instances (this command's own bus listener closes nothing)."""
    instances = {
        name: count
        for name, count in (receipt.instances if receipt else {}).items()
        if name != admin.settings.instance_id
    }
    return Receipt(instances).to_json()


def _ids(values: list[str] | None, kind: str, number: bool) -> frozenset[Any] | None:
    if values is None:
        return None
    parts = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if parts == ["*"]:
        return None
    if "*" in parts:
        raise Unprocessable(f'{kind}: "*" stands alone, meaning all')
    if number and not all(part.isdigit() and len(part) < 19 for part in parts):
        raise Unprocessable(f"{kind}: ids are positive integers")
    return frozenset(int(part) for part in parts) if number else frozenset(parts)


# -- commands --------------------------------------------------------------------------------


async def user_add(admin: Admin, args: argparse.Namespace) -> None:
    email = _check(EMAIL, args.email, "email")
    name = _check(NAME, args.name or email.split("@")[0], "name")
    user = await admin.accounts.create(
        name=name, email=email, password=read_password(), role=args.role
    )
    _emit(user_json(user))


async def user_list(admin: Admin, args: argparse.Namespace) -> None:
    after = 0
    while page := await admin.users.page(500, after):
        for user in page:
            _emit(user_json(user))
        after = page[-1].id


async def user_disable(admin: Admin, args: argparse.Namespace) -> None:
    user = await find_user(admin, args.user)
    after, receipt = await admin.accounts.update(user.id, status="disabled")
    _emit({"user": user_json(after), "revocation": _receipt(admin, receipt)})


async def user_passwd(admin: Admin, args: argparse.Namespace) -> None:
    user = await find_user(admin, args.user)
    after, receipt = await admin.accounts.update(user.id, password=read_password())
    _emit({"user": user_json(after), "revocation": _receipt(admin, receipt)})


async def network_add_command(admin: Admin, args: argparse.Namespace) -> None:
    name = _check(NAME, args.name, "name")
    network = await admin.networks.create_network(name, args.description)
    _emit(network.to_json())


async def member_add_command(admin: Admin, args: argparse.Namespace) -> None:
    user = await find_user(admin, args.user)
    wanted = args.network.strip()
    networks = await admin.devices.networks()
    matches = [n for n in networks if str(n.id) == wanted or n.name == wanted]
    if not matches:
        raise NotFound(f"no network {args.network!r}")
    if len(matches) > 1:
        raise Unprocessable(f"several networks are named {wanted!r}; give its id")
    await admin.networks.set_membership(user.id, matches[0].id, True)
    _emit(user_json(await find_user(admin, str(user.id))))


async def token_mint(admin: Admin, args: argparse.Namespace) -> None:
    user = await find_user(admin, args.user)
    try:
        expires_in = None if args.expires_in is None else parse_duration(args.expires_in)
    except ValueError as exc:
        raise Unprocessable(f"--expires-in: {exc}") from None
    if expires_in is not None and expires_in <= 0:
        raise Unprocessable("--expires-in: must be greater than zero")
    actions = None
    if args.actions is not None:
        names = [part for value in args.actions for part in value.split(",") if part]
        actions = parse_actions(int(name) if name.isdigit() else name for name in names)
    request = MintRequest(
        user_id=user.id,
        actions=actions,
        network_ids=_ids(args.network_ids, "--network-ids", number=True),
        device_ids=_ids(args.device_ids, "--device-ids", number=False),
        expires_in=expires_in,
    )
    # As POST /v1/auth/token/create called by an administrator for the user: never beyond the
    # user's rights, recorded as a family of its own.
    acting = await _acting_admin(admin)
    now = time.time()
    caller = Principal(
        user_id=acting.id,
        role=acting.role,
        actions=ROLES[acting.role],
        scope=Scope(),
        jti=f"admin-cli-{uuid.uuid4()}",
        sid=str(uuid.uuid4()),
        issued_at=now,
        expires_at=now + 60,
    )
    pair = await admin.auth.mint(caller, request)
    _emit(pair.to_json())


async def _acting_admin(admin: Admin) -> User:
    """The administrator a command mints as: GATEWAY_ADMIN_EMAIL's, else the oldest active one."""
    if admin.settings.admin_email:
        user = await admin.users.by_email(admin.settings.admin_email)
        if user is not None and user.active and user.role == "admin":
            return user
    after = 0
    while page := await admin.users.page(500, after):
        for user in page:
            if user.active and user.role == "admin":
                return user
        after = page[-1].id
    raise NotFound("no active administrator to mint as: add one with gateway user add --role admin")


async def revoke_command(admin: Admin, args: argparse.Namespace) -> None:
    auth = admin.auth
    reason = REASON
    if args.user is not None:
        user = await find_user(admin, args.user)
        receipt = await auth.revoke_user(user.id, reason)
    elif args.jti is not None:
        receipt = await auth.revoke_token(_check(NAME, args.jti, "jti"), reason)
    else:
        receipt = await auth.revoke_device(_check(NAME, args.device, "device"), reason)
    _emit(_receipt(admin, receipt))
