"""A user's own corpus with planted personal data ("canaries"), for the end-to-end PII test.

``write_canary_corpus(folder)`` writes support tickets and wiki pages about Python (.txt and
.jsonl, long enough English prose to pass data.clean's quality filters) that carry e-mail
addresses, US and international phone numbers, IBANs and Luhn-valid card numbers in the forms
people print them, and returns every canary string: each as planted plus its digits-only (or
space-free) variant, so a pipeline that merely reformats a number is caught too. The numbers
are made up (555-01xx is a fictional US range) and appear nowhere in Python's docs.
"""
from __future__ import annotations

import json
from pathlib import Path

EMAILS = ("marguerite.okonkwo@quillfeather-analytics.io", "h.tanaka-support@bluewren-systems.net",
          "ravi.subramanian@tesselate-labs.dev")
PHONES = ("(628) 555-0147", "628-555-0193", "+1 628 555 0162", "+44 20 7946 0321", "+49 (0)30 9018 4477",
          "+33 1 84 88 52 36")
IBANS = ("DE53 3704 0044 0532 0192 74", "NL14RABO0338176529", "FR76 3000 6000 0112 3456 7890 189")
CARDS = ("4539 1488 0343 6467", "5520-4379-1882-0311")

# Questions about the canary documents' topics (none of them carries a canary itself).
QUESTIONS = (
    "Why does the asyncio reconnect loop hang after a network drop?",
    "How do we publish our Python packages to the private package index?",
    "How do I get a refund for the Python training course?",
    "Who is on call for the nightly data pipeline and how do I reach them?",
    "How are the invoices for the package index licence paid?",
)

# A phrase of each document that only the canary corpus has: finding it (scrubbed) in the index
# proves the documents got there, so "no canary" means scrubbed, not absent.
MARKERS = ("asyncio reconnect loop", "private package index", "training course refund", "nightly data pipeline")
# The documents' titles as data.corpus records them (a .txt file's stem, a record's "title"): the
# router's answers name the retrieved documents by title.
TITLES = ("ticket_asyncio_reconnect", "wiki_private_index", "Python training course refund",
          "On-call handbook for the nightly data pipeline")

TICKET = f"""Support ticket 4471: the asyncio reconnect loop hangs after a network drop.

Reported by Marguerite Okonkwo ({EMAILS[0]}, phone {PHONES[0]}). Our ingestion service uses an
asyncio reconnect loop around a websocket client. When the network drops for more than a minute,
the loop stops retrying and the service hangs without raising an exception. The task that owns
the connection is still pending, but nothing awaits it any more, so the error is never seen.

We reproduced it with Python 3.12 on two machines. The fix is to wrap the connection in a task
group, to set a timeout on every await with asyncio.timeout, and to log the exception before the
next attempt. After the change the service reconnects within five seconds of the network coming
back. If it happens again, call the on-call engineer at {PHONES[1]} or write to {EMAILS[0]} with
the log file attached, and we will look at it the same day.
"""

WIKI = f"""Internal wiki: publishing our Python packages to the private package index.

Every library of the platform team is published to the private package index, not to PyPI. Build
the wheel and the source distribution with python -m build, check them with twine check, and
upload them with twine upload using the repository named internal in your pypirc file. The index
rejects a version that already exists, so raise the version number in pyproject.toml first.

Access to the private package index is granted by the platform team. Ask Hiro Tanaka at
{EMAILS[1]} or call {PHONES[2]} during European office hours; from the London office dial
{PHONES[3]}. The licence of the package index is paid by bank transfer to the vendor's account
{IBANS[0]}, and invoices for the package index licence are approved by the team lead before
payment. Please do not share the upload token in chat; store it in the keyring instead.
"""

RECORDS = [
    {"id": "ticket-5120", "title": "Python training course refund",
     "text": f"""Ticket 5120: training course refund for the advanced Python course.

A participant asked for a training course refund after the advanced Python course was moved to
another week. The course covers decorators, generators, context managers and type hints over
three days. The participant paid with the card {CARDS[0]} and asked for the money to go back to
the same card. Our policy is to refund the full price when we move a course, so the refund was
approved. The finance team sends refunds to a bank account when the card has expired, in this case
to {IBANS[1]}, and confirms by e-mail to {EMAILS[2]}. A second payment with the card {CARDS[1]}
was a duplicate and is refunded as well. Refunds take five to ten working days to arrive.
"""},
    {"id": "wiki-oncall", "title": "On-call handbook for the nightly data pipeline",
     "text": f"""On-call handbook: the nightly data pipeline.

The nightly data pipeline loads the sales data, cleans it with pandas and writes parquet files
for the reporting jobs. It starts at two in the morning and usually finishes within an hour. When
a run fails, the scheduler retries it once and then pages the engineer on call. The first thing
to check is the log of the failed task, which names the input file and the Python exception.

The engineer on call this month is Ravi Subramanian, reachable at {PHONES[4]} or {PHONES[5]} and
by e-mail at {EMAILS[2]}. Cloud costs of the pipeline are charged to the account {IBANS[2]}. If the
pipeline fails twice in a row, open an incident and tell the reporting team that the dashboards
will show yesterday's numbers until the next successful run.
"""},
]


def canaries() -> list[str]:
    """Every planted value, as planted and with its punctuation or spaces removed."""
    out: list[str] = list(EMAILS)
    out += [e.split("@")[0] for e in EMAILS]  # the local part alone: a half-scrubbed address
    for value in (*PHONES, *CARDS):
        out += [value, "".join(ch for ch in value if ch.isdigit())]
    out += [value for iban in IBANS for value in (iban, iban.replace(" ", ""))]
    return sorted(set(out))


def write_canary_corpus(folder: Path) -> list[str]:
    """Write the canary documents under ``folder`` (created); returns the canary strings."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ticket_asyncio_reconnect.txt").write_text(TICKET)
    (folder / "wiki_private_index.txt").write_text(WIKI)
    (folder / "tickets.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    return canaries()
