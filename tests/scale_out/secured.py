"""nats-server nodes with credentials, per-role permissions or TLS, for the link security tests.

A node is the same real process as tests/scale_out/nats.py starts, with an `accounts` block made
by `shoppulse.scale_out.permissions` (what `shoppulse log permissions` prints), a token, a TLS
certificate from a CA made in the test with trustme, or an operator whose JWTs the test signs (the
`.creds` files of operator mode).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import secrets
import time
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


# ----------------------------------------------------------------------------- operator mode


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _new_key(prefix: int) -> tuple[nkeys.KeyPair, str]:
    seed = nkeys.encode_seed(secrets.token_bytes(32), prefix)
    return nkeys.from_seed(bytearray(seed)), seed.decode()


def _jwt(signer: nkeys.KeyPair, subject: str, name: str, nats: dict[str, object]) -> str:
    """A NATS JWT (ed25519-nkey) as `nsc` makes one: `subject` vouched for by `signer`."""
    claims: dict[str, object] = {
        "iat": int(time.time()),
        "iss": signer.public_key.decode(),
        "name": name,
        "sub": subject,
        "nats": {**nats, "version": 2},
    }
    digest = hashlib.sha256(json.dumps(claims, sort_keys=True).encode()).digest()
    claims["jti"] = base64.b32encode(digest).decode().rstrip("=")
    head = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{head}.{body}.{_b64(signer.sign(f'{head}.{body}'.encode()))}"


_UNLIMITED = {
    "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
    "wildcards": True, "conn": -1, "leaf": -1,
}  # fmt: skip


@dataclass
class Operator:
    """An operator, its JetStream account and the server configuration that trusts them
    (`resolver: MEMORY`): users get `.creds` files with their role's permissions in the JWT."""

    operator: nkeys.KeyPair
    account: nkeys.KeyPair
    system: nkeys.KeyPair

    @classmethod
    def create(cls) -> Operator:
        return cls(
            _new_key(nkeys.PREFIX_BYTE_OPERATOR)[0],
            _new_key(nkeys.PREFIX_BYTE_ACCOUNT)[0],
            _new_key(nkeys.PREFIX_BYTE_ACCOUNT)[0],
        )

    def server_config(self) -> str:
        operator = self.operator.public_key.decode()
        system = self.system.public_key.decode()
        account = self.account.public_key.decode()
        storage = {"mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1}
        return "\n".join(
            [
                f"operator: {_jwt(self.operator, operator, 'op', {'type': 'operator'})}",
                f"system_account: {system}",
                "resolver: MEMORY",
                "resolver_preload: {",
                f"  {account}: "
                + _jwt(
                    self.operator,
                    account,
                    "SHOPPULSE",
                    {"type": "account", "limits": {**_UNLIMITED, **storage}},
                ),
                f"  {system}: "
                + _jwt(self.operator, system, "SYS", {"type": "account", "limits": _UNLIMITED}),
                "}",
            ]
        )

    def creds(self, path: Path, role: Role, *, signer: nkeys.KeyPair | None = None) -> Path:
        """A `.creds` file for a user of `role` (vouched for by `signer`, the account by
        default)."""
        user, seed = _new_key(nkeys.PREFIX_BYTE_USER)
        claims = {
            "type": "user",
            "pub": {"allow": list(role.publish)},
            "sub": {"allow": list(role.subscribe)},
            "subs": -1,
            "data": -1,
            "payload": -1,
        }
        token = _jwt(signer or self.account, user.public_key.decode(), role.name, claims)
        path.write_text(
            f"-----BEGIN NATS USER JWT-----\n{token}\n------END NATS USER JWT------\n\n"
            f"-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
        )
        return path


def operator_node(workdir: Path, operator: Operator) -> NatsNode:
    return _node(workdir, accounts=operator.server_config())
