"""A reference point for the submit figure: the least a confirmed submit can do, with nothing of the platform.

It validates the body with the same pydantic model, writes one Redis hash, and publishes one persistent
message with a publisher confirm on a raw py-amqp channel kept per thread, to its own durable queue
`lean`. No Celery message, no key prefix rules, no metrics, no logs, no upload handling: not a
platform, only the cost floor of "validated, recorded and on disk in RabbitMQ" under the same gunicorn
settings.
"""

import json
import os
import threading
import uuid
from urllib.parse import urlsplit

import amqp
import redis
from flask import Flask, jsonify, request

from common.broker import CLASSIC_V2
from common.catalog import BY_NAME
from common.settings import get_settings

QUEUE = "lean"
app = Flask(__name__)
store = redis.Redis.from_url(os.environ["REDIS_URL"])
prefix = os.environ.get("KEY_PREFIX", "")
local = threading.local()
SentimentInput = BY_NAME["sentiment"].input_schema(get_settings())
assert SentimentInput is not None


def channel() -> amqp.Channel:
    if getattr(local, "channel", None) is None:
        url = urlsplit(os.environ["BROKER_URL"])
        conn = amqp.Connection(f"{url.hostname}:{url.port or 5672}", userid=url.username or "guest",
                               password=url.password or "guest", virtual_host=url.path[1:] or "/",
                               confirm_publish=True)
        conn.connect()
        local.channel = conn.channel()
        local.channel.queue_declare(QUEUE, durable=True, auto_delete=False, arguments=CLASSIC_V2)
    return local.channel


@app.get("/health")
def health() -> object:
    return jsonify({"status": "ok"})


@app.post("/v1/jobs/sentiment")
def submit() -> object:
    payload = SentimentInput.model_validate(request.get_json()).root.model_dump(mode="json")
    job_id = str(uuid.uuid4())
    store.hset(f"{prefix}job:{job_id}", mapping={"type": "sentiment", "status": "PENDING"})
    message = amqp.Message(json.dumps([[payload], {}, {}]), content_type="application/json", delivery_mode=2,
                           application_headers={"task": "sentiment.run", "id": job_id})
    channel().basic_publish(message, exchange="", routing_key=QUEUE)
    return jsonify({"job_id": job_id, "status": "PENDING"}), 202
