"""``kueatomic worker MODULE:ATTR``: run the handlers a module registers, in P processes.

The module is imported with starts deferred, so ``@queue.process(...)`` at import only
registers; ``--concurrency`` then overrides every registration's slot count and the workers
start. ATTR names the queue (``kueatomic.Queue`` or ``kueatomic.aio.Queue``) or a function
returning one; the module configures its Redis connection itself (for example from
``REDIS_URL``). With ``--processes P`` the command starts P child processes of itself (Kue's
cluster example), replaces any that dies (backing off if they keep dying) and forwards signals
to them. SIGTERM/SIGINT stop gracefully; a second one fails running jobs with "Shutdown" at
once.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from typing import Any

from ..errors import ConfigError


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
                        help="on SIGTERM/SIGINT, ms running jobs get before they fail with "
                             "Shutdown (default 10000)")
    parser.add_argument("--log-level", type=str.upper, default=argparse.SUPPRESS,
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="same as kueatomic --log-level (given here, it wins)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.processes < 1:
        raise ConfigError("--processes must be >= 1")
    if args.concurrency is not None and args.concurrency < 1:
        raise ConfigError("--concurrency must be >= 1")
    if args.processes > 1:
        return supervise(args)
    return serve(args)


def load_target(spec: str) -> tuple[Any, list[Any]]:
    """Import MODULE with starts deferred; returns ATTR's queue and every queue that
    registered workers meanwhile."""
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
        queues = list(deferred)
    if not hasattr(target, "process") or not hasattr(target, "start_workers"):
        raise ConfigError(f"{spec} is a {type(target).__name__}, not a kueatomic queue")
    if all(q is not target for q in queues):
        queues.append(target)
    return target, queues


def serve(args: argparse.Namespace) -> int:
    from ..aio import Queue as AsyncQueue
    from ..worker.signals import run_until_signalled, serve_until_signalled

    _, queues = load_target(args.target)
    registrations = [reg for q in queues for reg in q._workers.pending]
    if not registrations:
        raise ConfigError(f"{args.target} registers no handlers: call queue.process(type, "
                          "handler) when the module is imported")
    if args.concurrency is not None:
        for reg in registrations:
            reg.concurrency = reg.free = args.concurrency
            reg.batch = min(reg.batch, args.concurrency)
    served = ", ".join(f"{r.job_type} x{r.concurrency}" for r in registrations)
    where = ", ".join(sorted({f"{q.driver.where} (prefix {q.prefix})" for q in queues}))
    print(f"kueatomic worker {os.getpid()}: {served} on {where}", flush=True)
    sync_queues = [q for q in queues if not isinstance(q, AsyncQueue)]
    async_queues = [q for q in queues if isinstance(q, AsyncQueue)]
    timeout = args.shutdown_timeout
    for queue in sync_queues:
        queue.start_workers()
    if not async_queues:
        def graceful_sync() -> None:
            for queue in sync_queues:
                queue.shutdown(timeout)

        def immediate_sync() -> None:
            for queue in sync_queues:
                queue.abort_workers()

        run_until_signalled(graceful_sync, immediate_sync)
    else:
        async def main() -> None:
            for queue in async_queues:
                await queue.start_workers()

            async def graceful() -> None:
                await asyncio.gather(*(q.shutdown(timeout) for q in async_queues),
                                     *(asyncio.to_thread(q.shutdown, timeout) for q in sync_queues))

            async def immediate() -> None:
                await asyncio.gather(*(q.abort_workers() for q in async_queues),
                                     *(asyncio.to_thread(q.abort_workers) for q in sync_queues))

            await serve_until_signalled(graceful, immediate)
            for queue in async_queues:
                await queue.close()

        asyncio.run(main())
    for queue in sync_queues:
        queue.close()
    print(f"kueatomic worker {os.getpid()}: stopped", flush=True)
    return 0


def supervise(args: argparse.Namespace) -> int:
    """Keep ``--processes`` children (each ``--processes 1``, same options and log level)
    running until SIGTERM/SIGINT; see :mod:`kueatomic.commands.supervisor`."""
    from .supervisor import Supervisor

    command = [sys.executable, "-m", "kueatomic.cli", "--log-level",
               getattr(args, "log_level", "INFO"), "worker", args.target, "--processes", "1",
               "--shutdown-timeout", str(args.shutdown_timeout)]
    if args.concurrency is not None:
        command += ["--concurrency", str(args.concurrency)]
    return Supervisor(command, args.processes, what=args.target).run()
