"""The service's settings: each stage declares its own, `shoppulse.settings` composes them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from ingest.reconcile.settings import ReconcileSettings
from ingest.settings import IngestSettings, IntakeSettings
from ingest.storage.settings import StorageSettings
from metrics.settings import MetricsSettings
from shoppulse.publish.settings import PublishSettings
from shoppulse.settings import ServerSettings, Settings

STAGES: tuple[type[BaseModel], ...] = (
    ServerSettings,
    IntakeSettings,
    StorageSettings,
    ReconcileSettings,
    MetricsSettings,
    PublishSettings,
)


def test_every_setting_is_declared_by_exactly_one_stage_in_stage_order() -> None:
    declared = [name for stage in STAGES for name in stage.model_fields]
    assert len(declared) == len(set(declared))
    assert list(Settings.model_fields) == declared
    assert list(IngestSettings.model_fields) == [
        *IntakeSettings.model_fields,
        *StorageSettings.model_fields,
        *ReconcileSettings.model_fields,
    ]
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} has no description"


@pytest.mark.parametrize(
    ("variable", "text", "name", "value"),
    [
        ("SHOPPULSE_PORT", "9001", "port", 9001),
        ("SHOPPULSE_MAX_BODY_BYTES", "2048", "max_body_bytes", 2048),
        ("SHOPPULSE_DB_PATH", "elsewhere/live.duckdb", "db_path", Path("elsewhere/live.duckdb")),
        ("SHOPPULSE_RECONCILE_LOOKBACK", "PT2H", "reconcile_lookback", timedelta(hours=2)),
        ("SHOPPULSE_FOLD_BATCH_MAX", "7", "fold_batch_max", 7),
        ("SHOPPULSE_PUBLISH_GRACE_SECONDS", "1.5", "publish_grace_seconds", 1.5),
    ],
)
def test_each_stage_setting_is_read_from_its_shoppulse_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, text: str, name: str, value: object
) -> None:
    monkeypatch.setenv(variable, text)
    assert getattr(Settings(), name) == value


def test_only_the_composed_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPPULSE_MAX_BODY_BYTES", "2048")
    monkeypatch.setenv("SHOPPULSE_FOLD_BATCH_MAX", "7")
    assert IngestSettings().max_body_bytes == 5 * 1024 * 1024
    assert MetricsSettings().fold_batch_max == 20_000


def test_a_stage_keeps_its_validation_inside_the_composed_settings() -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 1024"):
        Settings(max_body_bytes=10)
    with pytest.raises(ValidationError, match="must not be less than metrics_history_per_fold"):
        Settings(metrics_history_per_fold=timedelta(days=2), metrics_history_hourly=timedelta(1))
    with pytest.raises(ValidationError, match="display_timezone"):
        Settings(display_timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="must not be less than metrics_history_per_fold"):
        MetricsSettings(metrics_history_hourly=timedelta(0))


def test_the_full_settings_are_what_ingest_takes() -> None:
    settings = Settings(max_body_bytes=4096)
    ingest_part: IngestSettings = settings  # the composed settings are ingest's, and more
    assert ingest_part.max_body_bytes == 4096
    stages: tuple[type[BaseModel], ...] = (*STAGES, IngestSettings)
    assert all(isinstance(settings, stage) for stage in stages)
