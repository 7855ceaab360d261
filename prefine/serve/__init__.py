"""`prefine serve`'s server: an HTTP API with dynamic batching for any run, a web page, Prometheus metrics.

`models` loads and describes runs, `batching` groups concurrent requests into forward passes,
`app` is the ASGI app (routes, limits, API key), `runs` exposes the run registry to the page,
`metrics` renders Prometheus text, and `static/` holds the page. It needs the `serve` extra
(FastAPI and uvicorn); `prefine.recipes.serve` is the command.
"""
