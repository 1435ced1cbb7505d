"""Serving: several pinned worker processes behind a real HTTP server (gunicorn + uvicorn workers
+ a FastAPI app speaking the OpenAI completions API), HAProxy in front so each request reaches an
idle worker, the deployment files that run it, and a load generator for it.

The gunicorn master never imports onnxruntime: each worker is pinned to its CPU slice in the
``post_fork`` hook, then imports the app, which loads the model."""
