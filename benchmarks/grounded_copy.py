"""Can the e2e flow's model learn to copy from a numbered source at all? Full fine-tuning (not LoRA)
on diverse extractive chats in the router's format, measured on held-out documents.

    .venv/bin/python benchmarks/grounded_copy.py MODEL_DIR CORPUS_PARQUET STEPS LR THREADS

Each chat: the gold passage (a random chunk of a corpus document) among 2 distractors, the question
names the gold's title, the answer is ``[n]`` + the passage's first sentence (up to 30 words).
Passages come from every document, so answers cannot be memorised: the model must copy. Prints,
every 100 steps, (share of greedy answers to 24 held-out chats with a >= 5-word span of the gold
passage, mean longest shared span in words, one answer); step 0 is the baseline (the model before).
"""
import json, random, sys, time
import pandas as pd, torch
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from transformers import AutoModelForCausalLM, AutoTokenizer
from components.grounded import grounded_prompt, longest_common_span_words
from components.sft.grounded import random_passage, DocPassage, fit_context, raw_blocks
from components.sft.chat import encode_chat, collate, response_loss, prompt_text

model_dir, corpus, steps, lr, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
docs = pd.read_parquet(corpus).to_dict("records")
docs = [d for d in docs if len(d["text"]) > 300]
rng = random.Random(0)
rng.shuffle(docs)
held, train_docs = docs[:40], docs[40:]
import re
SENT = re.compile(r"(?<=[.!?])\s+")

def example(pool, rng):
    gold_doc = rng.choice(pool)
    g = random_passage(gold_doc, rng, 500)
    if g is None: return None
    flat = " ".join(g.text.split())
    first = SENT.split(flat)[0]
    ws = first.split()
    if len(ws) < 6: return None
    answer = " ".join(ws[:30])
    others = [random_passage(d, rng, 500) for d in rng.sample(pool, 2)]
    sources = [g] + [o for o in others if o]
    rng.shuffle(sources)
    sources = fit_context(sources, g, 1000)
    c = sources.index(g) + 1
    q = f"What does the documentation say about {g.title}?"
    return {"prompt": grounded_prompt(q, sources, 1500), "response": f"[{c}] {answer}", "gold": g.text}

tok = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
evals = [e for e in (example(held, random.Random(i)) for i in range(40)) if e][:24]

def span_rate():
    model.eval(); hits = 0; spans = []
    with torch.no_grad():
        for i in range(0, len(evals), 8):
            b = evals[i:i+8]
            texts = [prompt_text(tok, e["prompt"]) for e in b]
            tok.padding_side = "left"
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            gen = model.generate(**enc, max_new_tokens=40, do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
            outs = tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            for e, o in zip(b, outs):
                s = longest_common_span_words(o, e["gold"]); spans.append(s); hits += s >= 5
    model.train()
    return hits / len(evals), sum(spans)/len(spans), outs[0][:120]

print("step 0", span_rate(), flush=True)
t0 = time.time()
for step in range(1, steps + 1):
    batch = []
    while len(batch) < 8:
        e = example(train_docs, rng)
        if e: batch.append(encode_chat(tok, [{"role": "user", "content": e["prompt"]}, {"role": "assistant", "content": e["response"]}], 640))
    loss = response_loss(model, collate(batch, tok.pad_token_id))
    loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step(); opt.zero_grad()
    if step % 25 == 0: print(step, round(loss.item(), 3), round(time.time()-t0), flush=True)
    if step % 100 == 0: print("step", step, span_rate(), flush=True)
