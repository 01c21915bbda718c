"""The data stage at growing corpus sizes: driver peak RSS and throughput of data.clean, data.dedup and
tokenize.pack, ours against the main branch's code, plus dedup quality on planted and real near-duplicates.

    flock /tmp/llmflow-heavy.lock .venv/bin/python benchmarks/data_scale.py --sizes-mb 10 100 --baseline /work/main

Corpus (built once per size, cached in /tmp): real text found on every Debian/Ubuntu machine —
the documentation under /usr/share/doc (gzip-compressed changelogs, READMEs, copyright files),
cut into documents of at most 20,000 characters — filling 75% of the size, then planted variants of
random documents until the size is reached: half light mutations (a few words replaced: true
5-gram Jaccard 0.8-1.0, duplicates), half heavy ones (10-30% replaced: distinct documents).

Each step runs in a fresh Python process on its own local Ray (4 logical CPUs), once with this
checkout's code and once with ``--baseline``'s (PYTHONPATH), same input; the process reports its
peak RSS (``ru_maxrss``: the driver, not the workers) and the step's wall time. While it runs, the
parent prints its driver RSS so far (``VmHWM``) and what it has written every 30 s; past
``--step-timeout-s`` it interrupts the step and reports what it reached (1 GB on 2 cores:
``--sizes-mb 1000 --codes ours --steps clean --skip-quality --step-timeout-s 1140``, one step a run).

Dedup quality runs the plain-Python dedup (the Ray step's tests assert the same clusters) of both
codes on (a) the planted pairs of the 10 MB corpus and (b) a real near-duplicate set: the licence
texts in /usr/share/common-licenses and every /usr/share/doc/*/copyright, all pairs labelled by
exact word 5-gram Jaccard. Precision: removed documents whose kept survivor has Jaccard >= 0.8 with
them. Recall over duplicate pairs: pairs with Jaccard >= 0.8 of which not both are kept.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = Path("/tmp/llmflow-datascale")
MAX_DOC_CHARS = 20_000
THRESHOLD = 0.8


# -- corpus ----------------------------------------------------------------------------------
def doc_texts() -> list[tuple[str, str]]:
    """(id, text) of the real documents under /usr/share/doc, in path order."""
    out = []
    for path in sorted(Path("/usr/share/doc").rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        try:
            raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            text = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError, EOFError):
            continue
        if len(text.split()) < 50:
            continue
        rel = path.relative_to("/usr/share/doc").as_posix()
        for i in range(0, len(text), MAX_DOC_CHARS):
            out.append((f"{rel}#{i // MAX_DOC_CHARS}", text[i: i + MAX_DOC_CHARS]))
    return out


def mutate(text: str, fraction: float, rng: random.Random) -> str:
    parts = re.split(r"(\s+)", text)
    words = list(range(0, len(parts), 2))
    for pos in rng.sample(words, max(1, round(len(words) * fraction))):
        parts[pos] = f"zq{rng.randrange(10**9)}"
    return "".join(parts)


def build_corpus(size_mb: int) -> Path:
    from components.artifacts import Docs

    out = CACHE / f"corpus-{size_mb}mb"
    if (out / "docs").is_dir():
        return out
    rng = random.Random(size_mb)
    base = doc_texts()
    target = size_mb * 1_000_000
    records, size, planted = [], 0, []
    for i, (doc_id, text) in enumerate(base):  # real documents up to 75%; repeated, mutated, if too few
        if size >= 0.75 * target:
            break
        records.append({"id": doc_id, "text": text, "source": "usr-share-doc", "title": ""})
        size += len(text.encode())
    n_real, copy = len(records), 0
    while size < target:
        copy += 1
        orig = records[rng.randrange(n_real)]
        light = rng.random() < 0.5
        text = mutate(orig["text"], rng.uniform(0.002, 0.02) if light else rng.uniform(0.1, 0.3), rng)
        rec = {"id": f"planted/{copy:07d}", "text": text, "source": "planted", "title": orig["id"]}
        records.append(rec)
        planted.append((orig["id"], rec["id"], light))
        size += len(text.encode())
    Docs.write(records, out, docs_per_shard=2000)
    (out / "planted.json").write_text(json.dumps(planted))
    return out


def tokenizer_dir() -> Path:
    from components.tokenize.bpe import train_bpe_tokenizer

    out = CACHE / "tokenizer"
    if not (out / "tokenizer.json").is_file():
        train_bpe_tokenizer((t for _, t in doc_texts()[:3000]), 4096, out)
    return out


# -- one step in a fresh process -------------------------------------------------------------
def _run_step(step: str, docs: str, out: str, tok: str) -> dict:
    from flows.engine.context import StepContext

    if step == "clean":
        from components.data.config import CleanConfig
        from components.data.steps import run_clean
        return run_clean(StepContext.for_test(Path(out), {"docs": Path(docs)}), CleanConfig())
    if step == "dedup":
        from components.data.config import DedupConfig
        from components.data.steps import run_dedup
        return run_dedup(StepContext.for_test(Path(out), {"docs": Path(docs)}), DedupConfig())
    from components.tokenize.config import PackConfig
    from components.tokenize.steps import run_pack
    return run_pack(StepContext.for_test(Path(out), {"docs": Path(docs), "tokenizer": Path(tok)}), PackConfig())


def run_step(step: str, docs: str, out: str, tok: str) -> None:
    import ray

    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}})
    ray.data.DataContext.get_current().enable_progress_bars = False
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    try:  # interrupted (SIGINT past the parent's timeout): still shut down this step's local Ray
        metrics = _run_step(step, docs, out, tok)
    finally:
        wall = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        ray.shutdown()
    print("RESULT " + json.dumps({"wall_s": wall, "driver_peak_rss_mb": peak, "rss_after_init_mb": rss_before,
                                  "docs_kept": metrics.get("docs_kept"),
                                  "tokens": metrics.get("num_train_tokens")}))


def _proc_status_mb(pid: int) -> dict[str, float]:
    """VmHWM (peak resident set: what ``ru_maxrss`` reports at the end) and VmRSS of a live process, MB."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return out


