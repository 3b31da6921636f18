"""nats-server nodes with credentials, per-role permissions or TLS, for the link security tests.

A node is the same real process as tests/scale_out/nats.py starts, with an `accounts` block made
by `shoppulse.scale_out.permissions` (what `shoppulse log permissions` prints), a token, or a TLS
certificate from a CA made in the test with trustme.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass
from pathlib import Path

import nkeys
import trustme

from shoppulse.scale_out.permissions import (
    Role,
    accounts_config,
    admin_role,
    intake_role,
    store_role,
)
from shoppulse.scale_out.server import ServerTls
from shoppulse.scale_out.settings import STREAM
from tests.scale_out.nats import NatsNode, single_node


@dataclass(frozen=True)
class User:
    name: str
    password: str
    role: Role


@dataclass(frozen=True)
class NkeyUser:
    seed: str
    public: str
    role: Role


def make_nkey_user(role: Role) -> NkeyUser:
    seed = nkeys.encode_seed(secrets.token_bytes(32), nkeys.PREFIX_BYTE_USER)
    pair = nkeys.from_seed(bytearray(seed))
    return NkeyUser(seed.decode(), pair.public_key.decode(), role)


def role_users() -> dict[str, User]:
    """One user per role with a long random password (so redaction finds only the password)."""
    return {
        role.name: User(role.name, secrets.token_urlsafe(24), role)
        for role in (intake_role(STREAM), store_role(STREAM), admin_role())
    }


def permissioned_node(
    workdir: Path, users: dict[str, User], nkey_users: tuple[NkeyUser, ...] = ()
) -> NatsNode:
    """A node whose only account has `users` (by password) and `nkey_users`, each limited to its
    role; no user without credentials."""
    entries = [(f'user: "{u.name}", password: "{u.password}"', u.role) for u in users.values()]
    entries += [(f'nkey: "{u.public}"', u.role) for u in nkey_users]
    return _node(workdir, accounts=accounts_config(entries))


def token_node(workdir: Path, token: str) -> NatsNode:
    return _node(workdir, token=token)


@dataclass(frozen=True)
class Pki:
    """A CA made in the test, the server's certificate and a client certificate."""

    ca_file: Path
    server: ServerTls
    client_cert: Path
    client_key: Path
    stranger_ca: Path  # a CA that signed nothing here


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("intake.shoppulse.test")
    paths = {name: directory / f"{name}.pem" for name in ("ca", "cert", "key", "ccert", "ckey")}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    server.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    server.private_key_pem.write_to_path(str(paths["key"]))
    client.cert_chain_pems[0].write_to_path(str(paths["ccert"]))
    client.private_key_pem.write_to_path(str(paths["ckey"]))
    stranger = directory / "stranger-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger))
    return Pki(
        paths["ca"],
        ServerTls(paths["cert"], paths["key"], ca_file=paths["ca"]),
        paths["ccert"],
        paths["ckey"],
        stranger,
    )


def tls_node(workdir: Path, pki: Pki) -> NatsNode:
    """A node that speaks only TLS and verifies client certificates against the test's CA."""
    return _node(workdir, tls=pki.server)


def _node(workdir: Path, **security: object) -> NatsNode:
    plain = single_node(workdir)
    return NatsNode(workdir, dataclasses.replace(plain.config, **security))  # type: ignore[arg-type]
