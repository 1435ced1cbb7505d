"""The deployment of a serving plan as files: ``gunicorn.conf.py``, ``haproxy.cfg`` (HAProxy
dispatch only) and ``run.sh``, which starts them and stops them in order. `coresweep serve`
writes exactly these files into its state folder and runs ``run.sh``: what a report hands out is
what was measured. The files name no path of the machine that wrote them except the model's:
the state folder comes from ``CORESWEEP_STATE_DIR`` (default /tmp/coresweep-serve).
"""

from __future__ import annotations

import json
import math
import pprint
from dataclasses import asdict

from coresweep.serving.config import DEFAULT_STATE_DIR, ENV, STATE_ENV, ServeConfig
from coresweep.serving.health import BACKEND, HAPROXY_SOCKET
from coresweep.serving.hooks import WORKER_CLASS

_GUNICORN = '''"""gunicorn.conf.py written by coresweep: {workers} worker(s) x {threads} intra-op thread(s),
{pinning}, dispatch: {dispatch}{batching}.
Run it with run.sh beside it (or: gunicorn -c gunicorn.conf.py); coresweep must be installed:
the app and the hooks are its own.
"""
import json
import os

from coresweep.serving.hooks import post_fork, pre_fork  # noqa: F401  (gunicorn reads them)

PLAN = {plan}
PLAN["state_dir"] = os.environ.setdefault("{state_env}", "{state_default}")
os.environ["{env}"] = json.dumps(PLAN)  # the workers read their slice and model from it
os.environ.update({extra_env})  # inherited by every worker

wsgi_app = "{app}"
bind = {bind}
workers = {workers}
worker_class = "{worker_class}"
timeout = {timeout}  # seconds without a heartbeat before gunicorn replaces a worker
graceful_timeout = {graceful}
keepalive = {keepalive}
preload_app = False  # load the model after fork, in each pinned worker
max_requests = {max_requests}
max_requests_jitter = {max_requests_jitter}
control_socket = os.path.join(PLAN["state_dir"], "gunicorn.ctl")  # gunicorn >= 25: one per server
'''

_HAPROXY = '''# haproxy.cfg written by coresweep: load-aware dispatch to {workers} worker(s).
# Each worker port takes {per_worker} at a time (maxconn {maxconn}); the others wait in ONE queue and go
# to the first worker with room (leastconn): never behind a full worker while another has room.
# At most {max_queue} wait (then 503 with Retry-After), each at most {timeout}s (then 503).
# Run it with run.sh beside it (CORESWEEP_STATE_DIR must be set: the stats socket lives there).
global
    maxconn 1024
    nbthread 1  # the queue-full check and the queueing happen in turn: at most max_queue wait
    stats socket "${{{state_env}}}/{sock}" mode 600 level user
    hard-stop-after {drain}s

defaults
    mode http
    option http-server-close  # one request per worker connection: maxconn counts requests
    option http-no-delay  # forward each token at once (without it MSG_MORE holds SSE ~200 ms)
    option abortonclose  # a queued request whose client left is dropped, not sent to a worker
    option redispatch 1
    retries 2
    timeout connect 2s
    timeout client {slack}s
    timeout server {slack}s  # past the worker's own limit, which answers first and says why
    timeout queue {timeout}s
    timeout http-request 10s
    timeout http-keep-alive 10s
    timeout check 1s

frontend coresweep
    bind {host}:{port}
    acl status path /health /ping /v1/models
    http-request return status 503 content-type application/json hdr Retry-After 1 string "{busy}" if !status {{ queue({backend}) ge {max_queue} }}
    use_backend status if status
    default_backend {backend}

backend {backend}
    balance leastconn
    option httpchk GET /ping
    # a worker that breaks a connection leaves at once; checks (every 2 s, 250 ms while it is
    # down) find a dead idle worker and bring its replacement back
    default-server maxconn {maxconn} check inter 2s downinter 250ms fall 1 rise 1 observe layer4 error-limit 1 on-error mark-down
{servers}

backend status  # /health and /ping are answered by any live worker, even a busy one
    balance roundrobin
    option httpchk GET /ping
    default-server check inter 2s downinter 250ms fall 1 rise 1 observe layer4 error-limit 1 on-error mark-down
{servers}
'''

_RUN = '''#!/usr/bin/env bash
# run.sh written by coresweep: starts {what} from the files beside it.
# SIGTERM drains: {drain_how}, then stops.
# (Ctrl-C reaches every process of the terminal's group: they stop at once.)
set -u
cd "$(dirname "$0")"
export {state_env}="${{{state_env}:-{state_default}}}"
mkdir -p "${state_env}"
PYTHON="${{PYTHON:-python3}}"
{start}
trap stop TERM INT
wait -n  # one of them ended by itself: stop the rest
rc=$?
kill -TERM {pids} 2>/dev/null
wait
exit $(( rc == 0 ? 1 : rc ))
'''

