"""The baseline of the submit figure: a trivial Flask endpoint, served by the same gunicorn settings as the API.

    gunicorn -c src/api/gunicorn_conf.py bench.trivial_app:app   (from the checkout's root)
"""

import uuid

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/health")
def health() -> object:
    return jsonify({"status": "ok"})


@app.post("/v1/jobs/sentiment")
def accept() -> object:
    """Read the JSON body and answer 202 with an id, as the real endpoint does, and nothing else."""
    body = request.get_json()
    return jsonify({"job_id": str(uuid.uuid4()), "type": "sentiment", "status": "PENDING",
                    "chars": len(body.get("text", ""))}), 202
