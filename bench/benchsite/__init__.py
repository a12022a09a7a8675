"""A settings module and urlconf for bench/bench_api.py only: the site plus bare Django views."""