_START_HAPROXY = '''HAPROXY="${HAPROXY:-haproxy}"
"$PYTHON" -m gunicorn -c gunicorn.conf.py &
gunicorn=$!
"$HAPROXY" -db -f haproxy.cfg &
haproxy=$!
stop() {  # no new requests; the queued and in-flight ones finish (hard-stop-after bounds it)
  trap '' TERM INT
  kill -USR1 "$haproxy"; wait "$haproxy"
  kill -TERM "$gunicorn"; wait "$gunicorn"
  exit 0
}'''

_START_GUNICORN = '''"$PYTHON" -m gunicorn -c gunicorn.conf.py &
gunicorn=$!
stop() {  # gunicorn's graceful stop: workers finish their in-flight requests
  trap '' TERM INT
  kill -TERM "$gunicorn"; wait "$gunicorn"
  exit 0
}'''

_BUSY = ('{\\"error\\": {\\"message\\": \\"all workers are busy and the queue is full: retry '
         'later\\", \\"type\\": \\"overloaded\\", \\"code\\": 503}}')


def _whole_s(seconds: float) -> int:
    """Whole seconds, at least 1 (0 would mean "no limit" to HAProxy)."""
    return max(1, math.ceil(seconds))


def _plan(cfg: ServeConfig) -> dict:
    """The plan as the workers read it, without the writer's state folder."""
    return {k: v for k, v in asdict(cfg).items() if k != "state_dir"}


def gunicorn_conf(cfg: ServeConfig) -> str:
    haproxy = cfg.dispatch == "haproxy"
    bind = [f"127.0.0.1:{cfg.port_of(i)}" for i in range(cfg.workers)] if haproxy \
        else [f"{cfg.host}:{cfg.port}"]
    prefork = cfg.dispatch == "prefork"
    return _GUNICORN.format(
        workers=cfg.workers, threads=cfg.threads or "ORT-default",
        pinning="each pinned to its own CPUs" if cfg.slices else "unpinned",
        dispatch=cfg.dispatch, plan=pprint.pformat(_plan(cfg), sort_dicts=False),
        batching="" if cfg.batch == 1 else f", each decoding up to {cfg.batch} requests together "
        f"({cfg.batching} batching)",
        state_env=STATE_ENV, state_default=DEFAULT_STATE_DIR, env=ENV,
        extra_env=json.dumps(cfg.env),
        app="coresweep.serving.wsgi:create_app()" if prefork
        else "coresweep.serving.app:create_app()",
        bind=bind, worker_class="sync" if prefork else WORKER_CLASS,
        # a sync worker sends no heartbeat while it generates: allow the longest request
        timeout=_whole_s(cfg.request_timeout_s) + 30, graceful=_whole_s(cfg.drain_timeout_s),
        keepalive=0 if prefork else 5, max_requests=cfg.max_requests,
        max_requests_jitter=cfg.max_requests_jitter)


def haproxy_cfg(cfg: ServeConfig) -> str:
    servers = "\n".join(f"    server w{i} 127.0.0.1:{cfg.port_of(i)}" for i in range(cfg.workers))
    per_worker = "one request" if cfg.batch == 1 else f"up to {cfg.batch} requests (its batch)"
    return _HAPROXY.format(workers=cfg.workers, max_queue=cfg.max_queue,
                           per_worker=per_worker, maxconn=cfg.batch,
                           timeout=_whole_s(cfg.request_timeout_s),
                           slack=_whole_s(cfg.request_timeout_s) + 30, state_env=STATE_ENV,
                           sock=HAPROXY_SOCKET, drain=_whole_s(cfg.drain_timeout_s),
                           host=cfg.host,
                           port=cfg.port, backend=BACKEND, busy=_BUSY, servers=servers)


def run_sh(cfg: ServeConfig) -> str:
    haproxy = cfg.dispatch == "haproxy"
    return _RUN.format(
        what="gunicorn (the pinned workers) and HAProxy (the dispatcher)" if haproxy
        else "gunicorn", state_env=STATE_ENV, state_default=DEFAULT_STATE_DIR,
        drain_how="HAProxy stops listening, queued and in-flight requests finish, then gunicorn"
        if haproxy else "gunicorn's workers finish their in-flight requests",
        start=_START_HAPROXY if haproxy else _START_GUNICORN,
        pids='"$gunicorn" "$haproxy"' if haproxy else '"$gunicorn"')


def deployment_files(cfg: ServeConfig) -> dict[str, str]:
    """File name → text of the plan's deployment, exactly as `coresweep serve` runs it."""
    files = {"gunicorn.conf.py": gunicorn_conf(cfg)}
    if cfg.dispatch == "haproxy":
        files["haproxy.cfg"] = haproxy_cfg(cfg)
    files["run.sh"] = run_sh(cfg)
    return files
