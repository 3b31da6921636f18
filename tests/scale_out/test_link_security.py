"""Authenticated, encrypted, least-privilege links to the log, against real nats-server processes:
per-role permissions (accounts written by `shoppulse.scale_out.permissions`), passwords, nkeys,
tokens, TLS with a CA made in the test, and secrets kept out of every message."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import nats.aio.msg
import nats.errors
import nkeys
import pytest
from fastapi.testclient import TestClient
from nats.js.api import ConsumerConfig
from pydantic import SecretStr
from typer.testing import CliRunner

from shoppulse.cli import app
from shoppulse.discovery import discovery_path
from shoppulse.scale_out.connection import LogClient, LogUnavailable, connect
from shoppulse.scale_out.intake_app import create_intake_app
from shoppulse.scale_out.permissions import Role, admin_role, intake_role, store_role
from shoppulse.scale_out.settings import STREAM, LogSettings
from shoppulse.scale_out.store_app import create_store_app
from shoppulse.scale_out.stream import StreamSpec, ensure_stream, open_checked
from shoppulse.settings import Settings
from tests.conftest import SECRET, FrozenClock, make_source
from tests.helpers.waiting import wait_for
from tests.scale_out.nats import NatsNode, single_node
from tests.scale_out.roles import sources_file
from tests.scale_out.secured import (
    Operator,
    User,
    make_nkey_user,
    make_pki,
    operator_node,
    permissioned_node,
    role_users,
    tls_node,
    token_node,
)
from tests.scale_out.signed import signed_settings
from tests.scale_out.traffic import START, post, simulated

pytestmark = pytest.mark.timeout(90)

runner = CliRunner()

SOURCES = {"acme": make_source("acme", "shopify", SECRET)}


def as_user(url: str, user: User) -> LogSettings:
    return LogSettings(url=url, user=user.name, password=SecretStr(user.password))


async def link(settings: LogSettings, role: Role) -> LogClient:
    return await connect(settings, name=f"test-{role.name}", inbox=role.inbox)


def a_day_later() -> FrozenClock:
    """A clock for which the simulated traffic lies in the past."""
    return FrozenClock(START + timedelta(days=1))


def refused_store(tmp_path: Path, url: str, user: User) -> str:
    """`shoppulse store` as `user`, which must stop at start before opening its database; what
    it said."""
    config = sources_file(tmp_path, {"acme": ("shopify", SECRET)})
    database = tmp_path / "s.duckdb"
    result = runner.invoke(
        app,
        ["store", "--config", str(config), "--db", str(database), "--log", url],
        env={"SHOPPULSE_LOG_USER": user.name, "SHOPPULSE_LOG_PASSWORD": user.password},
    )
    assert result.exit_code == 2, result.output
    assert not database.exists()
    return flat(result.output)


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def users() -> dict[str, User]:
    return role_users()


@pytest.fixture
def locked_node(tmp_path: Path, users: dict[str, User]) -> Iterator[NatsNode]:
    """A node with one user per role and nobody else; the stream made by `log init` as admin."""
    node = permissioned_node(tmp_path / "nats", users).start()
    try:
        admin = users["admin"]
        password = tmp_path / "admin-password"
        password.write_text(admin.password + "\n")
        result = runner.invoke(
            app,
            ["log", "init", "--log", node.url],
            env={"SHOPPULSE_LOG_USER": "admin", "SHOPPULSE_LOG_PASSWORD_FILE": str(password)},
        )
        assert result.exit_code == 0, result.output
        assert "stream SHOPPULSE created" in flat(result.output)
        yield node
    finally:
        node.stop()


def test_intake_publishes_but_cannot_read_or_manage_the_log(
    locked_node: NatsNode, users: dict[str, User]
) -> None:
    intake = intake_role(STREAM)

    async def run() -> None:
        nc, js, _ = await open_checked(
            as_user(locked_node.url, users["intake"]),
            name="test-intake",
            max_body_bytes=1024 * 1024,
            inbox=intake.inbox,
        )
        try:
            ack = await js.publish("shoppulse.deliveries.acme", b"an order", timeout=5)
            assert ack.seq == 1  # publishing and its acknowledgement work

            seen: list[bytes] = []

            async def collect(msg: nats.aio.msg.Msg) -> None:
                seen.append(msg.data)

            await nc.subscribe("shoppulse.deliveries.>", cb=collect)
            await nc.subscribe("_INBOX.>", cb=collect)  # where other clients' answers would go
            await js.publish("shoppulse.deliveries.acme", b"another order", timeout=5)
            with pytest.raises(nats.errors.TimeoutError):
                await js.get_msg(STREAM, 1)
            with pytest.raises(nats.errors.TimeoutError):
                await js.add_consumer(STREAM, ConsumerConfig(durable_name="snoop"))
            with pytest.raises(nats.errors.TimeoutError):
                await js.delete_stream(STREAM)
            await nc.flush(timeout=2)
            await asyncio.sleep(0.3)
            assert seen == []
            assert nc.denied is not None and "permissions violation" in nc.denied
        finally:
            await nc.close()

    asyncio.run(run())


def test_the_store_consumes_only_its_own_consumer_and_cannot_write(
    locked_node: NatsNode, users: dict[str, User]
) -> None:
    store = store_role(STREAM)

    async def run() -> None:
        writer = await link(as_user(locked_node.url, users["intake"]), intake_role(STREAM))
        await writer.jetstream().publish("shoppulse.deliveries.acme", b"an order", timeout=5)
        await writer.close()

        nc = await link(as_user(locked_node.url, users["store"]), store)
        try:
            js = nc.jetstream(timeout=3)
            await js.add_consumer(STREAM, ConsumerConfig(durable_name="store-all"))
            sub = await js.pull_subscribe_bind("store-all", stream=STREAM)
            [msg] = await sub.fetch(1, timeout=5)
            assert msg.data == b"an order"
            await msg.ack()
            with pytest.raises(nats.errors.TimeoutError):  # another consumer: refused
                await js.add_consumer(STREAM, ConsumerConfig(durable_name="store-other"))
            with pytest.raises(nats.errors.TimeoutError):  # injecting a delivery: refused
                await js.publish("shoppulse.deliveries.acme", b"forged", timeout=2)
            with pytest.raises(nats.errors.TimeoutError):
                await js.delete_stream(STREAM)
        finally:
            await nc.close()

    asyncio.run(run())


def test_a_client_without_credentials_is_refused_with_the_settings_to_set(
    locked_node: NatsNode,
) -> None:
    with pytest.raises(LogUnavailable) as refused:
        asyncio.run(link(LogSettings(url=locked_node.url), intake_role(STREAM)))
    text = str(refused.value)
    assert "requires credentials and none are configured" in text
    assert "SHOPPULSE_LOG_CREDS_FILE" in text and "SHOPPULSE_LOG_PASSWORD" in text


def test_wrong_credentials_make_a_role_refuse_to_start_naming_the_fix(
    locked_node: NatsNode, users: dict[str, User], tmp_path: Path
) -> None:
    config = sources_file(tmp_path, {"acme": ("shopify", SECRET)})
    wrong = "not-the-intake-password-" + users["intake"].password[::-1]
    for command in (
        ["intake", "--config", str(config), "--log", locked_node.url],
        [
            "store",
            "--config",
            str(config),
            "--db",
            str(tmp_path / "s.duckdb"),
            "--log",
            locked_node.url,
        ],
    ):
        result = runner.invoke(
            app,
            command,
            env={"SHOPPULSE_LOG_USER": "intake", "SHOPPULSE_LOG_PASSWORD": wrong},
        )
        assert result.exit_code == 2, result.output
        text = flat(result.output)
        assert "refused user intake (SHOPPULSE_LOG_USER) with the password of" in text
        assert "SHOPPULSE_LOG_PASSWORD" in text and "docs/scale-out.md#credentials" in text
        assert wrong not in result.output
    assert not (tmp_path / "s.duckdb").exists()


def test_a_role_with_another_roles_permissions_says_which_permission_is_missing(
    locked_node: NatsNode, users: dict[str, User], tmp_path: Path
) -> None:
    """The intake user's credentials given to `log init`: the server refuses the API call."""
    result = runner.invoke(
        app,
        ["log", "init", "--log", locked_node.url],
        env={"SHOPPULSE_LOG_USER": "intake", "SHOPPULSE_LOG_PASSWORD": users["intake"].password},
    )
    assert result.exit_code == 2, result.output
    text = flat(result.output)
    assert "permissions violation" in text
    assert "shoppulse log permissions" in text
    assert users["intake"].password not in result.output

    # The intake user's credentials given to a store: it may read the stream's configuration but
    # not the store's consumer, and the store says so before it opens its database.
    text = refused_store(tmp_path, locked_node.url, users["intake"])
    assert 'permissions violation for subscription to "_inbox_store-all.' in text


