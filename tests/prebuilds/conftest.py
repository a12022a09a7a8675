import pytest
from celery import current_app

# The org fixture's runner queue, a second runner's (test_dispatch.py), and Celery's default queue
# (the control plane's tasks).
QUEUES = ("runner-test", "runner-other", "control")


@pytest.fixture
def sent_tasks():
    """What this test sent to a Celery queue, read back from the broker the settings configure (in
    tests, kombu's filesystem queue in the test's data dir): (task name, args) per message, oldest
    first. The queues start empty, so messages of earlier tests do not count."""
    with current_app.connection_for_write() as connection:
        for queue in QUEUES:
            connection.default_channel.queue_purge(queue)

    def read(queue: str) -> list[tuple[str, list]]:
        assert queue in QUEUES, f"{queue!r} was not emptied before the test"
        messages = []
        with current_app.connection_for_read() as connection:
            while (message := connection.default_channel.basic_get(queue, no_ack=True)) is not None:
                args, _kwargs, _embed = message.decode()
                messages.append((message.headers["task"], args))
        return messages

    return read
