"""The worker process of ``billing.local.offload``, run as a script
(``python billing/local/pdf_worker.py``, the repository on ``PYTHONPATH``): reads pickled
invoices on stdin and writes their PDFs on stdout until stdin ends. It imports the
renderer only, not the runtime (moto, boto3), so that it starts in a fraction of a second.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
from typing import IO

HEADER = struct.Struct(">BQ")  # status (0: PDF bytes, 1: pickled exception), length


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """An invoice in, its PDF (or the renderer's error) out, until ``requests`` ends."""
    from billing.documents.render import invoice_pdf

    while True:
        header = requests.read(HEADER.size)
        if len(header) != HEADER.size:
            return
        _, size = HEADER.unpack(header)
        invoice = pickle.loads(requests.read(size))  # noqa: S301 - from our own runtime
        try:
            status, body = 0, invoice_pdf(invoice)
        except Exception as err:
            status, body = 1, pickle.dumps(err)
        answers.write(HEADER.pack(status, len(body)) + body)
        answers.flush()


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]  # no shadowing
    answers = sys.stdout.buffer
    sys.stdout = sys.stderr  # anything else printed stays out of the answers
    serve(sys.stdin.buffer, answers)