def test_nkey_seed_file_authenticates_and_a_foreign_seed_is_refused(tmp_path: Path) -> None:
    user = make_nkey_user(admin_role())
    node = permissioned_node(tmp_path / "nats", {}, (user,)).start()
    try:
        seed = tmp_path / "user.nk"
        seed.write_text(user.seed + "\n")
        settings = LogSettings(url=node.url, nkey_seed_file=seed)

        async def run() -> None:
            nc = await link(settings, admin_role())
            await nc.jetstream(timeout=3).account_info()
            await nc.close()

        asyncio.run(run())
        stranger = tmp_path / "stranger.nk"
        stranger.write_text(make_nkey_user(admin_role()).seed)
        with pytest.raises(LogUnavailable) as refused:
            asyncio.run(link(LogSettings(url=node.url, nkey_seed_file=stranger), admin_role()))
        assert "refused the nkey seed of SHOPPULSE_LOG_NKEY_SEED_FILE" in str(refused.value)
        assert make_nkey_user(admin_role()).seed[:8] not in str(refused.value)
    finally:
        node.stop()


def test_token_from_a_file_or_the_environment_and_never_in_a_message(tmp_path: Path) -> None:
    token = "tok-" + "9f2b" * 8
    node = token_node(tmp_path / "nats", token).start()
    try:
        token_file = tmp_path / "token"
        token_file.write_text(token)

        async def works(settings: LogSettings) -> None:
            nc = await link(settings, admin_role())
            assert nc.is_connected
            await nc.close()

        asyncio.run(works(LogSettings(url=node.url, token_file=token_file)))
        asyncio.run(works(LogSettings(url=node.url, token=SecretStr(token))))
        with pytest.raises(LogUnavailable) as refused:
            asyncio.run(works(LogSettings(url=node.url, token=SecretStr(token + "x"))))
        assert "refused the token of SHOPPULSE_LOG_TOKEN" in str(refused.value)
        assert token not in str(refused.value)
        # A token in the URL (it shows in process lists, but works) is redacted everywhere.
        in_url = LogSettings(url=f"nats://{token}x@127.0.0.1:{node.config.port}")
        assert token not in in_url.display_url
        with pytest.raises(LogUnavailable) as refused:
            asyncio.run(works(in_url))
        assert token not in str(refused.value)
    finally:
        node.stop()


