"""Reconciliation: find and fill, from each store's own API, what its webhooks missed.

See docs/reconciliation.md. Layers, bottom up: `http` (a polite client), one fetcher per
platform (`shopify`, `woocommerce`, `bigcommerce`, `stripe`, chosen by `fetchers`) giving
`records`; `compare` (fetched against stored), `runner` (one run of one source, storing through
the writer), `runs` (finished runs' reports), `service` (the schedule) and `api` (the routes).
"""
