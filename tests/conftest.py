"""Test harness: a RabbitMQ vhost of our own per run, fresh migrated databases per test, real services.

- Unit tests need none of this and never touch the broker or a database.
- ``amqp_uri``: a vhost created for this run (``rabbitmqctl add_vhost``) and deleted after it, so a
  running demo or a parallel run never consumes our messages.
- ``backend``: tests that take it run once per database, on PostgreSQL and on SQLite; every other test
  runs on PostgreSQL, production's database. ``--backends sqlite`` (or ``postgresql``) narrows a run; a
  ``@pytest.mark.backends("postgresql")`` marker says what a test can run on. PostgreSQL databases are cloned
  from a migrated template, emptied after a test and reused; all dropped at the end of the run.
- ``start_service(ServiceClass)``: a real nameko container on the run's vhost and a fresh database.
- ``rpc``: a standalone cluster proxy, optionally acting as a given caller.
- a run fails if the source tree changed during it (``git status``, ignored files included): tests write
  under ``tmp_path`` only.
"""

# eventlet first: nameko (and its pytest plugin since 2.13) relies on the caller to patch.
import warnings

warnings.filterwarnings("ignore", message="(?s).*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()

import os  # noqa: E402
import tempfile  # noqa: E402

# Hypothesis (schemathesis) keeps its caches in ./.hypothesis unless told otherwise: outside the source tree.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "careloop-hypothesis"))
# Keys for field encryption in tests (never used anywhere else).
os.environ.setdefault("CARELOOP_DATA_KEYS", "test1=" + "dGVzdC1rZXktb25lLTMyLWJ5dGVzLWxvbmctb2suLi4=")
os.environ.setdefault("CARELOOP_INDEX_KEY", "dGVzdC1pbmRleC1rZXktMzItYnl0ZXMtbG9uZy1vay4=")
# The gateway's token signing key in tests (never used anywhere else).
os.environ.setdefault("CARELOOP_TOKEN_KEYS", "test-t1=dGVzdC10b2tlbi1rZXktb25lLTMyLWJ5dGVzLWxvbmc=")


from tests.harness import *  # noqa: E402, F403 - fixtures live in tests/harness.py

SAFETY_INTERVAL = 0.03
"""Seconds the consumer loop waits for a message before it looks for consumers to cancel and for "stop".
At 0.1 a container stop still took ~220 ms (cancelling the consumers, then leaving the loop, each waits for
a turn of it): 0.03 took it to ~70 ms, 34 records tests from 26 s to 15 s, with no more CPU (measured:
tests/perf/RESULTS.md, "The default test run's fixed costs")."""


def _quicker_consumer_loop() -> None:
    """nameko's consumer loop checks for "stop" once a second (kombu's safety interval), which makes
    every container stop take 1-2 s. Tests start and stop hundreds of containers: check every
    ``SAFETY_INTERVAL`` instead. Behaviour is otherwise unchanged (heartbeats are still sent when due)."""
    import kombu.mixins

    original = kombu.mixins.ConsumerMixin.consume

    def consume(self, limit=None, timeout=None, safety_interval=SAFETY_INTERVAL, **kwargs):
        return original(self, limit=limit, timeout=timeout, safety_interval=safety_interval, **kwargs)

    kombu.mixins.ConsumerMixin.consume = consume


_quicker_consumer_loop()
