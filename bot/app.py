"""Wiring: settings -> database, stores and the pipeline every channel shares."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import Engine

from bot.config import Settings
from handlers.delivery import (
    CoordinatorSink,
    DeliveryReport,
    FileOpener,
    ReplySender,
    deliver_pending,
)
from handlers.pipeline import Pipeline
from storage.conversations import ConversationStore
from storage.database import create_schema, make_engine
from storage.files import FileStore
from storage.jobs import JobStore
from storage.outbox import OutboxStore
from storage.queue import CaseQueue


@dataclass
class App:
    settings: Settings
    engine: Engine
    pipeline: Pipeline
    outbox: OutboxStore
    queue: CaseQueue

    async def after_update(
        self,
        senders: dict[str, ReplySender],
        openers: dict[str, FileOpener],
        coordinators: CoordinatorSink,
    ) -> DeliveryReport:
        """Run the work an update queued (files to store), then deliver every pending reply."""
        await asyncio.to_thread(self.pipeline.run_jobs, openers)
        return await deliver_pending(self.outbox, senders, coordinators, self.pipeline.clock)


def build_app(settings: Settings) -> App:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    create_schema(engine)
    pipeline = Pipeline(
        ConversationStore(engine),
        JobStore(engine),
        FileStore(settings.data_dir / "files"),
        default_locale=settings.default_locale,
    )
    return App(settings, engine, pipeline, OutboxStore(engine), CaseQueue(engine))
