"""BullMQ for Node (npm's `bullmq`), the queue kueatomic's design is compared with most: every
move is a Lua script, and `moveToFinished` fetches the next job in the same call. One Node
process per side, driven by bench/peers/node/child.js, which speaks bench/child.py's steps and
publishes the same tally (bench/tally.py); envs.ensure installs it with npm into
bench/.venv/bullmq_node and writes the `bin/python` stand-in the harness starts.

This module only holds the constants bench/envs.py reads; it is never imported."""

NODE = True
NPM_PACKAGES = ["bullmq@5.81.5", "ioredis@5"]
PACKAGES: list[str] = []
DIST = "bullmq"
BULK_API = "Queue.addBulk"
BATCH_PATH = ""
CONCURRENCY = 64
ASYNC = True
SETTINGS = ("Node 20, one process; Worker(concurrency=64: bench/sweep.py drained 3.2k, 13.2k, "
            "13.9k, 13.9k jobs/s at 1, 16, 64, 256), jobs with removeOnComplete=true (BullMQ's "
            "advice)")
