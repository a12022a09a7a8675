"""The production settings, plus the bare views of bench/benchsite/urls.py. Throttling stays on
(it is part of each API request's cost) with a one-second window large enough not to refuse."""

from dashboard.settings import *  # noqa: F403
from dashboard.settings import REST_FRAMEWORK

ROOT_URLCONF = "bench.benchsite.urls"
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api": "1000000/s"}}
