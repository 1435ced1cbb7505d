"""Measurement: the worker process (affinity and environment first, then onnxruntime), one trial
(a worker-process handle plus pure row building), the sampler, the sweep and the run-folder store.
Importing this package is cheap and never imports onnxruntime."""