def test_conflicting_or_unreadable_credentials_are_named(tmp_path: Path) -> None:
    url = "nats://127.0.0.1:4222"
    cases = [
        (LogSettings(url=url, token=SecretStr("t"), user="u", password=SecretStr("p")), "several"),
        (LogSettings(url=url, user="u"), "a user needs a password"),
        (LogSettings(url=url, token_file=tmp_path / "missing"), "SHOPPULSE_LOG_TOKEN_FILE"),
        (LogSettings(url=url, creds_file=tmp_path / "missing"), "SHOPPULSE_LOG_CREDS_FILE"),
        (LogSettings(url=url, tls_cert_file=tmp_path / "c.pem"), "needs its key"),
    ]
    for settings, expected in cases:
        with pytest.raises(LogUnavailable, match=expected):
            asyncio.run(link(settings, admin_role()))


@pytest.fixture
def tls_setup(tmp_path: Path) -> Iterator[tuple[NatsNode, Path, Path, Path, Path]]:
    pki = make_pki(tmp_path / "pki")
    node = tls_node(tmp_path / "nats", pki).start()
    try:
        yield node, pki.ca_file, pki.client_cert, pki.client_key, pki.stranger_ca
    finally:
        node.stop()


def test_tls_with_the_tests_ca_and_a_client_certificate(
    tls_setup: tuple[NatsNode, Path, Path, Path, Path],
) -> None:
    node, ca, cert, key, stranger = tls_setup
    assert node.url.startswith("tls://")
    good = LogSettings(url=node.url, tls_ca_file=ca, tls_cert_file=cert, tls_key_file=key)
    result = runner.invoke(
        app,
        ["log", "init", "--log", node.url],
        env={
            "SHOPPULSE_LOG_TLS_CA_FILE": str(ca),
            "SHOPPULSE_LOG_TLS_CERT_FILE": str(cert),
            "SHOPPULSE_LOG_TLS_KEY_FILE": str(key),
        },
    )
    assert result.exit_code == 0, result.output

    async def check(settings: LogSettings) -> None:
        nc, _, info = await open_checked(
            settings, name="test-tls", max_body_bytes=1024 * 1024, inbox=admin_role().inbox
        )
        assert info.config.name == STREAM
        connz = httpx.get(f"http://127.0.0.1:{node.config.http_port}/connz", timeout=5).json()
        [mine] = [c for c in connz["connections"] if c.get("name") == "test-tls"]
        assert mine["tls_version"].startswith("1.")  # the server sees an encrypted link
        await nc.close()

    asyncio.run(check(good))

    with pytest.raises(LogUnavailable) as untrusted:
        asyncio.run(check(good.model_copy(update={"tls_ca_file": stranger})))
    assert "is not trusted" in str(untrusted.value)
    assert "SHOPPULSE_LOG_TLS_CA_FILE" in str(untrusted.value)

    with pytest.raises(LogUnavailable) as no_client_cert:
        asyncio.run(check(LogSettings(url=node.url, tls_ca_file=ca)))
    assert "SHOPPULSE_LOG_TLS_CERT_FILE" in str(no_client_cert.value)


