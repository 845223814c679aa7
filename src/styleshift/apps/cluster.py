"""The batch's workers as Ray actors: on a local Ray cluster started for the run, or on an
existing one (`ray start --head` on one machine, `ray start --address HEAD:6379` on the
others). Each actor loads the network once and stylises many payloads; payloads and
outputs travel as bytes through Ray's object store, so the machines share no storage.
Every machine needs styleshift installed and its VGG-19 weights fetched.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
import threading
from typing import Any

import torch

from ..core.errors import StyleshiftError
from ..transfer import StyleTransfer
from .batch_worker import Outcome, Payload, work


class _Actor:
    def __init__(self, device: str, threads: int) -> None:
        torch.set_num_threads(threads)
        self.engine = StyleTransfer(device=device)

    def run(self, item: Payload) -> Outcome:
        return work(self.engine, item)


class RayPool:
    """Actors that each load the network once; a payload goes to the least busy one.

    Without `count`, one one-CPU actor per CPU of the cluster (local: of this machine);
    with it, `count` actors sharing the cluster's CPUs."""

    def __init__(self, count: int | None, device: str, address: str | None) -> None:
        try:
            import ray
        except ImportError:
            raise StyleshiftError(
                "--ray needs Ray; pip install 'styleshift[ray]' (or leave out --ray to use "
                "local worker processes)"
            ) from None
        self.ray: Any = ray
        self.started = not ray.is_initialized()
        if self.started:
            try:
                if address:
                    ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
                else:
                    ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False,
                             logging_level=logging.WARNING, log_to_driver=False)  # fmt: skip
            except (ConnectionError, RuntimeError, ValueError) as e:
                where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
                raise StyleshiftError(f"cannot start or reach {where}: {e}") from None
        cpus = max(1, int(self.ray.cluster_resources().get("CPU", 1)))
        count = count or cpus
        threads = max(1, cpus // count)
        actor: Any = ray.remote(num_cpus=threads)(_Actor)
        self.actors = [actor.remote(device, threads) for _ in range(count)]
        self.depth = 2 * count
        self.busy = [0] * count
        self.lock = threading.Lock()  # Ray completes futures on its own threads

    def submit(self, item: Payload) -> cf.Future[Outcome]:
        with self.lock:
            index = min(range(len(self.actors)), key=self.busy.__getitem__)
            self.busy[index] += 1
        future: cf.Future[Outcome] = self.actors[index].run.remote(item).future()

        def done(_: object) -> None:
            with self.lock:
                self.busy[index] -= 1

        future.add_done_callback(done)
        return future

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        for a in self.actors:
            self.ray.kill(a)
        if self.started:
            self.ray.shutdown()
