"""A small Flask service traced by the official SkyWalking Python agent, for oap-rs tests.

    python app.py PORT [DOWNSTREAM]

`GET /api` calls `DOWNSTREAM/work` with requests and returns what it got; `GET /work` answers
`ok`. The agent reads its settings from the environment (SW_AGENT_NAME,
SW_AGENT_INSTANCE_NAME, SW_AGENT_COLLECTOR_BACKEND_SERVICES, ...).
"""

import sys

from skywalking import agent

agent.start()

import requests  # noqa: E402  (instrumented only when imported after the agent starts)
from flask import Flask  # noqa: E402

PORT = int(sys.argv[1])
DOWNSTREAM = sys.argv[2] if len(sys.argv) > 2 else None

app = Flask(__name__)


@app.route("/api")
def api():
    reply = requests.get(f"{DOWNSTREAM}/work", timeout=10)
    return reply.text, reply.status_code


@app.route("/work")
def work():
    return "ok"


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=PORT, threaded=True)
