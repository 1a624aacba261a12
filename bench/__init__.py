"""The benchmarks, run as modules from the checkout's root (`python -m bench.run`, `python -m bench.submit`):
each figure next to its baseline, on a platform from the same builder the tests use (`launcher.platform`)."""
