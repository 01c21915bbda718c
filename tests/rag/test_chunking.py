import itertools

import pytest

from components.rag.chunking import chunk_text, load_tokenizer
from components.rag.config import ChunkingConfig
from components.rag.embed import model_dir


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(model_dir())


def test_chunks_respect_size_overlap_and_cover_the_text(tokenizer, rag_docs):
    config = ChunkingConfig(chunk_tokens=64, overlap_tokens=16, min_chunk_tokens=8)
    text = rag_docs["class"]
    chunks = chunk_text(text, config, tokenizer)
    assert len(chunks) > 3
    for c in chunks[:-1]:
        assert c.num_tokens <= 64
        assert c.text == text[c.start_char:c.end_char]
    for a, b in itertools.pairwise(chunks):
        assert b.start_char < a.end_char, "consecutive chunks must overlap"
        assert b.start_char > a.start_char
    assert chunks[0].start_char == 0 or text[:chunks[0].start_char].isspace()
    assert chunks[-1].end_char == len(text.rstrip())


def test_cuts_prefer_paragraph_breaks(tokenizer):
    para = "word " * 40
    text = (para.strip() + ".\n\n") * 3  # paragraphs of 40 tokens, windows of 64
    chunks = chunk_text(text, ChunkingConfig(chunk_tokens=64, overlap_tokens=0), tokenizer)
    assert all(c.text.endswith(".") for c in chunks), [c.text[-10:] for c in chunks]


def test_short_tail_merges_into_previous(tokenizer):
    text = " ".join(f"w{i}" for i in range(70))
    chunks = chunk_text(text, ChunkingConfig(chunk_tokens=64, overlap_tokens=0, min_chunk_tokens=200 // 4), tokenizer)
    assert chunks[-1].end_char == len(text)
    assert len(chunks) >= 1 and all(c.num_tokens >= 50 or c is chunks[0] for c in chunks)


def test_empty_text_has_no_chunks(tokenizer):
    assert chunk_text("", ChunkingConfig(), tokenizer) == []


def test_overlap_must_be_below_size():
    with pytest.raises(ValueError, match="overlap_tokens"):
        ChunkingConfig(chunk_tokens=32, overlap_tokens=32)
