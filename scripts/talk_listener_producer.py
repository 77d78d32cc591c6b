"""Example: a Python producer handing work to a rhai-mp Pool over a Listener.

    python3 scripts/talk_listener_producer.py ADDRESS   # rhai-mp scripts/talk_listener_pool.rhai ADDRESS runs already
    python3 scripts/talk_listener_producer.py --spawn   # starts it ($RHAI_MP, default target/release/rhai-mp)

Standard library only: multiprocessing.connection.Client with the server's authkey. It
sends five jobs ({"job": n, "items": [...]}) to the rhai-mp server (talk_listener_pool.rhai),
which maps its `work` (Collatz steps) over the items with a Pool, checks each reply
against the same function computed here, prints a line per job, and sends None to stop
the server.
"""
import os
import subprocess
import sys
import tempfile
from multiprocessing.connection import Client

KEY = b"rhai-mp example"


def work(n):
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


def address_of(text):
    if "/" in text or ":" not in text:
        return text
    host, port = text.rsplit(":", 1)
    return (host.strip("[]"), int(port))


def main():
    server = None
    if len(sys.argv) > 1 and sys.argv[1] != "--spawn":
        address = sys.argv[1]
    else:
        address = os.path.join(tempfile.mkdtemp(prefix="rhai-mp-example-"), "work.sock")
        rhai_mp = os.environ.get("RHAI_MP", "target/release/rhai-mp")
        server = subprocess.Popen([rhai_mp, "scripts/talk_listener_pool.rhai", address], stdout=subprocess.PIPE, text=True)
        print("server:", server.stdout.readline().strip(), flush=True)
    conn = Client(address_of(address), authkey=KEY)
    for job in range(1, 6):
        items = list(range(job * 1000, job * 1000 + 200))
        conn.send({"job": job, "items": items})
        reply = conn.recv()
        assert reply["job"] == job and reply["results"] == [work(n) for n in items], reply
        print("job %d: %d results, the longest %d steps" % (job, len(items), max(reply["results"])), flush=True)
    conn.send(None)
    conn.close()
    if server is not None:
        print("server:", server.stdout.read().strip(), flush=True)
        sys.exit(server.wait(timeout=30))


if __name__ == "__main__":
    main()
