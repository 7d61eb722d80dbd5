"""``kueatomic worker MODULE:ATTR``: run the handlers a module registers, in P processes.

The module is imported with starts deferred, so ``@queue.process(...)`` at import only
registers; ``--concurrency`` then overrides every registration's slot count and the workers
start. ATTR names the queue (``kueatomic.Queue`` or ``kueatomic.aio.Queue``), a worker
(``kueatomic.Worker``, ``kueatomic.aio.Worker``) or a function returning one; the module configures its Redis connection itself (for example from
``REDIS_URL``). With ``--processes P`` the command starts P child processes of itself (Kue's
cluster example), replaces any that dies (backing off if they keep dying) and forwards signals
to them. SIGTERM/SIGINT stop gracefully (running jobs get --shutdown-timeout, then are
released back to inactive with no attempt used); a second one releases them at once. Each
worker checks its queue's data format before its first claim; on a queue a newer kueatomic
wrote, the command stops and exits with that error (IncompatibleFormat).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import sys
from typing import Any

from .. import extras
from ..errors import ConfigError

log = logging.getLogger("kueatomic.worker")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "worker", help="run the job handlers a module registers (MODULE:ATTR names its queue)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", metavar="MODULE:ATTR",
                        help="module to import and the queue in it, e.g. myapp.tasks:queue")
    parser.add_argument("-c", "--concurrency", type=int, default=None,
                        help="slots per process() call (default: as registered)")
    parser.add_argument("-p", "--processes", type=int, default=1,
                        help="worker processes to run (default 1)")
    parser.add_argument("--shutdown-timeout", type=float, default=10000, metavar="MS",
                        help="on SIGTERM/SIGINT, ms running jobs get before they are released "
                             "back to inactive, no attempt used (default 10000)")
    parser.add_argument("--log-level", type=str.upper, default=argparse.SUPPRESS,
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="same as kueatomic --log-level (given here, it wins)")
    parser.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                        help="serve Prometheus metrics on this port (needs the metrics extra); "
                             "with --processes P the children take the first free of PORT.."
                             "PORT+P-1")
    parser.add_argument("--metrics-host", default="127.0.0.1", metavar="HOST",
                        help="address the metrics server listens on (default 127.0.0.1)")
    parser.add_argument("--metrics-span", type=int, default=1, help=argparse.SUPPRESS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.processes < 1:
        raise ConfigError("--processes must be >= 1")
    if args.concurrency is not None and args.concurrency < 1:
        raise ConfigError("--concurrency must be >= 1")
    if args.metrics_port is not None and not 0 < args.metrics_port < 65536:
        raise ConfigError("--metrics-port must be 1..65535")
    if args.processes > 1:
        return supervise(args)
    return serve(args)


def load_target(spec: str) -> tuple[Any, list[Any]]:
    """Import MODULE with starts deferred; returns ATTR (a queue or a worker) and every
    worker that got handlers meanwhile (``queue.process`` registers on ``queue.worker``)."""
    from ..worker import control

    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"worker target {spec!r} must look like MODULE:ATTR, e.g. app.tasks:queue")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    with control.deferred() as deferred:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                raise ConfigError(f"cannot import {module_name!r} (run from the folder that "
                                  "contains it, or put it on PYTHONPATH)") from None
            raise
        target: Any = module
        for part in attr.split("."):
            try:
                target = getattr(target, part)
            except AttributeError:
                raise ConfigError(f"{module_name} has no attribute {attr!r}") from None
        if callable(target) and not hasattr(target, "process"):
            target = target()
        workers = list(deferred)
    if not hasattr(target, "process") or not hasattr(target, "registrations") and \
            not hasattr(target, "worker"):
        raise ConfigError(f"{spec} is a {type(target).__name__}, not a kueatomic queue or worker")
    worker = target if hasattr(target, "registrations") else target.worker
    if all(w is not worker for w in workers):
        workers.append(worker)
    return target, workers


def serve(args: argparse.Namespace) -> int:
    from ..worker.asyncio_runtime import Worker as AsyncWorker
    from ..worker.signals import run_until_signalled, serve_until_signalled

    _, workers = load_target(args.target)
    registrations = [reg for w in workers for reg in w.registrations]
    if not registrations:
        raise ConfigError(f"{args.target} registers no handlers: call queue.process(type, "
                          "handler) when the module is imported")
    if args.concurrency is not None:
        for reg in registrations:
            reg.resize(args.concurrency)
    served = ", ".join(f"{r.job_type} x{r.concurrency}" for r in registrations)
    where = ", ".join(sorted({f"{w.queue.connection.where} (prefix {w.queue.prefix})"
                              for w in workers}))
    log.info("kueatomic worker %d: %s on %s", os.getpid(), served, where)

    if args.metrics_port is not None:
        serve_metrics(args, workers)

    def refused() -> bool:  # a worker found a data format newer than it reads: stop them all
        return any(w.error is not None for w in workers)

    sync_workers = [w for w in workers if not isinstance(w, AsyncWorker)]
    async_workers = [w for w in workers if isinstance(w, AsyncWorker)]
    timeout = args.shutdown_timeout
    for worker in sync_workers:
        worker.start()
    if not async_workers:
        def graceful_sync() -> None:
            for worker in sync_workers:
                worker.shutdown(timeout)

        def immediate_sync() -> None:
            for worker in sync_workers:
                worker.abort()

        run_until_signalled(graceful_sync, immediate_sync, refused)
    else:
        async def main() -> None:
            for worker in async_workers:
                await worker.start()

            async def graceful() -> None:
                await asyncio.gather(*(w.shutdown(timeout) for w in async_workers),
                                     *(asyncio.to_thread(w.shutdown, timeout) for w in sync_workers))

            async def immediate() -> None:
                await asyncio.gather(*(w.abort() for w in async_workers),
                                     *(asyncio.to_thread(w.abort) for w in sync_workers))

            await serve_until_signalled(graceful, immediate, refused)
            for worker in async_workers:
                await worker.queue.close()

        asyncio.run(main())
    for worker in sync_workers:
        worker.queue.close()
    log.info("kueatomic worker %d: stopped", os.getpid())
    errors = [w.error for w in workers if w.error is not None]
    if errors:  # "kueatomic worker: IncompatibleFormat: ...", exit status 2
        raise errors[0]
    return 0


def serve_metrics(args: argparse.Namespace, workers: list[Any]) -> None:
    """Every worker counts into the default registry, which also gets ``kueatomic_jobs`` of
    each queue (read at scrape time on a sync queue), served on the first free port of
    --metrics-port..+span-1 (a supervisor's children share the range)."""
    extras.require("metrics", "--metrics-port")
    from .. import metrics
    from ..sync_queue import SyncQueue

    registry = metrics.default()
    queues: dict[int, Any] = {}
    for worker in workers:
        if worker.observer is None:
            worker.observer = registry.worker(worker.queue)
        queue = worker.queue
        if id(queue) not in queues:
            # The scrape runs in the server's thread: an asyncio queue's twin reads for it.
            queues[id(queue)] = queue if isinstance(queue, SyncQueue) else queue.like(SyncQueue)
    metrics.REGISTRY.register(metrics.JobsCollector(*queues.values()))
    error: OSError | None = None
    for port in range(args.metrics_port, args.metrics_port + max(1, args.metrics_span)):
        try:
            metrics.serve(port, args.metrics_host)
        except OSError as exc:
            error = exc
            continue
        log.info("kueatomic worker %d: metrics on http://%s:%d/metrics", os.getpid(),
                 args.metrics_host, port)
        return
    raise ConfigError(f"--metrics-port: cannot listen on {args.metrics_host}:"
                      f"{args.metrics_port}..+{args.metrics_span - 1}: {error}")


def supervise(args: argparse.Namespace) -> int:
    """Keep ``--processes`` children (each ``--processes 1``, same options and log level)
    running until SIGTERM/SIGINT; see :mod:`kueatomic.commands.supervisor`."""
    from .supervisor import Supervisor

    command = [sys.executable, "-m", "kueatomic.cli", "--log-level",
               getattr(args, "log_level", "INFO"), "worker", args.target, "--processes", "1",
               "--shutdown-timeout", str(args.shutdown_timeout)]
    if args.concurrency is not None:
        command += ["--concurrency", str(args.concurrency)]
    if args.metrics_port is not None:
        command += ["--metrics-port", str(args.metrics_port), "--metrics-host",
                    args.metrics_host, "--metrics-span", str(args.processes)]
    return Supervisor(command, args.processes, what=args.target).run()
