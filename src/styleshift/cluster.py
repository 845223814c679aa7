"""The batch's workers as Ray actors: on a local Ray cluster started for the run, or on an
existing one (`ray start --head` on one machine, `ray start --address HEAD:6379` on the
others). Each actor loads the network once and stylises many payloads; payloads and
outputs travel as bytes through Ray's object store, so the machines share no storage.
Every machine needs styleshift installed and its VGG-19 weights fetched.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import threading
from typing import Any

import torch

from .batch import Outcome, Payload, work
from .errors import StyleshiftError
from .transfer import StyleTransfer


class _Actor:
    def __init__(self, device: str, threads: int) -> None:
        torch.set_num_threads(threads)
        self.engine = StyleTransfer(device=device)

    def run(self, item: Payload) -> Outcome:
        return work(self.engine, item)


class RayPool:
    """`count` actors of `threads` CPUs each; a payload goes to the least busy one."""

    def __init__(self, count: int, threads: int, device: str, address: str | None) -> None:
        try:
            import ray
        except ImportError:
            raise StyleshiftError(
                "--ray needs Ray; pip install 'styleshift[ray]' (or leave out --ray to use "
                "local worker processes)"
            ) from None
        self.ray: Any = ray
        self.depth = 2 * count
        self.started = not ray.is_initialized()
        if self.started:
            try:
                if address:
                    ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
                else:
                    ray.init(num_cpus=count * threads, include_dashboard=False,
                             logging_level=logging.WARNING, log_to_driver=False)  # fmt: skip
            except (ConnectionError, RuntimeError, ValueError) as e:
                where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
                raise StyleshiftError(f"cannot start or reach {where}: {e}") from None
        actor: Any = ray.remote(num_cpus=threads)(_Actor)
        self.actors = [actor.remote(device, threads) for _ in range(count)]
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


def ray_pool(count: int, threads: int, device: str, address: str | None) -> RayPool:
    return RayPool(count, threads, device, address)