def _files_written(out: Path) -> tuple[int, float]:
    files = [p for p in out.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files) / 1e6


def step_in_subprocess(code: Path, step: str, docs: Path, tok: Path, tag: str, timeout_s: float = 3600,
                       watch_s: float = 30) -> dict:
    """Run one step in a fresh process; every ``watch_s`` print its driver RSS so far and what it wrote.
    Past ``timeout_s`` the step is interrupted (SIGINT: its ``ray.shutdown`` runs) and what it reached
    is returned with ``timed_out``: the peak RSS so far (VmHWM), the wall time, the files written."""
    import signal

    out = CACHE / "runs" / f"{tag}-{step}"
    subprocess.run(["rm", "-rf", str(out)], check=True)
    out.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(code), "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    with open(out.parent / f"{tag}-{step}.stdout", "w+") as so, open(out.parent / f"{tag}-{step}.stderr", "w+") as se:
        proc = subprocess.Popen([sys.executable, __file__, "_step", step, str(docs), str(out), str(tok)], cwd=code,
                                env=env, stdout=so, stderr=se, text=True)
        started, last = time.monotonic(), {}
        while proc.poll() is None:
            try:
                proc.wait(timeout=watch_s)
            except subprocess.TimeoutExpired:
                pass
            last = _proc_status_mb(proc.pid) or last
            elapsed = time.monotonic() - started
            n, mb = _files_written(out)
            print(f"  .. {tag} {step}: {elapsed:.0f} s, driver VmHWM {last.get('VmHWM', 0):.0f} MB, "
                  f"VmRSS {last.get('VmRSS', 0):.0f} MB, {n} files / {mb:.0f} MB written, "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
            if proc.poll() is None and elapsed > timeout_s:
                proc.send_signal(signal.SIGINT)  # KeyboardInterrupt in the step: ray.shutdown runs
                try:
                    proc.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                n, mb = _files_written(out)
                return {"timed_out": True, "wall_s": elapsed, "driver_peak_rss_mb": last.get("VmHWM", 0.0),
                        "rss_after_init_mb": float("nan"), "docs_kept": None, "tokens": None,
                        "files_written": n, "mb_written": mb}
        so.seek(0)
        se.seek(0)
        stdout, stderr = so.read(), se.read()
    lines = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{tag} {step} failed:\n{stdout[-3000:]}\n{stderr[-3000:]}")
    return json.loads(lines[-1][7:])


# -- dedup quality ---------------------------------------------------------------------------
def word_shingles(text: str, n: int = 5) -> set:
    import unicodedata

    words = re.findall(r"\w+", unicodedata.normalize("NFKC", text).lower())
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def all_pairs_jaccard(texts: dict[str, str]) -> dict[tuple[str, str], float]:
    """Exact 5-gram Jaccard of every pair that shares any shingle (sparse co-occurrence)."""
    import numpy as np
    from scipy.sparse import csr_matrix

    ids = sorted(texts)
    vocab: dict = {}
    rows, cols = [], []
    for i, doc_id in enumerate(ids):
        for s in word_shingles(texts[doc_id]):
            rows.append(i)
            cols.append(vocab.setdefault(s, len(vocab)))
    x = csr_matrix((np.ones(len(rows), np.int32), (rows, cols)), shape=(len(ids), len(vocab)))
    sizes = np.asarray(x.sum(axis=1)).ravel()
    co = (x @ x.T).tocoo()
    out = {}
    for i, j, inter in zip(co.row, co.col, co.data):
        if i < j:
            out[(ids[i], ids[j])] = inter / (sizes[i] + sizes[j] - inter)
    return out


def dedup_decisions(docs: list[dict]) -> dict[str, str]:
    """removed id -> kept survivor, with whichever code is on PYTHONPATH."""
    from components.data.dedup import find_duplicate_clusters

    return {d: c.survivor for c in find_duplicate_clusters(docs) for d in c.duplicates}


def quality(removed: dict[str, str], texts: dict[str, str], positives: set) -> dict:
    sh = {}

    def s(x):
        if x not in sh:
            sh[x] = word_shingles(texts[x])
        return sh[x]

    below = [d for d, rep in removed.items() if jaccard(s(d), s(rep)) < THRESHOLD]
    resolved = sum(1 for a, b in positives if a in removed or b in removed)
    return {"removed": len(removed), "removed_below_threshold": len(below),
            "precision": (len(removed) - len(below)) / len(removed) if removed else 1.0,
            "recall": resolved / len(positives) if positives else 1.0, "positive_pairs": len(positives)}


def run_quality(corpus: str) -> None:
    from components.artifacts import Docs

    # (a) planted: positives are the light-mutation pairs whose exact Jaccard is >= 0.8
    docs = list(Docs.read(corpus).rows(("id", "text")))
    texts = {d["id"]: d["text"] for d in docs}
    planted = json.loads((Path(corpus) / "planted.json").read_text())
    positives = {(a, b) for a, b, _ in planted if jaccard(word_shingles(texts[a]), word_shingles(texts[b])) >= THRESHOLD}
    t = time.perf_counter()
    planted_q = {**quality(dedup_decisions(docs), texts, positives), "wall_s": time.perf_counter() - t}
    # (b) real: licence and copyright texts, every pair labelled
    real = {}
    for path in sorted(Path("/usr/share/common-licenses").iterdir()) + sorted(Path("/usr/share/doc").glob("*/copyright")):
        if path.is_file():
            try:
                real[str(path)] = path.read_text()
            except UnicodeDecodeError:
                continue
    pairs = all_pairs_jaccard(real)
    real_pos = {p for p, j in pairs.items() if j >= THRESHOLD}
    real_q = quality(dedup_decisions([{"id": k, "text": v} for k, v in real.items()]), real, real_pos)
    real_q["docs"] = len(real)
    print("RESULT " + json.dumps({"planted": planted_q, "real": real_q}))


def quality_in_subprocess(code: Path, corpus: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code)}
    proc = subprocess.run([sys.executable, __file__, "_quality", str(corpus)], cwd=code, env=env, check=False,
                          capture_output=True, text=True, timeout=3600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"quality failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][7:])


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_step":
        return run_step(*sys.argv[2:6])
    if len(sys.argv) > 1 and sys.argv[1] == "_quality":
        return run_quality(sys.argv[2])
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes-mb", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--baseline", default="/work/main", help="Checkout whose code is the baseline.")
    ap.add_argument("--steps", nargs="+", default=["clean", "dedup", "pack"])
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--codes", nargs="+", default=["ours", "baseline"], choices=["ours", "baseline"],
                    help="Which code to run (only ours: a size where the baseline's run does not fit the time).")
    ap.add_argument("--step-timeout-s", type=float, default=3600,
                    help="Interrupt a step past this many seconds and report what it reached (peak driver RSS so far).")
    ap.add_argument("--build-only", action="store_true", help="Build (cache) the corpora and the tokenizer, run nothing.")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    codes = {name: code for name, code in (("ours", REPO), ("baseline", Path(args.baseline))) if name in args.codes}
    tok = tokenizer_dir()
    if args.build_only:
        for size in args.sizes_mb:
            print(f"{size} MB corpus: {build_corpus(size)}")
        return
    print(f"load before: {os.getloadavg()}")
    if not args.skip_quality:
        corpus = build_corpus(min(args.sizes_mb))
        for name, code in codes.items():
            print(f"dedup quality {name}: {json.dumps(quality_in_subprocess(code, corpus))}", flush=True)
    print("| size | step | code | wall s | MB/s | driver peak RSS MB | RSS after ray.init MB | kept | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes_mb:
        corpus = build_corpus(size)
        for step in args.steps:
            for name, code in codes.items():  # interleaved, same input
                r = step_in_subprocess(code, step, corpus, tok, f"{name}-{size}", args.step_timeout_s)
                if r.get("timed_out"):
                    print(f"| {size} MB | {step} | {name} | >{r['wall_s']:.0f} (interrupted) | - | "
                          f">={r['driver_peak_rss_mb']:.0f} (so far) | - | {r['files_written']} files, "
                          f"{r['mb_written']:.0f} MB written | {os.getloadavg()[0]:.1f} |", flush=True)
                    continue
                print(f"| {size} MB | {step} | {name} | {r['wall_s']:.1f} | {size / r['wall_s']:.3f} | "
                      f"{r['driver_peak_rss_mb']:.0f} | {r['rss_after_init_mb']:.0f} | "
                      f"{r['docs_kept'] if r['docs_kept'] is not None else r['tokens']} | "
                      f"{os.getloadavg()[0]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
