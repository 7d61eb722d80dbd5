"""One adapter module per system, all with the same interface, each imported only inside
that system's own virtualenv (bench/.venv/<name>) by ``bench.child``.

Constants (plain literals: ``bench.envs`` reads them without importing the module):
  PACKAGES    pip requirements for the system's venv
  DIST        distribution name whose version RESULTS.md reports
  BULK_API    the documented bulk-enqueue call, or None (then ``send_many`` does what the
              library offers for many jobs, named by BATCH_PATH)
  BATCH_PATH  what ``send_many`` uses when BULK_API is None ("" when it has nothing)
  CONCURRENCY jobs in flight per worker process (the library's fast setting, see SETTINGS)
  SETTINGS    the settings used and why, one line, for RESULTS.md
  ASYNC       True when the producer and worker are asyncio coroutines

Behaviour:
  class Producer(url)      .send(payload) one job per call; .send_many(payloads); .close()
                           (ASYNC: ``await .start()`` first, and the methods are coroutines)
  work(url, concurrency)   run one worker in this process until killed; the no-op handler
                           calls ``bench.tally.hit(payload)`` first thing.
The payload is a small dict, ``{"i": n}`` plus ``"t"`` (time.time() at create) when latency
is measured.
"""

NAMES = ["kueatomic", "rq", "arq", "saq", "dramatiq", "huey", "celery", "bullmq", "bullmq_node"]
QUEUE = "bench"  # queue / job type name every adapter uses
