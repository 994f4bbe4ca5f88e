"""gunicorn settings for the provider: ``gunicorn -c python:idp.gunicorn_conf idp.wsgi:app``.

Shipped in the package so that an installed wheel, the container image and
the systemd unit all run the same way. Everything comes from the environment:

* ``IDP_BIND`` (default ``127.0.0.1:8000``) and ``WEB_CONCURRENCY`` (worker
  processes, default 2; gunicorn reads the same variable);
* ``IDP_TLS_CERT`` and ``IDP_TLS_KEY``: serve https directly (a single host
  without a reverse proxy, the compose trial); normally the proxy ends TLS;
* ``PROMETHEUS_MULTIPROC_DIR``: where the workers keep their metrics so that
  ``/metrics`` adds them up. When unset, a private temporary folder is made,
  so several workers never report only their own counts. It is emptied when
  gunicorn starts and a dead worker's gauges are dropped.

gunicorn's access log stays off: the provider writes one access line per
request naming the route, never the URL (which can carry codes and tokens).
"""

import glob
import os
import tempfile

bind = os.environ.get("IDP_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
timeout = int(os.environ.get("IDP_WORKER_TIMEOUT", "30"))
graceful_timeout = 20
certfile = os.environ.get("IDP_TLS_CERT") or None
keyfile = os.environ.get("IDP_TLS_KEY") or None
accesslog = None
errorlog = "-"
loglevel = "info"
# Behind the reverse proxy the provider itself reads X-Forwarded-* (provider.trusted_proxies).
forwarded_allow_ips = os.environ.get("IDP_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="idp-metrics-")


def on_starting(server):
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(folder, exist_ok=True)
    for stale in glob.glob(os.path.join(folder, "*.db")):
        os.remove(stale)


def child_exit(server, worker):
    from prometheus_client import multiprocess  # after PROMETHEUS_MULTIPROC_DIR is set

    multiprocess.mark_process_dead(worker.pid)
