"""Delivery benchmark of the realtime hub (issue 7): `python -m bench.run --help`.

See bench/README.md for what it measures and how, and bench/RESULTS.md for the figures.
"""
