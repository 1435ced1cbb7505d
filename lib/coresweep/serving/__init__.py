"""Serving: several pinned worker processes behind a real HTTP server (gunicorn + uvicorn workers
+ a FastAPI app speaking the OpenAI completions API), and a load generator for it.

The gunicorn master never imports onnxruntime: each worker is pinned to its CPU slice in the
``post_fork`` hook, then imports the app, which loads the model."""
