"""moto as a WSGI app that keeps HTTP/1.1 connections open, for the benchmarks.

SQS endpoints keep HTTP/1.1 connections open between requests, and the AWS
SDK pools and reuses them: against AWS, drainerd pays for a connection once,
not per request. moto's own server (werkzeug's) closes the connection after
every response, which would bill drainerd a connect, TCP handshake and
teardown per SQS call that it never pays in production. The benchmarks serve
moto's app with gunicorn's threaded worker instead (one process, so one
moto state; connections kept open); the tests keep plain moto.

Run: gunicorn -k gthread --threads 16 --keep-alive 75 moto_keepalive:app
"""
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

app = DomainDispatcherApplication(create_backend_app)
