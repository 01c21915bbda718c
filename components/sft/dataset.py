"""Derive instruction data from the stdlib documentation corpus.

Each topic of the docs becomes questions whose answer is the topic's own first sentences
("What does the "assert" statement do?" -> "Assert statements are a convenient way to ...").
GRPO gets prompts with answers a reward function can check exactly: arithmetic and
"which keyword" questions. Everything is deterministic given the seed.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

_UNDERLINE = re.compile(r"^[*=\-~^]{3,}\s*$")
_STATEMENT = re.compile(r'^The "(\w+)" statement$')
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"(])")


def heading_and_paragraphs(text: str) -> tuple[str | None, list[str]]:
    """Split a reST-ish docs topic into its heading and prose paragraphs (code blocks dropped)."""
    lines = text.splitlines()
    heading = None
    if len(lines) > 1 and _UNDERLINE.match(lines[1] or ""):
        heading, lines = lines[0].strip(), lines[2:]
    paragraphs, current = [], []
    for line in lines + [""]:
        if line.strip():
            current.append(line)
            continue
        if current:
            block = current
            current = []
            # Indented blocks are grammar/code; headings and version notes are not answers.
            if block[0].startswith(" ") or (len(block) > 1 and _UNDERLINE.match(block[1])):
                continue
            para = " ".join(s.strip() for s in block)
            if para.startswith(("New in version", "Changed in version", "See also")):
                continue
            paragraphs.append(para)
    return heading, paragraphs


def first_sentences(paragraph: str, max_sentences: int, max_chars: int) -> str:
    sentences = _SENTENCE_END.split(paragraph)
    out = " ".join(sentences[:max_sentences]).strip()
    if len(out) > max_chars:
        out = out[:max_chars].rsplit(" ", 1)[0].rstrip(",;:") + " ..."
    return out


def _as_sentence(paragraph: str) -> str:
    p = paragraph.rstrip()
    return p[:-1] + "." if p.endswith(":") else p


def questions_for(title: str, heading: str | None) -> list[str]:
    """Question phrasings for a topic; the statement form is the one users ask most."""
    name = heading or title
    m = _STATEMENT.match(name)
    if m:
        kw = m.group(1)
        return [f'What does the "{kw}" statement do?', f'Explain the Python "{kw}" statement.']
    return [f"What is {name} in Python?", f"Explain {name} in Python."]


def doc_qa(docs: Iterable[dict], max_sentences: int, max_chars: int) -> Iterator[dict]:
    """One record per question: {"question", "answer", "source_id", "keyword"}."""
    for doc in docs:
        heading, paragraphs = heading_and_paragraphs(doc["text"])
        # The first prose paragraph that is whole sentences; an intro to a grammar block
        # ("... into a program:") is one too, once its colon becomes a full stop.
        answer = next((first_sentences(_as_sentence(p), max_sentences, max_chars) for p in paragraphs
                       if len(p) >= 40 and p.rstrip()[-1] in ".!?:" and not p.startswith("(")), None)
        if answer is None:
            continue
        m = _STATEMENT.match(heading or "")
        for q in questions_for(doc.get("title") or doc["id"], heading):
            yield {"question": q, "answer": answer, "source_id": doc["id"], "keyword": m.group(1) if m else None}


def is_eval_doc(doc_id: str, eval_fraction: float) -> bool:
    h = int(hashlib.sha256(doc_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return h < eval_fraction


def arithmetic_prompts(n: int, max_operand: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.randint(0, max_operand), rng.randint(0, max_operand)
        op = rng.choice(["+", "-"]) if a >= b else "+"
        ans = a + b if op == "+" else a - b
        out.append({"prompt": f"What is {a} {op} {b}? Answer with the number only.", "answer": str(ans)})
    return out


def keyword_prompts(qa: Iterable[dict]) -> list[dict]:
    """'Which keyword ...' prompts from statement topics, with the keyword blanked out of the clue."""
    out, seen = [], set()
    for r in qa:
        kw = r.get("keyword")
        if not kw or kw in seen:
            continue
        seen.add(kw)
        clue = re.sub(rf"\b{re.escape(kw)}\b", "___", r["answer"], flags=re.IGNORECASE)
        out.append({"prompt": f'Which Python statement is this? "{clue}" Answer with the keyword only.', "answer": kw})
    return out


def read_chat_jsonl(path: str | Path) -> list[dict]:
    """User chat data; every record must be {"messages": [...]} ending with an assistant turn."""
    records = []
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            rec = json.loads(line)
            msgs = rec.get("messages")
            if not isinstance(msgs, list) or not msgs:
                raise ValueError(f"{path}:{i}: expected {{'messages': [...]}} with at least one message")
            for m in msgs:
                if set(m) < {"role", "content"} or m["role"] not in ("system", "user", "assistant"):
                    raise ValueError(f"{path}:{i}: each message needs 'role' in system/user/assistant and 'content'")
            if msgs[-1]["role"] != "assistant":
                raise ValueError(f"{path}:{i}: the last message must be the assistant's (it is what SFT learns)")
            records.append({"messages": [{"role": m["role"], "content": m["content"]} for m in msgs]})
    return records


def write_jsonl(path: Path, records: Iterable[dict]) -> int:
    n = 0
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