def test_tls_required_by_the_settings_refuses_a_plain_server_before_sending_credentials(
    tmp_path: Path,
) -> None:
    """A plain server (or someone in between) that would accept the credentials in clear."""
    users = role_users()
    node = permissioned_node(tmp_path / "plain", users).start()
    try:
        pki = make_pki(tmp_path / "pki")
        settings = as_user(node.url, users["intake"])
        asyncio.run(link(settings, intake_role(STREAM)))  # the credentials are right
        for wants_tls in (
            settings.model_copy(update={"url": node.url.replace("nats://", "tls://")}),
            settings.model_copy(update={"tls_ca_file": pki.ca_file}),
        ):
            with pytest.raises(LogUnavailable) as refused:
                asyncio.run(link(wants_tls, intake_role(STREAM)))
            text = str(refused.value)
            assert "does not offer TLS, but the link requires it" in text
            assert "nothing was sent" in text
        assert "authentication error" not in node.log_tail(100)
    finally:
        node.stop()


def test_the_real_roles_work_with_exactly_their_permissions_and_never_show_a_secret(
    locked_node: NatsNode, users: dict[str, User], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Intake and the store, each with its own user of `shoppulse log permissions`: a delivery
    goes through, and neither the answers nor the logs nor the discovery file hold a password
    (the intake's is in its URL, the store's in the environment's settings)."""
    delivery = simulated(1)[0]
    intake_password = users["intake"].password
    port = locked_node.config.port
    intake_logs = signed_settings(url=f"nats://intake:{intake_password}@127.0.0.1:{port}")
    settings = Settings(db_path=tmp_path / "unused.duckdb")
    with TestClient(create_intake_app(settings, intake_logs, SOURCES, a_day_later())) as replica:
        assert post(replica, delivery).status_code == 200
        answers = [replica.get(path).text for path in ("/api/v1/ingest/stats", "/readyz")]
    db = tmp_path / "store" / "shoppulse.duckdb"
    store_logs = signed_settings(
        url=locked_node.url, user="store", password=SecretStr(users["store"].password)
    )
    store_settings = Settings(db_path=db, batch_linger_ms=0.5)
    app = create_store_app(store_settings, store_logs, SOURCES, clock=a_day_later())
    with TestClient(app) as client:
        wait_for(
            lambda: client.get("/api/v1/ingest/stats").json()["totals"]["accepted"] == 1,
            "the store took the delivery",
        )
        answers += [client.get(path).text for path in ("/api/v1/ingest/stats", "/readyz")]
        answers.append(client.get("/metrics").text)
        answers.append(discovery_path(db).read_text())
    shown = "\n".join([*answers, *(record.getMessage() for record in caplog.records)])
    assert f"127.0.0.1:{port}" in shown  # the URL is shown ...
    for user in users.values():
        assert user.password not in shown  # ... never a password


def test_creds_files_of_operator_mode_carry_each_roles_permissions(tmp_path: Path) -> None:
    operator = Operator.create()
    node = operator_node(tmp_path / "nats", operator).start()
    try:
        admin = operator.creds(tmp_path / "admin.creds", admin_role())
        result = runner.invoke(
            app,
            ["log", "init", "--log", node.url],
            env={"SHOPPULSE_LOG_CREDS_FILE": str(admin)},
        )
        assert result.exit_code == 0, result.output
        intake = intake_role(STREAM)
        settings = LogSettings(
            url=node.url, creds_file=operator.creds(tmp_path / "intake.creds", intake)
        )

        async def publish_then_snoop() -> None:
            nc, js, _ = await open_checked(
                settings, name="test-intake", max_body_bytes=1024 * 1024, inbox=intake.inbox
            )
            try:
                assert (await js.publish("shoppulse.deliveries.acme", b"x", timeout=5)).seq == 1
                with pytest.raises(nats.errors.TimeoutError):
                    await js.get_msg(STREAM, 1)
            finally:
                await nc.close()

        asyncio.run(publish_then_snoop())
        stranger = _new_account()
        forged = operator.creds(tmp_path / "forged.creds", admin_role(), signer=stranger)
        with pytest.raises(LogUnavailable) as refused:
            asyncio.run(link(LogSettings(url=node.url, creds_file=forged), admin_role()))
        assert "refused the .creds file of SHOPPULSE_LOG_CREDS_FILE" in str(refused.value)
    finally:
        node.stop()


def _new_account() -> nkeys.KeyPair:
    return Operator.create().account


def test_the_printed_permissions_run_a_server_and_limit_a_store_to_its_sources(
    tmp_path: Path,
) -> None:
    """`shoppulse log permissions --store acme` pasted into a server's configuration (passwords
    filled in): the `store-acme` user uses its consumer and no other."""
    result = runner.invoke(app, ["log", "permissions", "--store", "acme"])
    assert result.exit_code == 0, result.output
    passwords = {name: f"{name}-password-0123456789" for name in ("intake", "store-acme", "admin")}
    block = result.output
    for name, password in passwords.items():
        block = block.replace(f'"REPLACE-{name}"', f'"{password}"')
    assert "REPLACE-" not in block
    plain = single_node(tmp_path / "nats")
    node = NatsNode(plain.workdir, dataclasses.replace(plain.config, accounts=block)).start()
    try:
        admin = LogSettings(url=node.url, user="admin", password=SecretStr(passwords["admin"]))
        store = admin.model_copy(
            update={"user": "store-acme", "password": SecretStr(passwords["store-acme"])}
        )
        role = store_role(STREAM, ["acme"])

        async def run() -> None:
            nc = await link(admin, admin_role())
            await ensure_stream(nc.jetstream(timeout=5), StreamSpec(STREAM))
            await nc.close()
            nc = await link(store, role)
            try:
                js = nc.jetstream(timeout=3)
                await js.add_consumer(STREAM, ConsumerConfig(durable_name="store-acme"))
                with pytest.raises(nats.errors.TimeoutError):
                    await js.add_consumer(STREAM, ConsumerConfig(durable_name="store-all"))
            finally:
                await nc.close()

        asyncio.run(run())
    finally:
        node.stop()


def test_a_reconnection_the_server_refuses_is_a_warning_naming_the_credentials(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The server comes back with another token (credentials rotated without this process): the
    link keeps trying, and says why it cannot get back in."""
    token = "first-token-" + "ab" * 12
    first = token_node(tmp_path / "nats", token).start()
    rotated = NatsNode(first.workdir, dataclasses.replace(first.config, token="second-" + token))
    caplog.set_level("WARNING", logger="shoppulse.log")

    def warned() -> list[str]:
        failed = "reconnecting to the log failed"
        return [r.getMessage() for r in caplog.records if failed in r.getMessage()]

    async def run() -> None:
        nc = await link(LogSettings(url=first.url, token=SecretStr(token)), admin_role())
        try:
            first.stop()
            rotated.start()
            for _ in range(100):
                if warned():
                    break
                await asyncio.sleep(0.1)
        finally:
            await nc.close()

    try:
        asyncio.run(run())
    finally:
        first.stop()
        rotated.stop()
    assert warned() and "refused the token of SHOPPULSE_LOG_TOKEN" in warned()[0]
    assert token not in "\n".join(r.getMessage() for r in caplog.records)


def test_a_store_whose_user_may_not_read_its_consumer_refuses_to_start(
    tmp_path: Path, users: dict[str, User]
) -> None:
    """Everything of the store's permissions but its consumer's: it stops before opening its
    database, naming the permission."""
    full = store_role(STREAM)
    partial = dataclasses.replace(
        full, publish=tuple(s for s in full.publish if ".CONSUMER." not in s)
    )
    crippled = {**users, "store": User("store", users["store"].password, partial)}
    node = permissioned_node(tmp_path / "nats", crippled).start()
    try:
        admin = as_user(node.url, users["admin"])
        asyncio.run(_init(admin))
        text = refused_store(tmp_path, node.url, users["store"])
        assert "$js.api.consumer.info.shoppulse.store-all" in text
        assert "shoppulse log permissions" in text
    finally:
        node.stop()


async def _init(settings: LogSettings) -> None:
    nc = await link(settings, admin_role())
    await ensure_stream(nc.jetstream(timeout=5), StreamSpec(STREAM))
    await nc.close()
