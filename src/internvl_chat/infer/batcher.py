"""Collects concurrent requests into engine batches (asyncio side) and runs them on one worker thread.

A batch starts when `max_batch_size` requests are waiting or `max_wait_ms` after the first
one arrived, whichever comes first. The model runs on a single dedicated thread so the
event loop keeps accepting requests (and streaming tokens) while a batch decodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from .engine import GenerationRequest, GenerationResult, InferenceEngine

log = logging.getLogger(__name__)


class QueueFullError(RuntimeError):
    pass


class RequestBatcher:
    def __init__(self, engine: InferenceEngine, max_batch_size: int = 16, max_wait_ms: float = 10.0,
                 max_queued: int = 64):
        self.engine = engine
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queued = max_queued
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="internvl-generate")
        self._queue_front: list = []
        self.batches_run = 0
        self.largest_batch = 0

    async def start(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.max_queued)
        self._worker = asyncio.create_task(self._run(), name="internvl-batcher")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        self._executor.shutdown(wait=True, cancel_futures=True)

    @property
    def queued(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    def submit(self, request: GenerationRequest) -> asyncio.Future:
        """Queue a request; the future resolves to its GenerationResult. Raises QueueFullError when full."""
        if self._queue is None:
            raise RuntimeError("RequestBatcher.start() has not been awaited")
        future = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((request, future))
        except asyncio.QueueFull:
            raise QueueFullError(f"{self.max_queued} requests are already waiting; retry later") from None
        return future

    async def _collect(self) -> list[tuple[GenerationRequest, asyncio.Future]]:
        if self._queue_front:  # requests of a failed batch, retried alone
            return [self._queue_front.pop(0)]
        batch = [await self._queue.get()]
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch_size:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:  # take whatever is already waiting without sleeping
                    batch.append(self._queue.get_nowait())
                else:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            live = [(req, fut) for req, fut in batch if not fut.cancelled()]
            if not live:
                continue
            self.batches_run += 1
            self.largest_batch = max(self.largest_batch, len(live))
            try:
                results: list[GenerationResult] = await loop.run_in_executor(
                    self._executor, self.engine.generate, [req for req, _ in live])
            except Exception as exc:
                if len(live) == 1:
                    log.exception("generation failed")
                    if not live[0][1].done():
                        live[0][1].set_exception(exc)
                    continue
                # one bad request must not fail its neighbours: run them one by one to isolate it
                log.warning("a batch of %d failed (%s); retrying its requests one by one", len(live), exc)
                for item in live:
                    self._queue_front.append(item)
                continue
            for (_, fut), result in zip(live, results):
                if not fut.done():
                    fut.set_result(result)
