"""`detect serve`: the scanner behind an HTTP API and an upload page.

One process holds one model. Requests decode and tile their images in a thread pool; every model call
goes through a `MicroBatchingBackend`, which merges the tiles of concurrent requests into shared calls.
Modules, one job each: `config` (the options), `batching` (the shared model calls), `uploads` (request
bodies into a private temp dir, with caps), `options` (query/form fields -> ScanOptions), `errors` (the
JSON error shape), `scanning` (one upload -> one result dict), `app` (routes), `server` (uvicorn),
`process` (the server as a child process, for tests and benchmarks), `static/` (the page).
"""
